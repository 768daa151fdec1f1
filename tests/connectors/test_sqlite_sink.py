"""The sqlite sink against real SQLite files: upserts, inserts, new columns, refused rows."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from millstream.connectors.memory import channel, reset_channels
from millstream.connectors.sqlite import SqliteSink, SqliteSinkConfig
from millstream.core import ConnectorContext, ConnectorError, Event, EventsRejected
from millstream.core.client import connect
from millstream.core.plugins import get_registry
from millstream.core.record import TopicPartition
from millstream.core.testing import SinkConformance
from millstream.pipelines.runtime import Runtime
from millstream.pipelines.spec import guarantees, load_pipeline


@pytest.fixture(autouse=True)
def fresh_channels() -> None:
    reset_channels()


def rows(path: Path, sql: str = "SELECT * FROM readings ORDER BY rowid") -> list[dict[str, Any]]:
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in conn.execute(sql)]
    finally:
        conn.close()


class TestSqliteUpsertSinkConformance(SinkConformance):
    sink = SqliteSink

    def settings(self) -> dict[str, Any]:
        return {"path": str(self.tmp_path / "out.db"), "table": "readings", "pk": "n"}

    def read_back(self) -> list[Any]:
        path = self.tmp_path / "out.db"
        if not path.exists():
            return []
        with sqlite3.connect(path) as conn:
            if not conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'readings'").fetchone():
                return []
        # a column an event did not have is NULL in its row
        return [{k: v for k, v in row.items() if v is not None} for row in rows(path)]

    def landed(self, event: Event) -> Any:
        value = dict(event.value)
        if "even" in value:
            value["even"] = int(value["even"])
        if "tags" in value:
            value["tags"] = json.dumps(value["tags"])
        return value


class TestSqliteInsertSinkConformance(TestSqliteUpsertSinkConformance):
    def settings(self) -> dict[str, Any]:
        return {"path": str(self.tmp_path / "out.db"), "table": "readings"}


def make_sink(path: Path, **settings: Any) -> SqliteSink:
    config = SqliteSinkConfig.model_validate({"path": str(path), "table": "readings", **settings})
    return SqliteSink(config, ConnectorContext("p", "db", base_dir=path.parent))


async def write(sink: SqliteSink, *batches: list[Event]) -> list[EventsRejected]:
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


async def test_upsert_by_pk_keeps_one_row_per_key_and_the_latest_values(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    first = [Event({"id": i, "temp": 20.0 + i}) for i in range(5)]
    again = [Event({"id": i, "temp": 30.0 + i}) for i in range(3, 8)]
    assert await write(make_sink(path, pk="id"), first, first, again) == []
    got = {r["id"]: r["temp"] for r in rows(path)}
    assert got == {0: 20.0, 1: 21.0, 2: 22.0, 3: 33.0, 4: 34.0, 5: 35.0, 6: 36.0, 7: 37.0}


async def test_a_composite_pk_upserts_by_all_its_columns(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    events = [Event({"device": d, "day": day, "n": 1}) for d in "ab" for day in (1, 2)]
    later = [Event({"device": "a", "day": 2, "n": 9})]
    assert await write(make_sink(path, pk=["device", "day"]), events, later) == []
    got = sorted((r["device"], r["day"], r["n"]) for r in rows(path))
    assert got == [("a", 1, 1), ("a", 2, 9), ("b", 1, 1), ("b", 2, 1)]


async def test_without_pk_every_event_is_a_new_row(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    events = [Event({"n": 1}), Event({"n": 1})]
    assert await write(make_sink(path), events, events) == []
    assert len(rows(path)) == 4


async def test_new_columns_are_added_as_they_appear(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    await write(
        make_sink(path, pk="id"),
        [Event({"id": 1, "temp": 20.5})],
        [Event({"id": 2, "temp": 21.0, "humidity": 40})],
        [Event({"id": 3, "place": {"lat": 1.5, "lon": 2}, "tags": ["x"]})],
    )
    assert rows(path) == [
        {"id": 1, "temp": 20.5, "humidity": None, "place": None, "tags": None},
        {"id": 2, "temp": 21.0, "humidity": 40, "place": None, "tags": None},
        {
            "id": 3,
            "temp": None,
            "humidity": None,
            "place": '{"lat": 1.5, "lon": 2}',
            "tags": '["x"]',
        },
    ]


async def test_an_upsert_sets_only_the_columns_of_its_event_however_batched(
    tmp_path: Path,
) -> None:
    first = [Event({"id": 1, "temp": 20, "hum": 50})]
    later = [Event({"id": 1, "temp": 21}), Event({"id": 2, "hum": 1}), Event({"id": 1, "hum": 7})]
    apart, together = tmp_path / "apart.db", tmp_path / "together.db"
    await write(make_sink(apart, pk="id"), first, *([e] for e in later))
    await write(make_sink(together, pk="id"), first, later)
    wanted = [{"id": 1, "temp": 21, "hum": 7}, {"id": 2, "temp": None, "hum": 1}]
    assert rows(apart, "SELECT * FROM readings ORDER BY id") == wanted
    assert rows(together, "SELECT * FROM readings ORDER BY id") == wanted


async def test_an_empty_mapping_beside_others_is_an_empty_row_or_refused_without_a_key(
    tmp_path: Path,
) -> None:
    inserted, upserted = tmp_path / "inserted.db", tmp_path / "upserted.db"
    events = [Event({"id": 1, "temp": 20}, offset=0), Event({}, offset=1)]
    assert await write(make_sink(inserted), events) == []
    assert rows(inserted) == [{"id": 1, "temp": 20}, {"id": None, "temp": None}]
    (refused,) = await write(make_sink(upserted, pk="id"), events)
    assert [r.event.offset for r in refused.rejections] == [1]
    assert rows(upserted) == [{"id": 1, "temp": 20}]


async def test_a_value_that_is_not_a_mapping_goes_in_a_value_column(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    await write(make_sink(path), [Event("a line"), Event(42)])
    # the column was made TEXT from the first row, so SQLite keeps 42 as text
    assert rows(path) == [{"value": "a line"}, {"value": "42"}]


async def test_the_database_is_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    await write(make_sink(path, pk="id"), [Event({"id": 1})])
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


async def test_rows_the_database_refuses_are_named_and_the_others_written(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, temp REAL CHECK (temp < 100))")
    events = [
        Event({"id": 1, "temp": 20.0}, offset=0),
        Event({"id": 2, "temp": 999.0}, offset=1),  # the CHECK refuses it
        Event({"id": 3, "temp": 2**70}, offset=2),  # too large for an SQLite integer
        Event({"temp": 21.0}, offset=3),  # no primary key to upsert by
        Event({"id": 5, "temp": 22.0}, offset=4),
    ]
    (refused,) = await write(make_sink(path, pk="id"), events)
    reasons = {r.event.offset: r.reason for r in refused.rejections}
    assert set(reasons) == {1, 2, 3}
    assert "CHECK constraint failed" in reasons[1]
    assert "too large" in reasons[2]
    assert "primary key" in reasons[3]
    assert all(r.event is events[r.event.offset] for r in refused.rejections)
    assert [(r["id"], r["temp"]) for r in rows(path)] == [(1, 20.0), (5, 22.0)]


async def test_a_failed_flush_is_one_line_naming_the_sink(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER PRIMARY KEY, temp REAL)")
        conn.execute(
            "CREATE TRIGGER copy BEFORE INSERT ON readings BEGIN INSERT INTO gone VALUES (1); END"
        )
    sink = make_sink(path, pk="id")
    await sink.open()
    try:
        await sink.write([Event({"id": 1, "temp": 20.0})])
        with pytest.raises(ConnectorError) as caught:
            await sink.flush()
    finally:
        await sink.close()
    assert str(caught.value) == "sqlite sink 'db': no such table: main.gone"


async def test_unflushed_writes_are_not_in_the_table(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    sink = make_sink(path, pk="id")
    await sink.open()
    await sink.write([Event({"id": 1})])
    await sink.flush()
    await sink.write([Event({"id": 2})])
    await sink.close()
    assert rows(path) == [{"id": 1}]


@pytest.mark.parametrize(
    ("table", "pk", "ok"),
    [
        ("CREATE TABLE readings (id INTEGER, temp REAL)", "id", False),
        ("CREATE TABLE readings (id INTEGER, day TEXT, PRIMARY KEY (id, day))", "id", False),
        ("CREATE TABLE readings (id INTEGER PRIMARY KEY, temp REAL)", "id", True),
        ("CREATE TABLE readings (id TEXT, day TEXT, PRIMARY KEY (day, id))", ["id", "day"], True),
        ("CREATE TABLE readings (Id INTEGER UNIQUE, temp REAL)", "id", True),
    ],
)
async def test_an_upsert_needs_a_unique_key_on_pk_in_an_existing_table(
    tmp_path: Path, table: str, pk: str | list[str], ok: bool
) -> None:
    path = tmp_path / "out.db"
    with sqlite3.connect(path) as conn:
        conn.execute(table)
    sink = make_sink(path, pk=pk)
    if ok:
        assert await write(sink, [Event({"id": 1, "day": "mon"})] * 2) == []
        return
    with pytest.raises(ConnectorError, match=r"pk: table 'readings' has no primary key or unique"):
        await sink.open()
    await sink.close()


async def test_a_failed_open_leaves_no_thread_behind(tmp_path: Path) -> None:
    path = tmp_path / "out.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE readings (id INTEGER, temp REAL)")
    sink = make_sink(path, pk="id")
    with pytest.raises(ConnectorError, match="pk:"):
        await sink.open()  # no close(): the runtime does not close what failed to open
    deadline = asyncio.get_running_loop().time() + 5
    while any(t.name.startswith("sqlite-sink-db") for t in threading.enumerate()):
        assert asyncio.get_running_loop().time() < deadline, "the sink's thread still runs"
        await asyncio.sleep(0.01)


async def test_a_missing_folder_is_an_error_naming_path(tmp_path: Path) -> None:
    sink = make_sink(tmp_path / "nowhere" / "out.db", pk="id")
    with pytest.raises(ConnectorError, match="path: no folder"):
        await sink.open()
    await sink.close()


def _pipeline(tmp_path: Path, sink_config: str) -> Path:
    path = tmp_path / "p.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            pipeline: p
            topics:
              readings: {{partitions: 1}}
            sources:
              gen:
                connector: generator
                config: {{count: 10, rate: 0}}
                to: readings
            sinks:
              db:
                connector: sqlite
                config: {sink_config}
                from: readings
            """
        )
    )
    return path


@pytest.mark.parametrize(
    ("config", "level"),
    [
        ("{path: out.db, table: readings, pk: device_id}", "exactly-once"),
        ("{path: out.db, table: readings}", "at-least-once"),
    ],
)
def test_validate_reports_exactly_once_only_with_a_pk(
    tmp_path: Path, config: str, level: str
) -> None:
    pipeline = load_pipeline(_pipeline(tmp_path, config))
    (sink,) = [g for g in guarantees(pipeline) if g.kind == "sink"]
    assert sink.level == level


async def test_a_pipeline_dead_letters_the_refused_row_and_goes_on(tmp_path: Path) -> None:
    db = tmp_path / "out.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE readings (n INTEGER PRIMARY KEY, v TEXT NOT NULL)")
    channel("sqlite-in").append(Event({"n": n, "v": None if n == 3 else f"v{n}"}) for n in range(6))
    (tmp_path / "p.yaml").write_text(
        textwrap.dedent(
            """\
            pipeline: p
            dead_letter: dead
            topics:
              lines: {partitions: 1}
              dead: {partitions: 1}
            sources:
              in: {connector: memory, config: {channel: sqlite-in, bounded: true}, to: lines}
            sinks:
              db:
                connector: sqlite
                config: {path: out.db, table: readings, pk: n}
                from: lines
            """
        )
    )
    pipeline = load_pipeline(tmp_path / "p.yaml")
    async with await connect(f"file:{tmp_path / 'store'}") as store:
        runtime = Runtime([pipeline], store, get_registry())
        await runtime.prepare()
        assert await asyncio.wait_for(runtime.run(asyncio.Event()), 30) == "drained"
        consumer = store.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition("dead", 0)])
        got = await consumer.getmany(timeout_ms=500)
        await consumer.close()
    assert [r["n"] for r in rows(db)] == [0, 1, 2, 4, 5]
    (dead,) = [r for records in got.values() for r in records]
    headers = {k: v.decode() for k, v in dead.headers}
    assert json.loads(dead.value) == {"n": 3, "v": None}
    assert headers["millstream.step"] == "write"
    assert "NOT NULL constraint failed: readings.v" in headers["millstream.error"]


def test_flush_runs_off_the_event_loop(tmp_path: Path) -> None:
    async def run() -> int:
        sink = make_sink(tmp_path / "out.db", pk="id")
        await sink.open()
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        ticker = asyncio.create_task(tick())
        try:
            await sink.write([Event({"id": i, "text": "x" * 80}) for i in range(20_000)])
            await sink.flush()
        finally:
            ticker.cancel()
            await sink.close()
        return ticks

    assert asyncio.run(run()) > 10
