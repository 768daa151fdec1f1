"""Pipelines with PostgreSQL at both ends: every row exactly once while the server restarts in
the middle of the run; a row the database refuses goes to the dead-letter topic."""

from __future__ import annotations

import asyncio
import logging
import textwrap
import threading
import time
from pathlib import Path

import orjson
import psycopg
import pytest
from postgres_server import PostgresDatabase, PostgresServer

from millstream.connectors.memory import channel, reset_channels
from millstream.core import Event
from millstream.core.client import connect
from millstream.core.plugins import get_registry
from millstream.core.record import TopicPartition
from millstream.pipelines.runtime import Runtime
from millstream.pipelines.spec import load_pipeline

ROWS = 600


def insert_rows(dsn: str, count: int, done: threading.Event) -> None:
    """Insert rows 0..count-1 one by one, in order, each committed; a row whose insert fails
    (the server is restarting) is tried again until it lands."""
    conn: psycopg.Connection | None = None
    n = 0
    while n < count:
        try:
            if conn is None or conn.closed:
                conn = psycopg.connect(dsn, autocommit=True, connect_timeout=2)
            conn.execute(
                "INSERT INTO src VALUES (%s, %s) ON CONFLICT DO NOTHING", (n, f"payload {n}")
            )
            n += 1
            time.sleep(0.003)
        except psycopg.OperationalError:
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(0.05)
    if conn is not None:
        conn.close()
    done.set()


def count(db: PostgresDatabase) -> int:
    for _ in range(100):
        try:
            exists = db.query("SELECT to_regclass('dst') IS NOT NULL")[0][0]
            return int(db.query("SELECT count(*) FROM dst")[0][0]) if exists else 0
        except psycopg.OperationalError:
            time.sleep(0.05)
    raise AssertionError("the server did not come back")


async def wait_for(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def test_rows_land_exactly_once_across_a_server_restart(
    postgres_own_server: PostgresServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    db = PostgresDatabase(postgres_own_server, postgres_own_server.create_database())
    db.execute("CREATE TABLE src (id bigint PRIMARY KEY, payload text)")
    pipeline_file = tmp_path / "p.yaml"
    pipeline_file.write_text(
        textwrap.dedent(
            f"""\
            pipeline: p
            dead_letter: dead
            topics:
              rows: {{partitions: 1}}
              dead: {{partitions: 1}}
            sources:
              table:
                connector: postgres
                config:
                  dsn: {db.dsn}
                  table: src
                  mode: incremental
                  interval: 20ms
                  batch_size: 25
                to: rows
            sinks:
              copy:
                connector: postgres
                config: {{dsn: "{db.dsn}", table: dst, pk: id}}
                from: rows
            """
        )
    )
    pipeline = load_pipeline(pipeline_file)
    inserted = threading.Event()
    inserter = threading.Thread(target=insert_rows, args=(db.dsn, ROWS, inserted), daemon=True)
    async with await connect(f"file:{tmp_path / 'store'}") as store:
        runtime = Runtime([pipeline], store, get_registry())
        await runtime.prepare()
        stop = asyncio.Event()
        running = asyncio.create_task(runtime.run(stop))
        try:
            inserter.start()
            await wait_for(lambda: count(db) >= 100, 30, "the first rows")
            assert not inserted.is_set(), "the rows came too fast to restart mid-run"
            await asyncio.to_thread(postgres_own_server.restart)
            await wait_for(inserted.is_set, 60, "the inserts")
            await wait_for(lambda: count(db) >= ROWS, 60, "every row in dst")
        finally:
            stop.set()
            assert await asyncio.wait_for(running, 30) == "stopped"
        admin = store.admin()
        written = await admin.list_offsets(TopicPartition("rows", 0), "latest")
        dead = await admin.list_offsets(TopicPartition("dead", 0), "latest")
    rows = db.query("SELECT id, payload FROM dst ORDER BY id")
    assert rows == [(n, f"payload {n}") for n in range(ROWS)]
    assert written == ROWS, f"the source wrote {written} events for {ROWS} rows"
    assert dead == 0
    # both ends lost their connection and made a new one
    warnings = [r.getMessage() for r in caplog.records]
    assert any("postgres source 'table'" in w for w in warnings), warnings
    assert any("postgres sink 'copy'" in w for w in warnings), warnings


async def test_a_refused_row_goes_to_the_dead_letter_topic_and_the_rest_land(
    postgres: PostgresDatabase, tmp_path: Path
) -> None:
    postgres.execute("CREATE TABLE dst (id bigint PRIMARY KEY, temp double precision)")
    reset_channels()
    channel("pg-in").append(
        Event({"id": n, "temp": "hot" if n == 2 else 20.0 + n}) for n in range(5)
    )
    pipeline_file = tmp_path / "p.yaml"
    pipeline_file.write_text(
        textwrap.dedent(
            f"""\
            pipeline: p
            dead_letter: dead
            topics:
              rows: {{partitions: 1}}
              dead: {{partitions: 1}}
            sources:
              in: {{connector: memory, config: {{channel: pg-in, bounded: true}}, to: rows}}
            sinks:
              db:
                connector: postgres
                config: {{dsn: "{postgres.dsn}", table: dst, pk: id}}
                from: rows
            """
        )
    )
    pipeline = load_pipeline(pipeline_file)
    async with await connect(f"file:{tmp_path / 'store'}") as store:
        runtime = Runtime([pipeline], store, get_registry())
        await runtime.prepare()
        assert await asyncio.wait_for(runtime.run(asyncio.Event()), 30) == "drained"
        consumer = store.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition("dead", 0)])
        got = await consumer.getmany(timeout_ms=500)
        await consumer.close()
    assert postgres.query("SELECT id FROM dst ORDER BY id") == [(0,), (1,), (3,), (4,)]
    (dead,) = [r for records in got.values() for r in records]
    headers = {k: v.decode() for k, v in dead.headers}
    assert orjson.loads(dead.value) == {"id": 2, "temp": "hot"}
    assert headers["millstream.step"] == "write"
    assert "invalid input syntax for type double precision" in headers["millstream.error"]
