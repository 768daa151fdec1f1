"""The postgres sink against a real PostgreSQL: upserts, COPY, tables made from columns or
from the first rows, new columns, refused rows, a dropped connection, a missing psycopg."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from postgres_server import PostgresDatabase, PostgresServer

from millstream.connectors.postgres import PostgresSink, PostgresSinkConfig
from millstream.core import ConnectorContext, ConnectorError, Event, EventsRejected
from millstream.core.testing import SinkConformance

CONTEXT = ConnectorContext("p", "db")


class TestPostgresUpsertConformance(SinkConformance):
    sink = PostgresSink

    @pytest.fixture(autouse=True)
    def _database(self, postgres: PostgresDatabase) -> None:
        self.database = postgres

    def settings(self) -> dict[str, Any]:
        return {"dsn": self.database.dsn, "table": "readings", "pk": "n"}

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        dsn = self.database.dsn
        return [
            ({"dsn": dsn, "table": "readings"}, "pk"),
            ({"dsn": dsn, "table": "readings", "pk": "n", "mode": "append"}, "mode"),
            ({"dsn": dsn + "_nope", "table": "readings", "pk": "n"}, "dsn"),
            ({"dsn": dsn, "table": "r", "pk": "n", "columns": {"x": "int"}}, "columns"),
        ]

    def read_back(self) -> list[Any]:
        exists = self.database.query("SELECT to_regclass('readings') IS NOT NULL")[0][0]
        if not exists:
            return []
        # a column an event did not have is NULL in its row
        query = "SELECT jsonb_strip_nulls(to_jsonb(r)) FROM readings r"
        return [r[0] for r in self.database.query(query)]


class TestPostgresCopyConformance(TestPostgresUpsertConformance):
    def settings(self) -> dict[str, Any]:
        return {"dsn": self.database.dsn, "table": "readings", "mode": "copy"}


def make_sink(dsn: str, **settings: Any) -> PostgresSink:
    config = PostgresSinkConfig.model_validate({"dsn": dsn, "table": "readings", **settings})
    return PostgresSink(config, CONTEXT)


async def write(sink: PostgresSink, *batches: list[Event]) -> list[EventsRejected]:
    refused: list[EventsRejected] = []
    await sink.open()
    try:
        for batch in batches:
            await sink.write(batch)
            try:
                await sink.flush()
            except EventsRejected as exc:
                refused.append(exc)
    finally:
        await sink.close()
    return refused


def column_types(db: PostgresDatabase, table: str = "readings") -> dict[str, str]:
    return dict(
        db.query(
            "SELECT column_name::text, data_type::text FROM information_schema.columns "
            "WHERE table_name = %s ORDER BY ordinal_position",
            (table,),
        )
    )


async def test_a_table_is_made_from_the_first_rows_with_guessed_types(
    postgres: PostgresDatabase,
) -> None:
    value = {
        "id": 1,
        "temp": 21.5,
        "ok": True,
        "at": "2024-05-01T12:00:00Z",
        "place": {"lat": 1.5},
        "name": "a",
        "mixed": 1,
        "empty": None,
    }
    other = {**value, "id": 2, "temp": 3, "mixed": "x"}
    assert await write(make_sink(postgres.dsn, pk="id"), [Event(value), Event(other)]) == []
    assert column_types(postgres) == {
        "id": "bigint",
        "temp": "double precision",
        "ok": "boolean",
        "at": "timestamp with time zone",
        "place": "jsonb",
        "name": "text",
        "mixed": "text",
        "empty": "text",
    }
    (row,) = postgres.query("SELECT at, place FROM readings WHERE id = 1")
    assert row == (dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC), {"lat": 1.5})
    pk = postgres.query(
        "SELECT a.attname::text FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
        "AND a.attnum = ANY(i.indkey) WHERE i.indrelid = 'readings'::regclass AND i.indisprimary"
    )
    assert pk == [("id",)]


async def test_a_table_is_made_from_the_columns_setting(postgres: PostgresDatabase) -> None:
    columns = {"id": "integer", "reading": "numeric(6,2)", "tags": "text[]"}
    sink = make_sink(postgres.dsn, pk="id", columns=columns)
    assert await write(sink, [Event({"id": 7, "reading": 1.234, "tags": "{a,b}"})]) == []
    assert column_types(postgres) == {"id": "integer", "reading": "numeric", "tags": "ARRAY"}
    assert postgres.query("SELECT id, reading::text, tags FROM readings") == [
        (7, "1.23", ["a", "b"])
    ]


async def test_upsert_keeps_one_row_per_key_even_within_a_batch(
    postgres: PostgresDatabase,
) -> None:
    first = [Event({"id": i, "temp": 20.0 + i}) for i in range(5)]
    again = [Event({"id": i, "temp": 30.0 + i}) for i in (3, 4, 5, 3)]
    assert await write(make_sink(postgres.dsn, pk="id"), first, first, again) == []
    got = dict(postgres.query("SELECT id, temp FROM readings"))
    assert got == {0: 20.0, 1: 21.0, 2: 22.0, 3: 33.0, 4: 34.0, 5: 35.0}


async def test_copy_appends_every_event(postgres: PostgresDatabase) -> None:
    events = [Event({"n": i, "text": f"line\t{i}\n\\", "doc": {"i": i}}) for i in range(1000)]
    assert await write(make_sink(postgres.dsn, mode="copy"), events, events[:10]) == []
    assert postgres.query("SELECT count(*), count(DISTINCT n) FROM readings") == [(1010, 1000)]
    assert postgres.query("SELECT text, doc FROM readings WHERE n = 5 LIMIT 1") == [
        ("line\t5\n\\", {"i": 5})
    ]


async def test_new_columns_are_added_as_they_appear(postgres: PostgresDatabase) -> None:
    await write(
        make_sink(postgres.dsn, pk="id"),
        [Event({"id": 1, "temp": 20.5})],
        [Event({"id": 2, "humidity": 40, "place": {"x": 1}})],
    )
    assert column_types(postgres) == {
        "id": "bigint",
        "temp": "double precision",
        "humidity": "bigint",
        "place": "jsonb",
    }
    assert postgres.query("SELECT id, temp, humidity FROM readings ORDER BY id") == [
        (1, 20.5, None),
        (2, None, 40),
    ]


@pytest.mark.parametrize("refusing", [False, True], ids=["all-good", "one-refused"])
async def test_an_upsert_sets_only_the_columns_of_its_event_however_batched(
    postgres: PostgresDatabase, refusing: bool
) -> None:
    first = [Event({"id": 1, "temp": 20, "hum": 50})]
    later = [Event({"id": 1, "temp": 21}), Event({"id": 2, "hum": 1}), Event({"id": 1, "hum": 7})]
    if refusing:  # the batch is then written row by row
        later.append(Event({"id": 3, "temp": 999}))
    for table in ("apart", "together"):
        postgres.execute(
            f"CREATE TABLE {table} (id bigint PRIMARY KEY, temp bigint CHECK (temp < 100), "
            "hum bigint)"
        )
    await write(make_sink(postgres.dsn, pk="id", table="apart"), first, *([e] for e in later))
    await write(make_sink(postgres.dsn, pk="id", table="together"), first, later)
    wanted = [(1, 21, 7), (2, None, 1)]
    assert postgres.query("SELECT * FROM apart ORDER BY id") == wanted
    assert postgres.query("SELECT * FROM together ORDER BY id") == wanted


async def test_an_empty_mapping_beside_others_is_refused_in_upsert_mode(
    postgres: PostgresDatabase,
) -> None:
    events = [Event({"id": 1, "temp": 20}, offset=0), Event({}, offset=1)]
    (refused,) = await write(make_sink(postgres.dsn, pk="id"), events)
    assert [(r.event.offset, r.reason) for r in refused.rejections] == [
        (1, "no value for the primary key (id) to upsert by")
    ]
    assert postgres.query("SELECT id, temp FROM readings") == [(1, 20)]


@pytest.mark.parametrize("mode", ["upsert", "copy"])
async def test_refused_rows_are_named_and_the_others_land(
    postgres: PostgresDatabase, mode: str
) -> None:
    postgres.execute(
        "CREATE TABLE readings (id bigint PRIMARY KEY, temp double precision CHECK (temp < 100),"
        " note text)"
    )
    events = [
        Event({"id": 1, "temp": 20.0}, offset=0),
        Event({"id": 2, "temp": 999.0}, offset=1),  # the CHECK refuses it
        Event({"id": 3, "temp": "warm"}, offset=2),  # not a number
        Event({"id": 4, "note": "nul\x00byte"}, offset=3),  # text cannot hold NUL
        Event({"temp": 5.0}, offset=4),  # no primary key
        Event({"id": 6, "temp": 22.0}, offset=5),
    ]
    (refused,) = await write(make_sink(postgres.dsn, pk="id", mode=mode), events)
    reasons = {r.event.offset: r.reason for r in refused.rejections}
    assert set(reasons) == {1, 2, 3, 4}
    assert "violates check constraint" in reasons[1]
    assert "invalid input syntax for type double precision" in reasons[2]
    assert "0x00" in reasons[3]
    assert "null value in column" in reasons[4]
    assert all(r.startswith("postgres refused the row: ") for r in reasons.values())
    assert postgres.query("SELECT id, temp FROM readings ORDER BY id") == [(1, 20.0), (6, 22.0)]


async def test_upsert_into_a_table_without_a_unique_key_is_refused_at_open(
    postgres: PostgresDatabase,
) -> None:
    postgres.execute("CREATE TABLE readings (id bigint, temp double precision)")
    sink = make_sink(postgres.dsn, pk="id")
    with pytest.raises(ConnectorError, match=r"pk: table 'readings' has no primary key"):
        await sink.open()
    await sink.close()


async def test_a_failed_open_leaves_no_connection_behind(postgres: PostgresDatabase) -> None:
    postgres.execute("CREATE TABLE readings (id bigint, temp double precision)")
    sink = make_sink(postgres.dsn, pk="id")
    with pytest.raises(ConnectorError, match="pk:"):
        await sink.open()  # no close(): the runtime does not close what failed to open
    others = (
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid()"
    )
    deadline = asyncio.get_running_loop().time() + 5
    while postgres.query(others) != [(0,)]:
        assert asyncio.get_running_loop().time() < deadline, "the sink's connection is open"
        await asyncio.sleep(0.05)


async def test_database_errors_are_one_line_naming_the_sink(postgres: PostgresDatabase) -> None:
    columns = {"id": "bigint", "x": "no_such_type"}
    sink = make_sink(postgres.dsn, pk="id", columns=columns)
    with pytest.raises(ConnectorError) as caught:
        await sink.open()
    assert str(caught.value) == "postgres sink 'db': type \"no_such_type\" does not exist"
    postgres.execute("CREATE TABLE readings (id bigint PRIMARY KEY, x bigint)")
    postgres.execute(
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'closed for the day'; END $$"
    )
    postgres.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON readings FOR EACH ROW EXECUTE FUNCTION refuse()"
    )
    sink = make_sink(postgres.dsn, pk="id")
    await sink.open()
    try:
        await sink.write([Event({"id": 1, "x": 1})])
        with pytest.raises(ConnectorError) as caught:
            await sink.flush()
    finally:
        await sink.close()
    assert str(caught.value) == "postgres sink 'db': closed for the day"


async def test_a_schema_qualified_table(postgres: PostgresDatabase) -> None:
    postgres.execute("CREATE SCHEMA audit")
    sink = make_sink(postgres.dsn, table="audit.events", mode="copy")
    assert await write(sink, [Event({"n": 1})]) == []
    assert postgres.query("SELECT n FROM audit.events") == [(1,)]


async def test_the_password_is_never_in_an_error(postgres: PostgresDatabase) -> None:
    dsn = postgres.server.dsn(postgres.name + "_missing", password="s3cret-pw")
    sink = make_sink(dsn, pk="id")
    with pytest.raises(ConnectorError) as caught:
        await sink.open()
    await sink.close()
    assert "s3cret-pw" not in str(caught.value)
    assert ":****@127.0.0.1" in str(caught.value)
    assert "s3cret-pw" not in repr(
        PostgresSinkConfig.model_validate({"dsn": dsn, "table": "t", "pk": "i"})
    )


async def test_a_batch_is_written_again_after_a_restart_of_the_server(
    postgres_own_server: PostgresServer,
) -> None:
    name = postgres_own_server.create_database()
    dsn = postgres_own_server.dsn(name)
    sink = make_sink(dsn, pk="id", reconnect_for="30s")
    await sink.open()
    try:
        await sink.write([Event({"id": i}) for i in range(100)])
        await sink.flush()
        postgres_own_server.restart()  # the sink's connection is cut
        await sink.write([Event({"id": i}) for i in range(100, 200)])
        await sink.flush()
    finally:
        await sink.close()
    database = PostgresDatabase(postgres_own_server, name)
    assert database.query("SELECT count(*), min(id), max(id) FROM readings") == [(200, 0, 199)]


async def test_an_unreachable_server_fails_after_reconnect_for() -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sink = make_sink(f"postgresql://app:pw@127.0.0.1:{port}/shop", pk="id", reconnect_for="300ms")
    with pytest.raises(
        ConnectorError, match=r"cannot reach postgresql://app:\*\*\*\*@127\.0\.0\.1"
    ):
        await sink.open()
    await sink.close()


def test_without_psycopg_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now raises ImportError
    with pytest.raises(ValueError, match=r"pip install 'millstream\[postgres\]'"):
        PostgresSinkConfig.model_validate({"dsn": "postgresql://x/y", "table": "t", "pk": "i"})


def test_validate_without_psycopg_names_the_setting_and_the_install(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        "pipeline: p\n"
        "topics: {rows: {partitions: 1}}\n"
        "sources: {gen: {connector: generator, config: {count: 1}, to: rows}}\n"
        "sinks:\n"
        "  db:\n"
        "    connector: postgres\n"
        "    config: {dsn: 'postgresql://app:pw@db/shop', table: t, pk: id}\n"
        "    from: rows\n"
    )
    # the connector package imports without psycopg; the pipeline using it is refused
    script = (
        "import sys; sys.modules['psycopg'] = None\n"
        "from millstream.core.cli import main\n"
        f"sys.exit(main(['validate', {str(pipeline)!r}]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 2, done.stderr
    assert "p.yaml:7:13: sinks.db.config: " in done.stderr
    assert "pip install 'millstream[postgres]'" in done.stderr
