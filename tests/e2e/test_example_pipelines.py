"""The example pipelines of examples/ run end to end against real servers.

Each test copies an example (and the files beside it that it reads) into a folder of its own
and runs it with ``millstream run`` in a subprocess whose current directory is elsewhere, so
the example's relative paths must resolve from its own folder. Environment variables point it
at the servers the test started (the webhook example's port, a number in the file, is written
into the copy) and ``--store`` at a temporary store. The tests check what a user would see:
rows in the tables, lines in the files, requests at the endpoints, dead letters with their
reasons, and what a restart picks up. Each run is stopped with SIGTERM and must exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import ClientSession, ClientTimeout, web
from mosquitto_server import MosquittoServer
from postgres_server import PostgresDatabase

from millstream.core.client import connect
from millstream.core.record import StoredRecord, TopicPartition

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
MILLSTREAM = str(Path(sys.executable).parent / "millstream")
VARIABLES = {"MQTT_URL", "ALERTS_URL", "ALERT_TEMP", "FORWARD_URL", "ACCESS_LOG", "PG_DSN"}
"""The environment variables the examples read (each has a default)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def copy_example(name: str, folder: Path, *extra: str) -> Path:
    """``examples/NAME`` and the ``extra`` files or folders it reads, copied into ``folder``."""
    folder.mkdir()
    for part in extra:
        source = EXAMPLES / part
        if source.is_dir():
            shutil.copytree(source, folder / part)
        else:
            shutil.copy(source, folder / part)
    shutil.copy(EXAMPLES / name, folder / name)
    return folder / name


async def eventually(
    check: Callable[[], Any], what: str, timeout: float = 20.0, *, process: Running | None = None
) -> Any:
    """``check()``'s result once it is truthy; fails after ``timeout`` seconds (or as soon as
    the pipeline process has ended), saying ``what`` was awaited and what ``check`` gave."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return result
        if process is not None and process.ended:
            pytest.fail(f"the pipeline ended while waiting for {what}:\n{process.stderr()}")
        if time.monotonic() > deadline:
            detail = process.stderr() if process is not None else ""
            pytest.fail(f"waited {timeout:.0f}s for {what}; last saw {result!r}\n{detail}")
        await asyncio.sleep(0.05)


class Running:
    """``millstream run FILE --store STORE`` in a subprocess, from ``cwd``; stderr to a file."""

    def __init__(self, process: asyncio.subprocess.Process, log: Path) -> None:
        self.process = process
        self.log = log

    @property
    def ended(self) -> bool:
        return self.process.returncode is not None

    def stderr(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    async def stop(self, timeout: float = 20.0) -> str:
        """SIGTERM, then wait: the run must exit 0. Gives its stderr."""
        if not self.ended:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(self.process.wait(), timeout)
        except TimeoutError:
            self.process.kill()
            await self.process.wait()
            pytest.fail(f"the pipeline did not stop within {timeout}s of SIGTERM:\n{self.stderr()}")
        assert code == 0, f"millstream run exited {code}:\n{self.stderr()}"
        return self.stderr()


@contextlib.asynccontextmanager
async def running(
    pipeline: Path, store: Path, cwd: Path, env: dict[str, str]
) -> AsyncIterator[Running]:
    """The pipeline running until the block ends (then killed if it was not stopped)."""
    log = cwd / f"{pipeline.stem}.stderr"
    with log.open("ab") as err:
        process = await asyncio.create_subprocess_exec(
            MILLSTREAM,
            "run",
            str(pipeline),
            "--store",
            f"file:{store}",
            "--stats",
            "lines",
            cwd=cwd,
            env={**os.environ, **env},
            stdout=asyncio.subprocess.DEVNULL,
            stderr=err,
        )
    run = Running(process, log)
    try:
        yield run
    finally:
        if not run.ended:
            process.kill()
            await process.wait()


async def topic_records(store: Path, topic: str) -> list[StoredRecord]:
    """Every record of partition 0 of ``topic``, the store opened read-only."""
    async with await connect(f"file:{store}", read_only=True) as conn:
        consumer = conn.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition(topic, 0)])
        got: list[StoredRecord] = []
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            if not any(batch.values()):
                break
            got.extend(r for rs in batch.values() for r in rs)
        await consumer.close()
    return got


def dead_letters(records: list[StoredRecord]) -> list[dict[str, str]]:
    """Each dead letter's millstream.* headers (without the prefix) and its ``value``."""
    letters = []
    for record in records:
        headers = {
            name.removeprefix("millstream."): (value or b"").decode()
            for name, value in record.headers
        }
        headers["value"] = (record.value or b"").decode(errors="replace")
        letters.append(headers)
    return letters


class Receiver:
    """An HTTP endpoint (aiohttp, in the test's loop) that keeps what it is sent.

    While ``down`` it answers 503 to everything, counting the attempts in ``refused``.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.port = free_port()
        self.down = False
        self.refused = 0
        self.bodies: list[Any] = []
        self.idempotency_keys: list[str] = []
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    async def _receive(self, request: web.Request) -> web.Response:
        if self.down:
            self.refused += 1
            return web.json_response({"error": "down for maintenance"}, status=503)
        self.bodies.append(orjson.loads(await request.read()))
        self.idempotency_keys.append(request.headers.get("Idempotency-Key", ""))
        return web.json_response({"ok": True})

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post(self.path, self._receive)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()


def sqlite_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """The rows of ``sql`` in the SQLite file at ``path``; none while the file or the table is
    not there yet (the sink makes both)."""
    if not path.exists():
        return []
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # no such table yet
        return []


def test_the_examples_are_valid_as_they_are_and_their_tables_keep_one_row_per_event(
    tmp_path: Path,
) -> None:
    """``millstream validate`` takes the examples with no variable set (their defaults), and
    sees that the sinks upserting by key keep one row of an event delivered twice."""
    env = {
        variable: value
        for variable, value in os.environ.items()
        if variable not in VARIABLES and not variable.startswith("MILLSTREAM_")
    }
    names = ["sensors-to-sqlite.yaml", "webhook-fanout.yaml", "logs-to-postgres.yaml"]
    done = subprocess.run(
        [MILLSTREAM, "validate", "--format", "json", *(str(EXAMPLES / name) for name in names)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    report = orjson.loads(done.stdout)
    assert report["valid"] is True
    sinks = {
        f"{pipeline['name']}.{sink['name']}": sink["guarantee"]
        for pipeline in report["pipelines"]
        for sink in pipeline["sinks"]
    }
    assert sinks == {
        "sensors.readings-table": "exactly-once",
        "sensors.alerts": "at-least-once",
        "webhooks.archive": "at-least-once",
        "webhooks.table": "exactly-once",
        "webhooks.forward": "at-least-once",
        "weblogs.requests-table": "exactly-once",
    }


# --- examples/sensors-to-sqlite.yaml ---------------------------------------------------------


def reading(temp: Any, minute: int, **more: Any) -> bytes:
    return orjson.dumps({"temp": temp, "time": f"2024-06-01T12:{minute:02d}:00Z", **more})


async def test_sensors_to_sqlite_keeps_clean_readings_once_posts_alerts_and_resumes(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    pipeline = copy_example("sensors-to-sqlite.yaml", tmp_path / "example", "schemas")
    database = pipeline.parent / "sensors.db"
    store = tmp_path / "store"
    # four devices, five readings each; d3 runs hot twice (the alert threshold is 40 °C)
    temps: dict[str, list[float]] = {
        "d1": [20.5, 21.0, 21.5, 22.0, 22.5],
        "d2": [-5, -4.5, -4, 0, 1],
        "d3": [35, 39.5, 41, 45.5, 38],
        "d4": [10, 10, 10, 10, 10],
    }
    env = {"MQTT_URL": mosquitto.url}
    count = "SELECT count(*) FROM readings"
    hot_alerts = 4  # d3's two hot readings, each sent twice by the device
    async with Receiver("/alerts") as alerts:
        env["ALERTS_URL"] = alerts.url
        async with running(pipeline, store, tmp_path, env) as run:
            # the pipeline has subscribed once a reading published now reaches the table
            async def probed() -> list[tuple[Any, ...]]:
                probe = [reading(20, 0)]
                await asyncio.to_thread(mosquitto.publish, "sensors/probe/reading", probe)
                return sqlite_rows(database, "SELECT * FROM readings WHERE device = 'probe'")

            await eventually(probed, "the first reading in the table", 30, process=run)

            for device, values in temps.items():
                payloads = [reading(t, minute, humidity=50) for minute, t in enumerate(values)]
                await asyncio.to_thread(mosquitto.publish, f"sensors/{device}/reading", payloads)
            # a device that did not get its acknowledgements sends its readings again
            d3 = [reading(t, minute, humidity=50) for minute, t in enumerate(temps["d3"])]
            await asyncio.to_thread(mosquitto.publish, "sensors/d3/reading", d3)
            # broken readings: not JSON, a temperature that is text, an error code, no time
            await asyncio.to_thread(
                mosquitto.publish,
                "sensors/d5/reading",
                [b"temp=21.5", reading("hot", 1), reading(-999, 2), b'{"temp": 20}'],
            )

            await eventually(
                lambda: sqlite_rows(database, count) == [(21,)], "21 rows", process=run
            )
            await eventually(lambda: len(alerts.bodies) >= hot_alerts, "the alerts", process=run)

            async def four_dead_letters() -> bool:
                return len(await topic_records(store, "dead")) >= 4

            await eventually(four_dead_letters, "the broken readings' dead letters", process=run)
            await run.stop()

        # readings published while the pipeline is stopped wait in its session at the broker
        temps["d6"] = [18, 19, 50, 19, 18]
        payloads = [reading(t, minute, humidity=50) for minute, t in enumerate(temps["d6"])]
        await asyncio.to_thread(mosquitto.publish, "sensors/d6/reading", payloads)
        hot_alerts += 1
        async with running(pipeline, store, tmp_path, env) as run:
            await eventually(
                lambda: sqlite_rows(database, count) == [(26,)], "26 rows", process=run
            )
            await eventually(lambda: len(alerts.bodies) >= hot_alerts, "d6's alert", process=run)
            await run.stop()

    rows = sqlite_rows(database, "SELECT device, time, temp, temp_f, humidity FROM readings")
    by_reading = {(device, at): (temp, temp_f, hum) for device, at, temp, temp_f, hum in rows}
    assert len(by_reading) == len(rows) == 26, "a reading sent twice is one row"
    for device, values in temps.items():
        for minute, temp in enumerate(values):
            stored = by_reading[(device, f"2024-06-01T12:{minute:02d}:00Z")]
            assert stored == (temp, round(temp * 9 / 5 + 32, 1), 50), (device, minute)
    assert not any(device == "d5" for device, _ in by_reading), "a broken reading got in"

    assert len(alerts.bodies) == hot_alerts
    assert sorted((a["device"], a["time"], a["temp"]) for a in alerts.bodies) == [
        ("d3", "2024-06-01T12:02:00Z", 41),
        ("d3", "2024-06-01T12:02:00Z", 41),
        ("d3", "2024-06-01T12:03:00Z", 45.5),
        ("d3", "2024-06-01T12:03:00Z", 45.5),
        ("d6", "2024-06-01T12:02:00Z", 50),
    ]
    assert all(alert["temp_f"] > 104 for alert in alerts.bodies)

    letters = dead_letters(await topic_records(store, "dead"))
    reasons = sorted((letter["part"], letter["error"]) for letter in letters)
    assert len(reasons) == 4, reasons
    assert "temp=21.5" in [letter["value"] for letter in letters], "kept as it came"
    assert any(part == "sources.devices" and "not valid JSON" in why for part, why in reasons)
    assert ("routes.clean", "$.temp: 'hot' is not of type 'number'") in reasons
    assert ("routes.clean", "$.temp: -999 is less than the minimum of -50") in reasons
    assert ("routes.clean", "$: 'time' is a required property") in reasons


# --- examples/webhook-fanout.yaml ------------------------------------------------------------


def archived(folder: Path, *, hidden: bool) -> list[dict[str, Any]]:
    """The events in the archive's files: those renamed into place, and with ``hidden`` also
    the ones still being written (``.events-0.jsonl.tmp``, flushed and fsynced)."""
    names = [p for p in folder.rglob("*") if p.is_file()]
    if not hidden:
        names = [p for p in names if not p.name.startswith(".")]
    # a line of a file being written is complete once its newline is there
    lines = [line for p in sorted(names) for line in p.read_bytes().split(b"\n")[:-1]]
    return [orjson.loads(line) for line in lines]


async def wait_listening(port: int, run: Running) -> None:
    async def listening() -> bool:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            return False
        writer.close()
        return True

    await eventually(listening, f"the webhook server on port {port}", 30, process=run)


async def test_webhook_fanout_feeds_file_and_table_while_the_http_endpoint_is_down(
    tmp_path: Path,
) -> None:
    pipeline = copy_example("webhook-fanout.yaml", tmp_path / "example")
    folder = pipeline.parent
    store = tmp_path / "store"
    # the port is a number in the file (a ${VAR} would not be one for editors' schema checks)
    port = free_port()
    text = pipeline.read_text()
    assert text.count("port: 8080\n") == 1
    pipeline.write_text(text.replace("port: 8080\n", f"port: {port}\n"))
    count = 120
    hooks: list[dict[str, Any]] = [
        {"id": f"evt_{n}", "type": "order.paid", "amount": n} for n in range(count)
    ]
    async with (
        Receiver("/events") as endpoint,
        running(
            pipeline,
            store,
            tmp_path,
            {"FORWARD_URL": endpoint.url},
        ) as run,
        ClientSession(timeout=ClientTimeout(total=30)) as http,
    ):
        endpoint.down = True
        await wait_listening(port, run)
        url = f"http://127.0.0.1:{port}/hooks"

        async with http.post(url, data=b"{not json") as answer:
            assert answer.status == 400, f"a body that is not JSON is refused\n{run.stderr()}"
            assert "JSON" in (await answer.json())["error"]

        async def post(hook: dict[str, Any]) -> None:
            async with http.post(url, json=hook) as answer:
                assert answer.status == 200, f"{await answer.text()}\n{run.stderr()}"
                assert await answer.json() == {"accepted": 1}

        sent = time.monotonic()
        for start in range(0, count, 20):
            await asyncio.gather(*(post(hook) for hook in hooks[start : start + 20]))
        await post(hooks[7])  # a sender that did not get its answer sends again

        # the archive and the table get everything while the endpoint answers 503
        rows = "SELECT id, type, amount FROM webhooks ORDER BY amount"
        await eventually(
            lambda: len(sqlite_rows(folder / "webhooks.db", rows)) == count,
            f"{count} rows in the table",
            process=run,
        )
        await eventually(
            lambda: len(archived(folder / "webhooks", hidden=True)) == count + 1,
            f"{count + 1} events in the archive",
            process=run,
        )
        elapsed = time.monotonic() - sent
        assert endpoint.bodies == [], "the endpoint is down: nothing reached it"
        await eventually(lambda: endpoint.refused >= 2, "the http sink retrying", process=run)
        assert elapsed < 10, f"the file and sqlite sinks took {elapsed:.1f}s"

        # back up: the http sink delivers what waited in the topic
        endpoint.down = False
        await eventually(
            lambda: {b["id"] for b in endpoint.bodies} == {h["id"] for h in hooks},
            "every webhook at the endpoint",
            30,
            process=run,
        )
        await run.stop()

    assert sqlite_rows(folder / "webhooks.db", rows) == [
        (hook["id"], hook["type"], hook["amount"]) for hook in hooks
    ], "one row per event id, the repeat included"
    files = archived(folder / "webhooks", hidden=False)
    assert sorted(files, key=lambda h: h["amount"]) == sorted(
        [*hooks, hooks[7]], key=lambda h: h["amount"]
    ), "every request in the archive, under its own name once the pipeline stopped"
    assert not [p for p in (folder / "webhooks").rglob(".*")], "a file left half-written"
    assert len(endpoint.bodies) == count + 1
    assert len(set(endpoint.idempotency_keys)) == count + 1, "one Idempotency-Key per event"
    assert await topic_records(store, "dead") == [], "nothing gave up"


# --- examples/logs-to-postgres.yaml ----------------------------------------------------------


def access_line(n: int, status: int = 200) -> str:
    """A line of nginx's combined format with the request id at the end; ``n`` makes it
    unique (client, path, size and id)."""
    return (
        f"10.0.{n // 250}.{n % 250} - - [01/Jun/2024:13:{n // 60 % 60:02d}:{n % 60:02d} +0200] "
        f'"GET /items/{n}?q=a%20b HTTP/1.1" {status} {n * 10} "-" "load-test/1.0" {n:032x}\n'
    )


async def test_logs_to_postgres_keeps_every_line_once_across_rotations_and_a_restart(
    tmp_path: Path, postgres: PostgresDatabase
) -> None:
    pipeline = copy_example("logs-to-postgres.yaml", tmp_path / "example", "logs")
    log = pipeline.parent / "logs" / "access.log"
    store = tmp_path / "store"
    sample = 5  # good lines of examples/logs/access.log (a sixth one does not parse)

    def rows() -> int:
        try:
            return int(postgres.query("SELECT count(*) FROM access_log")[0][0])
        except Exception:  # the sink has not made the table yet
            return 0

    async with running(pipeline, store, tmp_path, {"PG_DSN": postgres.dsn}) as run:
        await eventually(lambda: rows() == sample, "the sample's rows", 30, process=run)
        writer = log.open("a")
        for n in range(0, 300, 50):  # lines arrive while the pipeline works
            writer.writelines(access_line(i) for i in range(n, n + 50))
            writer.flush()
            await asyncio.sleep(0.02)
        # logrotate: rename, the server writes on into the renamed file until told to reopen
        log.rename(log.with_name("access.log.1"))
        writer.writelines(access_line(i) for i in range(300, 350))
        writer.close()
        with log.open("a") as reopened:
            reopened.writelines(access_line(i, status=503) for i in range(350, 400))
            reopened.write("this is not an access log line\n")
            reopened.flush()
            await asyncio.sleep(0.2)
            reopened.writelines(access_line(i) for i in range(400, 500))
        await eventually(lambda: rows() >= sample + 500, "every line in PostgreSQL", process=run)
        await run.stop()

    # while the pipeline is stopped, lines come and the log is rotated once more
    with log.open("a") as current:
        current.writelines(access_line(i) for i in range(500, 550))
    log.with_name("access.log.1").rename(log.with_name("access.log.2"))
    log.rename(log.with_name("access.log.1"))
    with log.open("a") as fresh:
        fresh.writelines(access_line(i) for i in range(550, 600))
    async with running(pipeline, store, tmp_path, {"PG_DSN": postgres.dsn}) as run:
        await eventually(lambda: rows() >= sample + 600, "the lines of the stop", process=run)
        await run.stop()

    stored = postgres.query(
        "SELECT request_id, status, bytes, client::text, path, remote_user, referer, "
        "extract(epoch FROM time)::bigint FROM access_log WHERE user_agent = 'load-test/1.0' "
        "ORDER BY request_id"
    )
    assert len(stored) == 600
    assert rows() == sample + 600, "a line stored twice"
    # the restart went on after the last line read, in the file that had been renamed
    lines = await topic_records(store, "access-lines")
    assert len(lines) == 6 + 601, "a line read twice or skipped (6 sample lines, 1 bad one)"
    for n, (request_id, status, size, client, path, user, referer, epoch) in enumerate(stored):
        assert request_id == f"{n:032x}"
        assert status == (503 if 350 <= n < 400 else 200)
        assert size == n * 10
        assert client == f"10.0.{n // 250}.{n % 250}/32"
        assert path == f"/items/{n}?q=a%20b"
        assert (user, referer) == (None, None), "'-' is no user and no referer"
        assert epoch == 1717239600 + n // 60 % 60 * 60 + n % 60  # 13:00 at +0200 is 11:00 UTC
    cart = postgres.query("SELECT status, bytes, remote_user FROM access_log WHERE path = '/cart'")
    assert cart == [(304, 0, "ann")], "a sample line: '-' bytes are 0"

    letters = dead_letters(await topic_records(store, "dead"))
    assert sorted(letter["value"] for letter in letters) == [
        r'192.0.2.200 - - [01/Jun/2024:12:00:12 +0000] "\x16\x03\x01" 400 150 "-" "-" '
        "9d8c7b6a5f4e4d3c2b1a0f9e8d7c6b5a",
        "this is not an access log line",
    ]
    assert {(letter["part"], letter["step"]) for letter in letters} == {
        ("routes.parse", "steps[0].parse")
    }
    assert all(
        letter["error"].startswith("parse regex: ValueError: no match for '^(?P<client>")
        for letter in letters
    ), letters
