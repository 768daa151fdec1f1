"""``millstream run`` killed with SIGKILL at random moments, then restarted, loses nothing.

The pipeline: a resumable counting source → topic ``raw`` → a route (``set``) → topic
``cooked`` → two durable sinks, one plain (JSON lines: at-least-once, so a replay after a crash
may append an event twice) and one idempotent (SQLite upsert by id: exactly one row per event).
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

pytestmark = pytest.mark.slow

COUNT = 100_000
KILLS = 20
HERE = Path(__file__).resolve().parent
MILLSTREAM = str(Path(sys.executable).parent / "millstream")

PIPELINE = f"""
pipeline: killed
store: file:./store
dead_letter: dead
topics:
  raw: {{partitions: 3}}
  cooked: {{partitions: 2}}
  dead: {{partitions: 1}}
sources:
  numbers:
    connector: counter
    config: {{count: {COUNT}, batch: 50, pause_ms: 0.5}}
    to: raw
    key: value.id
routes:
  cook:
    from: raw
    steps:
      - set: {{double: "value.id * 2"}}
    to: cooked
sinks:
  lines:
    connector: jsonl
    from: cooked
    config: {{path: out.jsonl}}
  table:
    connector: keyed
    from: cooked
    config: {{path: out.db}}
"""


def _run(workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [MILLSTREAM, "run", "pipeline.yaml", "--quiet"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_kill_9_at_random_moments_loses_no_event(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    (tmp_path / "plugins.toml").write_text(f'modules = ["{HERE / "killplugin.py"}"]\n')
    rng = random.Random(20261126)
    finished_early = 0
    for _ in range(KILLS):
        proc = _run(tmp_path)
        time.sleep(rng.uniform(0.3, 1.6))
        if proc.poll() is not None:
            _, err = proc.communicate()
            assert proc.returncode == 0, err.decode()
            finished_early += 1
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    proc = _run(tmp_path)
    _, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err.decode()
    assert finished_early == 0, "the pipeline finished before it could be killed 20 times"

    lines = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    ids = [line["id"] for line in lines]
    assert set(ids) == set(range(COUNT)), "an event was lost"
    assert all(line["double"] == line["id"] * 2 for line in lines)
    with sqlite3.connect(tmp_path / "out.db") as db:
        rows = db.execute("SELECT count(*), count(DISTINCT id), min(id), max(id) FROM events")
        assert rows.fetchone() == (COUNT, COUNT, 0, COUNT - 1)
    # the plain sink may hold copies (at-least-once), but never a copy of everything
    assert len(ids) < 2 * COUNT, f"{len(ids) - COUNT} duplicates"
