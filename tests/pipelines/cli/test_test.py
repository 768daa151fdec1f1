"""``millstream test`` through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

MILLSTREAM = str(Path(sys.executable).with_name("millstream"))

PIPELINE = """\
pipeline: quickstart
dead_letter: dead
topics:
  readings: {partitions: 4}
  clean: {partitions: 4}
  hot: {}
  archive: {}
  dead: {}
  notes: {codec: text}
routes:
  clean:
    from: readings
    steps:
      - filter: value.temp is not None and -50 < value.temp < 150
      - set: {temp_f: "value.temp * 9 / 5 + 32", checked: "True"}
      - drop: [debug]
    to: clean
  split:
    from: clean
    to:
      - {topic: hot, when: "value.temp_f > 100"}
      - {topic: archive}
  note:
    from: notes
    steps:
      - parse: kv
      - key: value.device
    to: archive
"""

PASSING = """\
tests:
  - name: a reading is cleaned
    route: clean
    input:
      - value: {temp: 100, debug: 1}
      - value: {temp: 500}
      - {value: {temp: "hot"}, key: d1}
    expect:
      clean:
        - value: {temp: 100, temp_f: 212, checked: true}
      dead:
        - {reason: "not supported between instances of 'int' and 'str'", step: "steps[0].filter"}
  - route: split
    input:
      - {value: {temp_f: 120}, key: d1, headers: {source: gw}}
      - {value: {temp_f: 50}, timestamp: "2024-05-01T12:00:00Z"}
    expect:
      hot:
        - {value: {temp_f: 120}, key: d1, headers: {source: gw}}
      archive:
        - value: {temp_f: 120}
        - {value: {temp_f: 50}, timestamp: 1714564800000}
  - name: text in, parsed out
    route: note
    input:
      - value: device=d7 n=1
      - value: no pairs
    expect:
      archive:
        - {value: {device: d7, n: "1"}, key: d7}
      dead:
        - {reason: "'no' is not name=value", step: "steps[0].parse"}
"""

FAILING = """\
tests:
  - name: passes
    route: split
    input: [{value: {temp_f: 10}}]
    expect: {archive: [{value: {temp_f: 10}}]}
  - name: wrong value and a missed dead letter
    route: clean
    input:
      - value: {temp: 10}
      - value: {temp: x}
    expect:
      clean:
        - value: {temp: 10, temp_f: 51, checked: true}
"""


def run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [MILLSTREAM, "test", *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=60
    )


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def test_passing_tests_in_the_pipeline_file_exit_0(tmp_path: Path) -> None:
    file = write(tmp_path, "quickstart.yaml", PIPELINE + PASSING)
    done = run(file, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "PASS  a reading is cleaned (route clean)" in done.stdout
    assert "PASS  tests[1] (route split)" in done.stdout
    assert done.stdout.rstrip().endswith("3 tests: all passed")
    assert not (tmp_path / ".millstream").exists()  # no store was touched


def test_a_failing_test_exits_1_with_a_diff(tmp_path: Path) -> None:
    file = write(tmp_path, "quickstart.yaml", PIPELINE + FAILING)
    done = run(file, cwd=tmp_path)
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert "  PASS  passes (route split)" in lines
    assert "  FAIL  wrong value and a missed dead letter (route clean)" in lines
    assert "        clean: expected 1, got 1" in lines
    assert '          - {"value":{"temp":10,"temp_f":51,"checked":true}}' in lines
    assert '          + {"value":{"temp":10,"temp_f":50.0,"checked":true}}' in lines
    assert "        dead: expected 0, got 1" in lines
    dead = [line for line in lines if line.startswith("          + ") and "filter" in line]
    assert dead and '"step":"steps[0].filter"' in dead[0] and "not supported" in dead[0]
    assert lines[-1] == "2 tests: 1 passed, 1 failed"


def test_json_output(tmp_path: Path) -> None:
    file = write(tmp_path, "quickstart.yaml", PIPELINE + FAILING)
    done = run(file, "--format", "json", cwd=tmp_path)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert (report["passed"], report["failed"]) == (1, 1)
    failed = report["tests"][1]
    assert failed["passed"] is False and failed["route"] == "clean"
    topics = {d["topic"]: d for d in failed["differences"]}
    assert set(topics) == {"clean", "dead"}
    assert topics["clean"]["actual"][0]["value"]["temp_f"] == 50.0
    assert topics["dead"]["expected"] == []
    assert topics["dead"]["actual"][0]["step"] == "steps[0].filter"


def test_a_separate_tests_file_names_its_pipeline(tmp_path: Path) -> None:
    (tmp_path / "pipelines").mkdir()
    write(tmp_path / "pipelines", "quickstart.yaml", PIPELINE)
    tests = write(
        tmp_path, "quickstart.tests.yaml", "pipeline: pipelines/quickstart.yaml\n" + PASSING
    )
    done = run(tests.name, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3 tests: all passed" in done.stdout


@pytest.mark.parametrize(
    ("tests", "line", "message"),
    [
        (
            "tests:\n  - {route: clen, input: []}\n",
            2,
            "tests[0].route: no route 'clen' in pipeline 'quickstart'; did you mean 'clean'?",
        ),
        (
            "tests:\n  - {route: clean, input: [], expect: {hott: []}}\n",
            2,
            "route 'clean' does not write to 'hott'; it writes to clean, dead, dead_letters",
        ),
        (
            "tests:\n  - route: clean\n    input:\n      - {valeu: 1}\n",
            4,
            "tests[0].input[0]",
        ),
        (
            "tests:\n  - route: clean\n    input: [{value: 1, timestamp: soon}]\n",
            3,
            "not an ISO 8601 time",
        ),
        ("tests:\n  - {input: []}\n", 2, "missing required key 'route'"),
        ("", 0, "no tests here"),
    ],
)
def test_an_invalid_file_exits_2_naming_the_place(
    tmp_path: Path, tests: str, line: int, message: str
) -> None:
    """``line`` counts from the ``tests:`` line (1); 0: the file, with no line."""
    file = write(tmp_path, "quickstart.yaml", PIPELINE + tests)
    where = f"quickstart.yaml:{PIPELINE.count(chr(10)) + line}:" if line else "quickstart.yaml: "
    done = run(file, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    assert done.stderr.startswith("millstream: error: ")
    assert where in done.stderr and message in done.stderr, done.stderr
    assert done.stderr.count("\n") == 1


def test_an_invalid_pipeline_exits_2(tmp_path: Path) -> None:
    file = write(tmp_path, "p.yaml", PIPELINE.replace("value.device", "valeu.device") + PASSING)
    done = run(file, cwd=tmp_path)
    assert done.returncode == 2
    assert "did you mean 'value'" in done.stderr


def test_a_tests_file_naming_a_missing_pipeline_exits_2(tmp_path: Path) -> None:
    tests = write(tmp_path, "t.yaml", "pipeline: nowhere.yaml\n" + PASSING)
    done = run(tests, cwd=tmp_path)
    assert done.returncode == 2 and "no pipeline file" in done.stderr and "t.yaml:1:" in done.stderr
