"""``millstream run``, ``offsets`` and ``replay`` as users run them: real processes, real store."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

MILLSTREAM = str(Path(sys.executable).parent / "millstream")


def _millstream(
    *args: str, cwd: Path, stdin: bytes | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [MILLSTREAM, *args], cwd=cwd, input=stdin, capture_output=True, timeout=timeout
    )


LINES = """
pipeline: lines
store: file:./store
dead_letter: dead
topics:
  incoming: {partitions: 2}
  doubled: {partitions: 1}
  dead: {partitions: 1}
sources:
  input:
    connector: stdin
    to: incoming
routes:
  double:
    from: incoming
    steps:
      - set: {twice: "value.n * 2"}
    to: doubled
sinks:
  out:
    connector: stdout
    from: doubled
"""


def test_a_bounded_run_prints_only_events_on_stdout_and_exits_0(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(LINES)
    lines = b"".join(b'{"n": %d}\n' % i for i in range(50))
    done = _millstream("run", "p.yaml", cwd=tmp_path, stdin=lines + b"{broken\n")
    assert done.returncode == 0, done.stderr.decode()
    out = [json.loads(line) for line in done.stdout.splitlines()]
    assert sorted(e["n"] for e in out) == list(range(50))
    assert all(e["twice"] == 2 * e["n"] for e in out)
    err = done.stderr.decode()
    assert "drained after" in err
    assert "lines.input" in err and "lines.out" in err
    # the broken line became a dead letter, named as such
    dead = _millstream(
        "consume",
        "dead",
        "--from-beginning",
        "--max-messages",
        "1",
        "--property",
        "print.headers=true",
        "--data-dir",
        "store",
        cwd=tmp_path,
    )
    assert b"{broken" in dead.stdout
    assert b"millstream.step:decode" in dead.stdout


def test_an_invalid_pipeline_exits_2_with_its_location(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(LINES.replace("connector: stdout", "connector: stdot"))
    done = _millstream("run", "p.yaml", cwd=tmp_path, stdin=b"")
    assert done.returncode == 2
    message = done.stderr.decode()
    assert "p.yaml:21:16" in message and "did you mean 'stdout'" in message
    assert not (tmp_path / "store").exists()


def test_on_error_stop_exits_1_with_the_reason(tmp_path: Path) -> None:
    text = LINES.replace("    to: doubled\n", "    to: doubled\n    on_error: stop\n")
    (tmp_path / "p.yaml").write_text(text)
    done = _millstream("run", "p.yaml", "--quiet", cwd=tmp_path, stdin=b'{"n": null}\n')
    assert done.returncode == 1
    err = done.stderr.decode()
    assert "routes.double" in err and "on_error: stop" in err
    assert done.stdout == b""


UNBOUNDED = """
pipeline: forever
dead_letter: dead
topics:
  readings: {partitions: 2}
  dead: {partitions: 1}
sources:
  sensors:
    connector: generator
    config: {devices: 5, rate: 500, seed: 1}
    to: readings
sinks:
  nothing:
    connector: "null"
    from: readings
"""


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_stops_gracefully_and_commits(tmp_path: Path, signum: int) -> None:
    (tmp_path / "p.yaml").write_text(UNBOUNDED)
    proc = subprocess.Popen(
        [MILLSTREAM, "run", "p.yaml", "--stats", "lines", "--stats-interval", "0.2"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    first = proc.stderr.readline()  # the first stats line: the pipeline is running
    assert b"running" in first, first
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signum)
    _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err.decode()
    assert time.monotonic() - started < 5
    assert "stopped after" in err.decode()
    shown = _millstream("offsets", "p.yaml", "--format", "json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr.decode()
    report = json.loads(shown.stdout)
    committed = sum(p["committed"] or 0 for p in report["parts"])
    (position,) = [s["position"] for s in report["sources"]]
    assert committed > 0 and position > 0
    # everything the source had acknowledged was read by the sink before it stopped
    assert committed == position
    assert all(p["lag"] == 0 for p in report["parts"])


def test_offsets_reset_makes_a_sink_read_again(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(LINES)
    lines = b"".join(b'{"n": %d}\n' % i for i in range(10))
    assert _millstream("run", "p.yaml", "-q", cwd=tmp_path, stdin=lines).returncode == 0
    reset = _millstream("offsets", "p.yaml", "--reset", "out", "--to-earliest", cwd=tmp_path)
    assert reset.returncode == 0, reset.stderr.decode()
    assert b"doubled" in reset.stdout
    again = _millstream("run", "p.yaml", "-q", cwd=tmp_path, stdin=b"")
    assert again.returncode == 0
    assert len(again.stdout.splitlines()) == 10  # the sink read all of doubled again
    unknown = _millstream("offsets", "p.yaml", "--reset", "nope", "--to-latest", cwd=tmp_path)
    assert unknown.returncode == 2
    assert b"known: double, out" in unknown.stderr


def test_replay_sends_dead_letters_through_a_mended_route(tmp_path: Path) -> None:
    broken = LINES.replace('"value.n * 2"', '"value.n * 2 + value.bonus"')
    (tmp_path / "p.yaml").write_text(broken)
    lines = b'{"n": 1, "bonus": 0}\n{"n": 2}\n{"n": 3}\n'
    first = _millstream("run", "p.yaml", "-q", cwd=tmp_path, stdin=lines)
    assert first.returncode == 0, first.stderr.decode()
    assert len(first.stdout.splitlines()) == 1  # n=2 and n=3 have no bonus: dead letters
    mended = LINES.replace('"value.n * 2"', '"value.n * 2 + (value.bonus or 0)"')
    (tmp_path / "p.yaml").write_text(mended)
    replay = _millstream("replay", "dead", "--to", "double", "--pipeline", "p.yaml", cwd=tmp_path)
    assert replay.returncode == 0, replay.stderr.decode()
    assert b"replayed 2 dead letters" in replay.stdout
    assert b"2 out, 0 dead again" in replay.stdout
    # the sink picks up what the replay wrote; a second replay finds nothing new
    out = _millstream("run", "p.yaml", "-q", cwd=tmp_path, stdin=b"")
    assert sorted(json.loads(x)["twice"] for x in out.stdout.splitlines()) == [4, 6]
    twice = _millstream("replay", "dead", "--to", "double", "--pipeline", "p.yaml", cwd=tmp_path)
    assert b"replayed 0 dead letters" in twice.stdout


HOOKS = """
from pathlib import Path

from millstream.core import hookimpl


@hookimpl
def startup(pipelines):
    Path("started.txt").write_text(",".join(pipelines))


@hookimpl
async def shutdown(pipelines):
    Path("stopped.txt").write_text(",".join(pipelines))
"""


def test_startup_and_shutdown_hooks_run_around_the_pipelines(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(LINES)
    (tmp_path / "hooks.py").write_text(HOOKS)
    (tmp_path / "plugins.toml").write_text('modules = ["hooks.py"]\n')
    done = _millstream("run", "p.yaml", "-q", cwd=tmp_path, stdin=b'{"n": 1}\n')
    assert done.returncode == 0, done.stderr.decode()
    assert (tmp_path / "started.txt").read_text() == "lines"
    assert (tmp_path / "stopped.txt").read_text() == "lines"


def test_a_failing_startup_hook_is_named_and_the_run_fails(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(LINES)
    (tmp_path / "hooks.py").write_text(HOOKS.replace('Path("started.txt")', '1 / 0 or Path("x")'))
    (tmp_path / "plugins.toml").write_text('modules = ["hooks.py"]\n')
    done = _millstream("run", "p.yaml", "-q", cwd=tmp_path, stdin=b'{"n": 1}\n')
    assert done.returncode == 1
    assert "hooks" in done.stderr.decode() and "startup" in done.stderr.decode()
    assert (tmp_path / "stopped.txt").exists()  # shutdown still runs


SLOW = UNBOUNDED.replace(
    "sinks:",
    """routes:
  crawl:
    from: readings
    steps:
      - throttle: {rate: 1, per: 1h}
    to: slow
sinks:""",
).replace("  dead: {partitions: 1}", "  dead: {partitions: 1}\n  slow: {partitions: 1}")


def test_a_second_signal_exits_at_once(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(SLOW)
    proc = subprocess.Popen(
        [MILLSTREAM, "run", "p.yaml", "--stats", "lines", "--stats-interval", "0.5"],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    assert b"running" in proc.stderr.readline()  # the pipeline is running
    time.sleep(1.0)  # the throttle now holds its batch for an hour
    proc.send_signal(signal.SIGINT)
    time.sleep(0.3)
    started = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=10)
    assert time.monotonic() - started < 2
    assert proc.returncode == 128 + signal.SIGINT
    assert "exiting at once" in err.decode()
