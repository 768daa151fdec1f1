"""A pipeline on a three-broker Apache Kafka cluster loses nothing when a partition's leader is
killed (SIGKILL) in the middle of the run.

The topics have three replicas and the client produces with ``acks=all``, so every record the
cluster acknowledged is on every in-sync replica; when the leader dies, one of them leads, the
client finds it through the metadata, retries what was not acknowledged and goes on. The
pipeline: a resumable counting source → ``raw`` → a route → ``cooked`` → two sinks (JSON lines,
at-least-once; SQLite upsert by id). It runs to its end with status 0 and both sinks hold every
id.
"""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from millstream.core.client import connect

pytestmark = pytest.mark.slow

COUNT = 30_000
HERE = Path(__file__).resolve().parent
MILLSTREAM = str(Path(sys.executable).parent / "millstream")

PIPELINE = f"""
pipeline: replicated
dead_letter: dead
topics:
  raw: {{partitions: 3, replication: 3}}
  cooked: {{partitions: 3, replication: 3}}
  dead: {{partitions: 1, replication: 3}}
sources:
  numbers:
    connector: counter
    config: {{count: {COUNT}, batch: 50, pause_ms: 2}}
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


def _rows(db: Path) -> int:
    try:
        with sqlite3.connect(db) as conn:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:  # the table is made when the sink opens
        return 0


async def _leaders(url: str, topic: str) -> list[int]:
    conn = await connect(url)
    try:
        described = await conn.admin().describe_topic(topic)
        return [p.leader for p in described.partitions]
    finally:
        await conn.close()


def test_killing_a_partition_leader_mid_run_loses_no_acknowledged_event(
    tmp_path: Path, kafka_cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MILLSTREAM_STORE", raising=False)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    (tmp_path / "plugins.toml").write_text(f'modules = ["{HERE / "killplugin.py"}"]\n')
    log = tmp_path / "run.log"
    run = subprocess.Popen(
        [MILLSTREAM, "run", "pipeline.yaml", "--store", kafka_cluster.url, "--stats-interval", "1"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    try:
        deadline = time.monotonic() + 120
        while _rows(tmp_path / "out.db") < COUNT // 5:
            assert run.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no progress: {log.read_text()[-3000:]}"
            time.sleep(0.2)
        leaders = asyncio.run(_leaders(kafka_cluster.url, "raw"))
        victim = leaders[0]
        assert victim >= 0 and len(set(leaders)) >= 1
        kafka_cluster.kill(victim)
        assert _rows(tmp_path / "out.db") < COUNT, "the kill came too late to prove anything"
        status = run.wait(timeout=240)
    finally:
        if run.poll() is None:
            run.send_signal(signal.SIGKILL)
            run.wait()
    assert status == 0, log.read_text()[-5000:]

    ids = [orjson.loads(line)["id"] for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert set(ids) == set(range(COUNT)), f"{COUNT - len(set(ids))} ids missing from out.jsonl"
    with sqlite3.connect(tmp_path / "out.db") as db:
        got = db.execute("SELECT count(*), min(id), max(id) FROM events").fetchone()
    assert got == (COUNT, 0, COUNT - 1)
    # the partitions it led are led by the others now, each still with its replicas
    after = asyncio.run(_leaders(kafka_cluster.url, "raw"))
    assert victim not in after and all(leader >= 0 for leader in after)
