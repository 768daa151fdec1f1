"""The sqlite source against real SQLite files: snapshots, incremental reads, resuming."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from millstream.connectors.sqlite import SqliteSource, SqliteSourceConfig
from millstream.core import ConnectorContext, ConnectorError, Event, SourceBatch
from millstream.core.testing import SourceConformance


def make_table(path: Path, count: int, start: int = 0) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=wal")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS readings "
            "(id INTEGER PRIMARY KEY, device TEXT, temp REAL, raw BLOB)"
        )
        conn.executemany(
            "INSERT INTO readings (id, device, temp) VALUES (?, ?, ?)",
            [(n, f"sensor-{n % 3}", 20.0 + n / 10) for n in range(start, start + count)],
        )
    conn.close()


class TestSqliteSnapshotConformance(SourceConformance):
    source = SqliteSource

    def prepare(self, count: int) -> dict[str, Any]:
        make_table(self.tmp_path / "in.db", count)
        return {"path": str(self.tmp_path / "in.db"), "table": "readings", "batch_size": 7}

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        path = str(self.tmp_path / "in.db")
        return [
            ({"path": str(self.tmp_path / "none.db"), "table": "readings"}, "path"),
            ({"path": path, "table": "nope"}, "table"),
            ({"path": path, "query": "SELEC 1"}, "query"),
            ({"path": path, "table": "readings", "column": "nope"}, "column"),
            ({"path": path, "table": "readings", "key": "nope"}, "key"),
            ({"path": path, "table": "readings", "query": "SELECT 1"}, "table"),
            ({"path": path, "query": "SELECT 1 AS n", "mode": "incremental"}, "column"),
            ({"path": path, "table": "readings", "batch_size": 0}, "batch_size"),
            ({"path": path, "table": "readings", "interval": 5}, "interval"),
            ({"path": path, "table": "readings", "interval": "0s"}, "interval"),
        ]


class TestSqliteIncrementalConformance(TestSqliteSnapshotConformance):
    def prepare(self, count: int) -> dict[str, Any]:
        return {**super().prepare(count), "mode": "incremental", "interval": "50ms"}


class TestSqliteQuerySnapshotConformance(TestSqliteSnapshotConformance):
    def prepare(self, count: int) -> dict[str, Any]:
        make_table(self.tmp_path / "in.db", count)
        query = "SELECT device, temp FROM readings ORDER BY id"
        return {"path": str(self.tmp_path / "in.db"), "query": query, "batch_size": 7}


def test_an_interval_of_nothing_is_refused_saying_what_is_valid(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="must be more than 0s") as caught:
        SqliteSourceConfig.model_validate(
            {"path": str(tmp_path / "in.db"), "table": "readings", "interval": "0ms"}
        )
    assert caught.value.errors()[0]["loc"] == ("interval",)


def make_source(path: Path, **settings: Any) -> SqliteSource:
    config = SqliteSourceConfig.model_validate({"path": str(path), **settings})
    return SqliteSource(config, ConnectorContext("p", "db", base_dir=path.parent))


async def read_all(source: SqliteSource, position: Any = None) -> tuple[list[SourceBatch], Any]:
    """Every batch until the source ends or has nothing new for a moment."""
    batches: list[SourceBatch] = []
    await source.open(position)
    try:
        while True:
            try:
                batch = await asyncio.wait_for(source.read(), 0.5)
            except TimeoutError:
                break
            if batch is None:
                break
            batches.append(batch)
            position = batch.position
            await source.ack(position)
    finally:
        await source.close()
    return batches, position


def values(batches: list[SourceBatch]) -> list[Any]:
    return [e.value for b in batches for e in b.events]


async def test_a_snapshot_reads_every_row_in_batches_then_ends(tmp_path: Path) -> None:
    make_table(tmp_path / "in.db", 25)
    batches, _ = await read_all(make_source(tmp_path / "in.db", table="readings", batch_size=10))
    assert [len(b.events) for b in batches] == [10, 10, 5]
    assert values(batches)[3] == {"id": 3, "device": "sensor-0", "temp": 20.3, "raw": None}


async def test_rows_become_events_with_the_key_column_as_key(tmp_path: Path) -> None:
    path = tmp_path / "in.db"
    make_table(path, 2)
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE readings SET raw = ? WHERE id = 1", (b"\x00\xff",))
    batches, _ = await read_all(make_source(path, table="readings", key="device"))
    events: list[Event] = batches[0].events
    assert [e.key for e in events] == [b"sensor-0", b"sensor-1"]
    assert events[1].value["raw"] == "AP8="  # a blob as base64 text


async def test_incremental_resumes_after_a_restart_with_only_new_rows(tmp_path: Path) -> None:
    path = tmp_path / "in.db"
    make_table(path, 30)
    first, position = await read_all(
        make_source(path, table="readings", mode="incremental", interval="20ms", batch_size=8)
    )
    assert [v["id"] for v in values(first)] == list(range(30))
    assert position == {"after": 29}
    make_table(path, 12, start=30)  # rows added while the pipeline was down
    again, position = await read_all(
        make_source(path, table="readings", mode="incremental", interval="20ms", batch_size=8),
        position,
    )
    assert [v["id"] for v in values(again)] == list(range(30, 42))
    assert position == {"after": 41}


async def test_incremental_sees_rows_written_while_it_polls(tmp_path: Path) -> None:
    path = tmp_path / "in.db"
    make_table(path, 3)
    source = make_source(path, table="readings", mode="incremental", interval="20ms")
    await source.open(None)
    try:
        first = await asyncio.wait_for(source.read(), 2)
        assert first is not None and len(first.events) == 3
        waiting = asyncio.ensure_future(source.read())
        await asyncio.sleep(0.1)
        assert not waiting.done()  # nothing new yet: it polls
        make_table(path, 2, start=3)
        later = await asyncio.wait_for(waiting, 2)
        assert later is not None
        assert [e.value["id"] for e in later.events] == [3, 4]
    finally:
        await source.close()


async def test_rows_sharing_a_value_at_a_batch_edge_are_not_skipped(tmp_path: Path) -> None:
    path = tmp_path / "in.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE events (name TEXT, updated_at TEXT)")
        stamps = ["2024-01-01T00:00:0" + str(n // 4) for n in range(20)]  # 4 rows per stamp
        conn.executemany(
            "INSERT INTO events VALUES (?, ?)", [(f"e{n}", s) for n, s in enumerate(stamps)]
        )
    source = make_source(path, table="events", column="updated_at", batch_size=3)
    batches, position = await read_all(source)
    assert sorted(v["name"] for v in values(batches)) == sorted(f"e{n}" for n in range(20))
    assert len(values(batches)) == 20
    assert position == {"after": "2024-01-01T00:00:04"}


async def test_a_query_snapshot_resumes_by_row_count(tmp_path: Path) -> None:
    path = tmp_path / "in.db"
    make_table(path, 20)
    query = "SELECT id * 2 AS double FROM readings ORDER BY id"
    source = make_source(path, query=query, batch_size=6)
    await source.open(None)
    try:
        batch = await source.read()
        assert batch is not None and batch.position == {"rows": 6}
    finally:
        await source.close()
    rest, position = await read_all(make_source(path, query=query, batch_size=6), {"rows": 6})
    assert [v["double"] for v in values(rest)] == [n * 2 for n in range(6, 20)]
    assert position == {"rows": 20}


async def test_a_failing_read_is_one_line_naming_the_source(tmp_path: Path) -> None:
    path = tmp_path / "in.db"
    make_table(path, 3)
    source = make_source(path, table="readings", mode="incremental", interval="20ms")
    await source.open(None)
    try:
        assert await source.read() is not None
        with sqlite3.connect(path) as conn:
            conn.execute("DROP TABLE readings")
        with pytest.raises(ConnectorError) as caught:
            await source.read()
    finally:
        await source.close()
    assert str(caught.value) == "sqlite source 'db': no such table: readings"


async def test_a_position_from_other_settings_is_refused(tmp_path: Path) -> None:
    make_table(tmp_path / "in.db", 3)
    source = make_source(tmp_path / "in.db", query="SELECT * FROM readings")
    with pytest.raises(ConnectorError, match="does not fit these settings"):
        await source.open({"after": 2})
    await source.close()


async def test_an_incremental_source_over_a_table_without_rowid_needs_a_column(
    tmp_path: Path,
) -> None:
    path = tmp_path / "in.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT) WITHOUT ROWID")
        conn.execute("INSERT INTO kv VALUES ('a', '1')")
    source = make_source(path, table="kv", mode="incremental")
    with pytest.raises(ConnectorError, match="column: table 'kv' has no rowid"):
        await source.open(None)
    await source.close()
    batches, _ = await read_all(make_source(path, table="kv"))  # a snapshot counts rows
    assert values(batches) == [{"k": "a", "v": "1"}]
