"""Database sinks: topic → sqlite (upsert) and topic → postgres (COPY), rows per second.

Each sink is fed decoded events the way the runtime's sink worker feeds it: batches of 5,000
(its ``max_records``), each one ``write`` then ``flush`` (one transaction), on a fresh table.
Rows are ~100 bytes of JSON (an id, a device, three numbers, a short text). The time is that of
the write + flush loop; decoding from the log is not in it (the pipelines suite measures that).

- **sqlite sink, upsert by id** into a WAL-mode file; baseline: sqlite-utils ``upsert_all`` of
  the same rows, the same batches each in one transaction, in one plain loop.
- **postgres sink, COPY** into a server the benchmark starts (initdb in a temporary folder,
  fsync off: the figure is the client's work, not the disk's); baseline: psycopg's own
  ``COPY … FROM STDIN`` of the same rows with ``write_row``, one transaction per batch.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType
from typing import Any

from millstream.core import ConnectorContext, Event

from ._harness import Result, median

BATCH = 5000
TARGET = 50_000
_FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "postgres_server.py"


def _rows(n: int) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "device": f"dev-{i % 500:03d}",
            "temp": round(-10 + (i % 400) * 0.1, 1),
            "humidity": 40.5,
            "battery": 97,
            "note": "ok",
        }
        for i in range(n)
    ]


def _batches(rows: list[dict[str, Any]]) -> list[list[Event]]:
    events = [Event(row, topic="readings", partition=0, offset=i) for i, row in enumerate(rows)]
    return [events[i : i + BATCH] for i in range(0, len(events), BATCH)]


async def _feed(sink: Any, batches: list[list[Event]]) -> float:
    """Seconds to write and flush every batch, as a sink worker would."""
    await sink.open()
    try:
        start = time.perf_counter()
        for batch in batches:
            await sink.write(batch)
            await sink.flush()
        return time.perf_counter() - start
    finally:
        await sink.close()


# -- sqlite ----------------------------------------------------------------------------------


def _sqlite_sink(folder: Path, batches: list[list[Event]]) -> float:
    from millstream.connectors.sqlite import SqliteSink, SqliteSinkConfig

    config = SqliteSinkConfig(path=folder / "sink.db", table="readings", pk="id")
    sink = SqliteSink(config, ConnectorContext("bench", "db", base_dir=folder))
    return asyncio.run(_feed(sink, batches))


def _sqlite_baseline(folder: Path, rows: list[dict[str, Any]]) -> float:
    import sqlite_utils

    db = sqlite_utils.Database(folder / "baseline.db")
    db.enable_wal()
    table = db.table("readings")
    start = time.perf_counter()
    for i in range(0, len(rows), BATCH):
        with db.atomic():
            table.upsert_all(rows[i : i + BATCH], pk="id", alter=True)
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def _sqlite_count(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT count(*) FROM readings").fetchone()[0])


def _sqlite_round(rows: list[dict[str, Any]], batches: list[list[Event]]) -> tuple[float, float]:
    folder = Path(tempfile.mkdtemp(prefix="millstream-bench-sqlite-"))
    try:
        baseline = _sqlite_baseline(folder, rows)
        subject = _sqlite_sink(folder, batches)
        assert _sqlite_count(folder / "sink.db") == len(rows)
        assert _sqlite_count(folder / "baseline.db") == len(rows)
        return len(rows) / subject, len(rows) / baseline
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# -- postgres --------------------------------------------------------------------------------


def _fixture() -> ModuleType:
    """tests/postgres_server.py, loaded from its path (the tests folder is not a package)."""
    spec = importlib.util.spec_from_file_location("millstream_bench_postgres_server", _FIXTURE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _postgres_sink(dsn: str, batches: list[list[Event]]) -> float:
    from millstream.connectors.postgres import PostgresSink, PostgresSinkConfig

    config = PostgresSinkConfig.model_validate({"dsn": dsn, "table": "sink", "mode": "copy"})
    return asyncio.run(_feed(PostgresSink(config, ConnectorContext("bench", "db")), batches))


def _postgres_baseline(dsn: str, rows: list[dict[str, Any]]) -> float:
    import psycopg

    names = list(rows[0])
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE baseline (id bigint, device text, temp double precision, "
            "humidity double precision, battery bigint, note text)"
        )
        conn.commit()
        start = time.perf_counter()
        for i in range(0, len(rows), BATCH):
            with conn.transaction(), conn.cursor() as cursor:
                copy_sql = f"COPY baseline ({', '.join(names)}) FROM STDIN"
                with cursor.copy(copy_sql) as copy:
                    for row in rows[i : i + BATCH]:
                        copy.write_row(tuple(row.values()))
        return time.perf_counter() - start


def _postgres_round(
    server: Any, rows: list[dict[str, Any]], batches: list[list[Event]]
) -> tuple[float, float]:
    import psycopg

    dsn = server.dsn(server.create_database())
    baseline = _postgres_baseline(dsn, rows)
    subject = _postgres_sink(dsn, batches)
    with psycopg.connect(dsn) as conn:
        for table in ("sink", "baseline"):
            (count,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)
            assert count == len(rows), f"{table}: {count} rows of {len(rows)}"
    return len(rows) / subject, len(rows) / baseline


# -- the suite -------------------------------------------------------------------------------


def run(runs: int, records: int) -> list[Result]:
    rows = _rows(records)
    batches = _batches(rows)
    results: list[Result] = []

    sqlite_runs: list[float] = []
    sqlite_base: list[float] = []
    for _ in range(runs):
        subject, baseline = _sqlite_round(rows, batches)
        sqlite_runs.append(subject)
        sqlite_base.append(baseline)
    value = median(sqlite_runs)
    results.append(
        Result(
            name="topic → sqlite sink (upsert by id, 100-byte rows)",
            unit="rows/s",
            value=value,
            target=f"≥ {TARGET:,} rows/s",
            met=value >= TARGET,
            baseline=median(sqlite_base),
            baseline_label="sqlite-utils upsert_all, same batches",
            runs=sqlite_runs,
            baseline_runs=sqlite_base,
            note=f"the sink fed decoded events in batches of {BATCH:,} (write + flush each), "
            "as the sink worker does; WAL mode, one transaction per batch on both sides",
        )
    )

    fixture = _fixture()
    if fixture.find_bindir() is None:
        print("postgres: not installed; skipped", file=sys.stderr)
        return results
    server = fixture.PostgresServer()
    try:
        server.start()
        pg_runs: list[float] = []
        pg_base: list[float] = []
        for _ in range(runs):
            subject, baseline = _postgres_round(server, rows, batches)
            pg_runs.append(subject)
            pg_base.append(baseline)
    finally:
        server.close()
    value = median(pg_runs)
    results.append(
        Result(
            name="topic → postgres sink (COPY, 100-byte rows)",
            unit="rows/s",
            value=value,
            target=f"≥ {TARGET:,} rows/s",
            met=value >= TARGET,
            baseline=median(pg_base),
            baseline_label="psycopg COPY write_row, same batches",
            runs=pg_runs,
            baseline_runs=pg_base,
            note=f"the sink fed decoded events in batches of {BATCH:,} (write + flush each, "
            "one transaction); the table made from the first batch; a local server with "
            "fsync off, started by the benchmark",
        )
    )
    return results
