"""examples/plugin-example, installed the way a user installs a plugin (pip, into a folder on
PYTHONPATH; .venv itself is never touched): millstream finds it through its entry point, the
command line lists it, its own tests pass the conformance kit, and a pipeline runs with it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "plugin-example"
MILLSTREAM = Path(sys.executable).parent / "millstream"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """A copy of the example, pip-installed into a folder; the folder and an environment that
    puts it on PYTHONPATH and lets entry points load (as outside a test session)."""
    work = tmp_path_factory.mktemp("plugin-example")
    source = work / "plugin-example"
    shutil.copytree(
        EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__")
    )
    site = work / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", site, source],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"pip install failed:\n{done.stderr}"
    env = {
        k: v
        for k, v in os.environ.items()
        if k != "MILLSTREAM_ENTRY_POINTS" and not k.startswith("PYTEST_")
    }
    env["PYTHONPATH"] = str(site)
    return work, env


def millstream(installed: tuple[Path, dict[str, str]], *args: str, cwd: Path | None = None) -> Any:
    work, env = installed
    done = subprocess.run(
        [MILLSTREAM, *args, "--format", "json"],
        capture_output=True,
        text=True,
        cwd=cwd or work,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_plugins_list_shows_it_from_its_entry_point(installed: tuple[Path, dict[str, str]]) -> None:
    plugins = {p["name"]: p for p in millstream(installed, "plugins", "list")}
    assert plugins["dirfiles"] == {
        "name": "dirfiles",
        "origin": "entry-point",
        "version": "0.1.0",
        "status": "ok",
        "error": None,
        "provides": ["source:dirlines", "sink:jsonlines"],
    }


def test_connectors_list_shows_its_connectors(installed: tuple[Path, dict[str, str]]) -> None:
    connectors = {c["name"]: c for c in millstream(installed, "connectors", "list")}
    assert connectors["dirlines"]["source"] and connectors["dirlines"]["resumable"]
    assert connectors["dirlines"]["source_plugin"] == "dirfiles"
    assert connectors["jsonlines"]["sink"] and connectors["jsonlines"]["idempotent"] is False
    assert connectors["jsonlines"]["sink_plugin"] == "dirfiles"
    described = millstream(installed, "connectors", "describe", "dirlines")
    assert [s["name"] for s in described["source"]["settings"]] == [
        "path",
        "pattern",
        "follow",
        "poll_interval",
        "batch_size",
    ]


def test_plugins_toml_can_block_it_by_distribution(
    installed: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    (tmp_path / "plugins.toml").write_text('block = ["millstream-dirfiles"]\n')
    plugins = {p["name"]: p for p in millstream(installed, "plugins", "list", cwd=tmp_path)}
    assert plugins["dirfiles"]["status"] == "blocked"
    connectors = millstream(installed, "connectors", "list", cwd=tmp_path)
    assert "dirlines" not in [c["name"] for c in connectors]


def test_its_tests_pass_the_conformance_kit(installed: tuple[Path, dict[str, str]]) -> None:
    work, env = installed
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        cwd=work / "plugin-example",
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert "failed" not in summary and "error" not in summary, summary
    assert int(summary.split()[0]) >= 15, summary  # the kit's checks ran, not just one test


def test_a_pipeline_runs_with_it(installed: tuple[Path, dict[str, str]], tmp_path: Path) -> None:
    _, env = installed
    (tmp_path / "incoming").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "incoming" / "a.jsonl").write_text('{"n": 1}\n{"n": 2}\n')
    (tmp_path / "incoming" / "b.jsonl").write_text('{"n": 3}\n')
    (tmp_path / "incoming" / "skip.txt").write_text("not a reading\n")
    (tmp_path / "lines.yaml").write_text(
        textwrap.dedent(
            """
            pipeline: lines
            topics:
              lines: {partitions: 1}
            sources:
              logs:
                connector: dirlines
                config: {path: incoming, pattern: "*.jsonl"}
                to: lines
            sinks:
              archive:
                connector: jsonlines
                from: lines
                config: {path: out/lines.jsonl}
            """
        )
    )
    done = subprocess.run(
        [MILLSTREAM, "run", "lines.yaml", "--quiet"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "out" / "lines.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in written] == [{"n": 1}, {"n": 2}, {"n": 3}]


def test_the_connector_guide_shows_the_example_as_it_is() -> None:
    """docs/connectors.md quotes the example's files whole; a block starting with a file's path
    must be that file."""
    guide = (EXAMPLE.parents[1] / "docs" / "connectors.md").read_text()
    quoted = {}
    for block in guide.split("```python\n")[1:]:
        code = block.split("\n```", 1)[0] + "\n"
        first, _, rest = code.partition("\n")
        if first.startswith("# ") and (EXAMPLE / first[2:]).is_file():
            quoted[first[2:]] = rest
    assert set(quoted) == {
        "src/millstream_dirfiles/source.py",
        "src/millstream_dirfiles/sink.py",
        "tests/test_dirfiles.py",
    }
    for path, code in quoted.items():
        assert code == (EXAMPLE / path).read_text(), f"docs/connectors.md: {path} is out of date"
