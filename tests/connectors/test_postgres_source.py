"""The postgres source against a real PostgreSQL: snapshots, incremental reads, resuming,
reconnecting."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

import pytest
from postgres_server import PostgresDatabase, PostgresServer
from pydantic import ValidationError

from millstream.connectors.postgres import PostgresSource, PostgresSourceConfig
from millstream.core import ConnectorContext, ConnectorError, SourceBatch
from millstream.core.testing import SourceConformance

CONTEXT = ConnectorContext("p", "db")


def fill(db: PostgresDatabase, count: int, start: int = 0) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS readings (id bigint PRIMARY KEY, device text, "
        "temp numeric(10,2), at timestamptz, doc jsonb)"
    )
    db.execute(
        "INSERT INTO readings SELECT n, 'sensor-' || (n %% 3), 20 + n / 10.0, "
        "timestamptz '2024-05-01 00:00:00+00' + n * interval '1 minute', "
        "jsonb_build_object('n', n) FROM generate_series(%s::bigint, %s::bigint) AS n",
        (start, start + count - 1),
    )


class TestPostgresSnapshotConformance(SourceConformance):
    source = PostgresSource

    @pytest.fixture(autouse=True)
    def _database(self, postgres: PostgresDatabase) -> None:
        self.database = postgres

    def prepare(self, count: int) -> dict[str, Any]:
        fill(self.database, count)
        return {"dsn": self.database.dsn, "table": "readings", "batch_size": 7}

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        dsn = self.database.dsn
        return [
            ({"dsn": dsn, "table": "nope"}, "table"),
            ({"dsn": dsn, "query": "SELEC 1"}, "query"),
            ({"dsn": dsn, "table": "readings", "column": "nope"}, "column"),
            ({"dsn": dsn, "table": "readings", "key": "nope"}, "key"),
            ({"dsn": dsn + "_nope", "table": "readings"}, "dsn"),
            ({"dsn": dsn, "query": "SELECT 1 AS n", "mode": "incremental"}, "column"),
            ({"dsn": dsn, "table": "readings", "interval": "0s"}, "interval"),
        ]


class TestPostgresIncrementalConformance(TestPostgresSnapshotConformance):
    def prepare(self, count: int) -> dict[str, Any]:
        return {**super().prepare(count), "mode": "incremental", "interval": "50ms"}


def test_an_interval_of_nothing_is_refused_saying_what_is_valid() -> None:
    settings = {"dsn": "postgresql://app@db/shop", "table": "readings", "interval": "0s"}
    with pytest.raises(ValidationError, match="must be more than 0s") as caught:
        PostgresSourceConfig.model_validate(settings)
    assert caught.value.errors()[0]["loc"] == ("interval",)


def make_source(dsn: str, **settings: Any) -> PostgresSource:
    config = PostgresSourceConfig.model_validate({"dsn": dsn, **settings})
    return PostgresSource(config, CONTEXT)


async def read_all(source: PostgresSource, position: Any = None) -> tuple[list[SourceBatch], Any]:
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


async def test_a_snapshot_reads_rows_as_json_values_then_ends(postgres: PostgresDatabase) -> None:
    fill(postgres, 25)
    batches, position = await read_all(
        make_source(postgres.dsn, table="readings", batch_size=10, key="device")
    )
    assert [len(b.events) for b in batches] == [10, 10, 5]
    assert position == {"after": 24}  # by the primary key
    first = batches[0].events[1]
    assert first.key == b"sensor-1"
    assert first.value == {
        "id": 1,
        "device": "sensor-1",
        "temp": 20.1,
        "at": "2024-05-01T00:01:00+00:00",
        "doc": {"n": 1},
    }


async def test_incremental_by_a_timestamp_resumes_with_only_new_rows(
    postgres: PostgresDatabase,
) -> None:
    fill(postgres, 30)
    settings = {"table": "readings", "mode": "incremental", "column": "at", "batch_size": 8}
    first, position = await read_all(make_source(postgres.dsn, interval="50ms", **settings))
    assert [v["id"] for v in values(first)] == list(range(30))
    assert position == {"after": "2024-05-01T00:29:00+00:00"}
    fill(postgres, 12, start=30)  # rows added while the pipeline was down
    again, position = await read_all(
        make_source(postgres.dsn, interval="50ms", **settings), position
    )
    assert [v["id"] for v in values(again)] == list(range(30, 42))


async def test_rows_sharing_a_value_at_a_batch_edge_are_not_skipped(
    postgres: PostgresDatabase,
) -> None:
    postgres.execute("CREATE TABLE events (name text, day date)")
    postgres.execute(
        "INSERT INTO events SELECT 'e' || n, date '2024-01-01' + n / 4 "
        "FROM generate_series(0, 19) AS n"
    )
    batches, position = await read_all(
        make_source(postgres.dsn, table="events", column="day", batch_size=3)
    )
    assert sorted(v["name"] for v in values(batches)) == sorted(f"e{n}" for n in range(20))
    assert position == {"after": dt.date(2024, 1, 5).isoformat()}


async def test_a_query_without_a_column_resumes_by_row_count(postgres: PostgresDatabase) -> None:
    fill(postgres, 20)
    query = "SELECT id * 2 AS double FROM readings WHERE device LIKE 'sensor-%' ORDER BY id"
    source = make_source(postgres.dsn, query=query, batch_size=6)
    await source.open(None)
    try:
        batch = await source.read()
        assert batch is not None and batch.position == {"rows": 6}
    finally:
        await source.close()
    rest, position = await read_all(
        make_source(postgres.dsn, query=query, batch_size=6), {"rows": 6}
    )
    assert [v["double"] for v in values(rest)] == [n * 2 for n in range(6, 20)]
    assert position == {"rows": 20}


async def test_a_snapshot_without_a_column_reads_each_row_once_while_the_table_changes(
    postgres: PostgresDatabase,
) -> None:
    postgres.execute("CREATE TABLE plain (n bigint, note text)")
    postgres.execute("INSERT INTO plain SELECT n, 'x' FROM generate_series(0, 29) AS n")
    source = make_source(postgres.dsn, table="plain", batch_size=10)
    await source.open(None)
    try:
        first = await source.read()
        assert first is not None and first.position == {"rows": 10}
        # rows updated move in the table's storage; rows deleted and added change the count
        postgres.execute("UPDATE plain SET note = 'y' WHERE n < 5")
        postgres.execute("DELETE FROM plain WHERE n >= 25")
        postgres.execute("INSERT INTO plain VALUES (100, 'z')")
        rest = [first]
        while (batch := await source.read()) is not None:
            rest.append(batch)
    finally:
        await source.close()
    assert sorted(v["n"] for v in values(rest)) == list(range(30))
    assert rest[-1].position == {"rows": 30}


async def test_a_table_snapshot_without_a_column_resumes_by_row_count(
    postgres: PostgresDatabase,
) -> None:
    postgres.execute("CREATE TABLE plain (n bigint, note text)")
    postgres.execute("INSERT INTO plain SELECT n, 'x' FROM generate_series(0, 29) AS n")
    first, _ = await read_all(make_source(postgres.dsn, table="plain", batch_size=7))
    postgres.execute("UPDATE plain SET note = 'x' WHERE n < 5")  # the rows move in storage
    source = make_source(postgres.dsn, table="plain", batch_size=7)
    await source.open(None)
    try:
        batch = await source.read()
        assert batch is not None
    finally:
        await source.close()
    rest, _ = await read_all(make_source(postgres.dsn, table="plain", batch_size=7), batch.position)
    assert [v["n"] for v in values([batch, *rest])] == [v["n"] for v in values(first)]
    assert sorted(v["n"] for v in values(first)) == list(range(30))


async def test_a_failing_read_is_one_line_naming_the_source(postgres: PostgresDatabase) -> None:
    fill(postgres, 3)
    source = make_source(postgres.dsn, table="readings", mode="incremental", interval="20ms")
    await source.open(None)
    try:
        assert await source.read() is not None
        postgres.execute("DROP TABLE readings")
        with pytest.raises(ConnectorError) as caught:
            await source.read()
    finally:
        await source.close()
    assert str(caught.value) == "postgres source 'db': relation \"readings\" does not exist"


async def test_incremental_over_a_table_without_a_primary_key_needs_a_column(
    postgres: PostgresDatabase,
) -> None:
    postgres.execute("CREATE TABLE log (line text)")
    source = make_source(postgres.dsn, table="log", mode="incremental")
    with pytest.raises(ConnectorError, match="column: table 'log' has no one-column primary key"):
        await source.open(None)
    await source.close()


async def test_a_read_goes_on_after_the_server_restarts(
    postgres_own_server: PostgresServer,
) -> None:
    database = PostgresDatabase(postgres_own_server, postgres_own_server.create_database())
    fill(database, 10)
    source = make_source(
        database.dsn, table="readings", mode="incremental", interval="50ms", batch_size=4
    )
    await source.open(None)
    got: list[int] = []
    try:
        while len(got) < 10:
            batch = await asyncio.wait_for(source.read(), 5)
            assert batch is not None
            got += [e.value["id"] for e in batch.events]
        await asyncio.to_thread(postgres_own_server.restart)
        fill(database, 6, start=10)
        while len(got) < 16:
            batch = await asyncio.wait_for(source.read(), 30)
            assert batch is not None
            got += [e.value["id"] for e in batch.events]
    finally:
        await source.close()
    assert got == list(range(16))
