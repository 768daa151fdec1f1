"""One pipeline run by three `millstream run` processes against one `millstream broker`, and
the same against one Apache Kafka.

The routes' and sinks' partitions are shared between the three; the source runs in one of them
at a time. Killing (SIGKILL) the process that runs the source moves the source and that
process's partitions to the other two, and every event still reaches the table: the sink is a
PostgreSQL upsert by id, so the table holds each id exactly once whatever was delivered twice.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from millstream.core.client import connect
from millstream.core.errors import UnknownGroupError

pytestmark = pytest.mark.slow

COUNT = 6_000
HERE = Path(__file__).resolve().parent
MILLSTREAM = str(Path(sys.executable).parent / "millstream")
STATS = ["--stats", "lines", "--stats-interval", "5"]

PIPELINE = """
pipeline: shared
dead_letter: dead
topics:
  raw: {partitions: 6}
  cooked: {partitions: 6}
  dead: {partitions: 1}
sources:
  numbers:
    connector: counter
    config: {count: %(count)d, batch: 20, pause_ms: 5}
    to: raw
    key: value.id
routes:
  cook:
    from: raw
    steps:
      - set: {double: "value.id * 2"}
    to: cooked
sinks:
  table:
    connector: postgres
    from: cooked
    config: {dsn: "%(dsn)s", table: numbers, pk: id, mode: upsert}
"""


def _worker(workdir: Path, store: str, index: int) -> tuple[subprocess.Popen[bytes], Path]:
    log = workdir / f"worker-{index}.log"
    proc = subprocess.Popen(
        [
            MILLSTREAM,
            "run",
            "pipeline.yaml",
            "--store",
            store,
            "--stats-interval",
            "0.5",
        ],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    return proc, log


def _source_state(log: Path) -> str | None:
    """The last state the worker's stats gave its source (running, standby, done...)."""
    state = None
    for line in log.read_text(errors="replace").splitlines():
        if "shared.numbers source" in line:
            state = line.rsplit(" ", 1)[-1]
    return state


def _wait(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def _members(store: str, group: str) -> int:
    conn = await connect(store)
    try:
        return len((await conn.admin().describe_group(group)).members)
    except UnknownGroupError:  # not formed yet
        return 0
    finally:
        await conn.close()


def _rows(postgres) -> int:
    try:
        return postgres.query("SELECT count(*) FROM numbers")[0][0]
    except Exception:  # the table is made with the sink's first batch
        return 0


def test_three_workers_share_the_parts_and_survive_a_kill_9_of_the_source_holder(
    tmp_path: Path, fresh_remote, postgres
) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE % {"count": COUNT, "dsn": postgres.dsn})
    (tmp_path / "plugins.toml").write_text(f'modules = ["{HERE / "killplugin.py"}"]\n')
    workers = [_worker(tmp_path, fresh_remote.url, i) for i in range(3)]
    try:
        # the route's group has all three as members: its six partitions are shared
        _wait(
            "three members in the route's group",
            lambda: asyncio.run(_members(fresh_remote.url, "shared.cook")) == 3,
        )

        # exactly one worker runs the source; the others stand by (they say so at their next
        # stats line, and while the group forms the lease may move once before it settles)
        def settled() -> list:
            states = [_source_state(log) for _, log in workers]
            if sorted(map(str, states)) != ["running", "standby", "standby"]:
                return []
            return [w for w, state in zip(workers, states, strict=True) if state == "running"]

        holder = _wait("one worker running the source, two standing by", settled)
        standing_by = [w for w in workers if w is not holder[0]]
        _wait("some rows", lambda: _rows(postgres) > 500)

        holder[0][0].send_signal(signal.SIGKILL)
        holder[0][0].wait()
        assert _rows(postgres) < COUNT, "the kill came too late to prove anything"

        # another worker takes the source over (after the dead one's session times out) and
        # the two left finish everything: each id exactly once in the table
        _wait(
            "another worker running the source",
            lambda: any(_source_state(log) in ("running", "done") for _, log in standing_by),
        )
        _wait("every event in the table", lambda: _rows(postgres) == COUNT, timeout=120)
        ids = postgres.query("SELECT min(id), max(id), count(DISTINCT id) FROM numbers")[0]
        assert ids == (0, COUNT - 1, COUNT)
        doubled = postgres.query("SELECT count(*) FROM numbers WHERE double = id * 2")[0][0]
        assert doubled == COUNT
        # the counter is bounded: the two left end by themselves once everything is drained
        for proc, log in standing_by:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pytest.fail(f"a worker did not end once drained:\n{log.read_text()[-3000:]}")
            assert proc.returncode == 0, log.read_text()
    finally:
        for proc, _ in workers:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in workers:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(autouse=True)
def _no_store_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MILLSTREAM_STORE", "MILLSTREAM_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)


def test_a_bounded_pipeline_run_by_two_workers_ends_in_both_with_every_event_delivered(
    tmp_path: Path, fresh_remote
) -> None:
    # the quickstart: a generator of 20,000 readings, two routes, the hot ones to the console;
    # the worker without the source takes its lease once the holder finished, finds the source
    # at its end, and both exit once their partitions are drained. Their output goes to files:
    # a pipe read only once the other worker ended would fill (a pipe takes less than 64 kB
    # written a few kB at a time), stall this worker's console sink, and so the drain of both
    quickstart = HERE.parent.parent / "examples" / "quickstart.yaml"
    runs = []
    for index in range(2):
        out, err = tmp_path / f"worker-{index}.out", tmp_path / f"worker-{index}.err"
        with out.open("wb") as stdout, err.open("wb") as stderr:
            run = subprocess.Popen(
                [MILLSTREAM, "run", str(quickstart), "--store", fresh_remote.url, *STATS],
                cwd=tmp_path,
                stdout=stdout,
                stderr=stderr,
            )
        runs.append((run, out, err))
    deadline = time.monotonic() + 180
    try:
        for run, _, err in runs:
            try:
                run.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pytest.fail(
                    "a worker did not end within 180 s; their statistics:\n"
                    + "\n".join(e.read_text(errors="replace")[-3000:] for _, _, e in runs)
                )
            assert run.returncode == 0, err.read_text(errors="replace")
    finally:
        for run, _, _ in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    outputs = [out.read_text() for _, out, _ in runs]
    printed = [line for out in outputs for line in out.splitlines()]

    async def hot() -> list[bytes]:
        conn = await connect(fresh_remote.url)
        try:
            consumer = conn.consumer(["hot"], auto_offset_reset="earliest")
            got: list[bytes] = []
            while batch := await consumer.getmany(timeout_ms=2000):
                got += [r.value for records in batch.values() for r in records]
            return got
        finally:
            await conn.close()

    stored = asyncio.run(hot())
    assert stored, "no hot readings"
    # each one printed by one of the two workers (at least once: a rebalance may repeat one)
    assert {line.encode() for line in printed} == set(stored)
    assert len(printed) >= len(stored)
