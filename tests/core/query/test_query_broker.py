"""Queries over a ``millstream broker`` (and one over a SASL listener of Apache Kafka): the
topics read through the network client."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import orjson
import pytest

from millstream.core.cli import main
from millstream.core.client import connect
from millstream.core.errors import QueryError
from millstream.core.query import engine_for
from millstream.core.record import Record

MILLSTREAM = str(Path(sys.executable).parent / "millstream")


async def fill(url: str) -> None:
    async with await connect(url) as conn:
        await conn.admin().create_topic("readings", 2)
        async with conn.producer() as producer:
            records = [
                Record(f"dev-{n % 3}".encode(), orjson.dumps({"n": n, "temp": 20 + n % 10}))
                for n in range(300)
            ]
            await producer.send_batch("readings", records)


def test_a_query_over_a_broker(broker, capsys) -> None:
    url = f"millstream://{broker.bootstrap}"
    asyncio.run(fill(url))
    capsys.readouterr()
    status = main(
        [
            "query",
            "--store",
            url,
            "--format",
            "json",
            "SELECT key, count(*) AS n, max(value.temp) AS hottest FROM readings "
            "GROUP BY key ORDER BY key",
        ]
    )
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"key": "dev-0", "n": 100, "hottest": 29},
        {"key": "dev-1", "n": 100, "hottest": 29},
        {"key": "dev-2", "n": 100, "hottest": 29},
    ]
    status = main(
        [
            "query",
            "--store",
            url,
            "--stats",
            "SELECT count(*) FROM readings WHERE partition = 1 AND record_offset < 10",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out.split()[-1] == "10"
    assert "10 of 300 records" in err


def test_a_query_decodes_each_topic_with_its_codec_on_our_broker_and_on_kafka(
    remote, capsys
) -> None:
    # a topic of plain text lines (codec text): our broker keeps the codec with the topic,
    # Kafka beside it; the query reads them as strings either way, not as broken JSON
    topic = f"lines-{uuid.uuid4().hex[:8]}"

    async def fill_lines() -> None:
        async with await connect(remote.url) as conn:
            await conn.admin().create_topic(topic, config={"codec": "text"})
            async with conn.producer() as producer:
                await producer.send_batch(topic, [Record(None, b"plain %d" % n) for n in range(5)])

    asyncio.run(fill_lines())
    capsys.readouterr()
    status = main(
        [
            "query",
            "--store",
            remote.url,
            "--format",
            "json",
            f'SELECT value FROM "{topic}" ORDER BY record_offset',
        ]
    )
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert [json.loads(line)["value"] for line in out.splitlines()] == [
        f"plain {n}" for n in range(5)
    ]


async def fill_large(url: str, topic: str = "big") -> None:
    """20,000 records of 1 KiB: tens of fetches, so a scan is still reading after its first."""
    async with await connect(url) as conn:
        await conn.admin().create_topic(topic, 1)
        async with conn.producer() as producer:
            pad = "x" * 1000
            records = [Record(None, orjson.dumps({"n": n, "pad": pad})) for n in range(20_000)]
            await producer.send_batch(topic, records)


class _FreezeBrokerOnFirstRecords:
    """A progress listener that stops the broker (SIGSTOP) when the scan's first records
    arrive: from then on it accepts nothing and answers nothing, as a hung machine."""

    def __init__(self, server) -> None:
        self.server = server
        self.frozen = False

    def begin(self, total: int) -> None:
        pass

    def advance(self, records: int) -> None:
        if not self.frozen:
            self.frozen = True
            os.kill(self.server.process.pid, signal.SIGSTOP)


async def test_the_timeout_stops_a_scan_whose_broker_stopped_answering(broker) -> None:
    url = f"millstream://{broker.bootstrap}"
    await fill_large(url)
    frozen = _FreezeBrokerOnFirstRecords(broker)
    try:
        started = time.monotonic()
        async with await connect(url, read_only=True) as conn:  # closed with the broker frozen
            with pytest.raises(QueryError) as caught:
                await asyncio.to_thread(
                    engine_for(conn).run, "SELECT count(*) FROM big", timeout=2.0, progress=frozen
                )
        took = time.monotonic() - started
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    assert frozen.frozen
    assert took < 5, f"--timeout 2 stopped the query after {took:.1f} s"
    message = str(caught.value)
    assert "\n" not in message
    assert message == (
        "the query was stopped at its time limit of 2 s; allow it more with --timeout"
    )


def test_the_timeout_covers_connecting_to_a_broker_that_does_not_answer(broker) -> None:
    command = [MILLSTREAM, "query", "--bootstrap-server", broker.bootstrap, "--timeout", "2"]
    started = time.monotonic()
    answered = subprocess.run([*command, "SELECT 1"], capture_output=True, text=True, timeout=60)
    baseline = time.monotonic() - started  # the command's own start-up, on this machine now
    assert answered.returncode == 0, answered.stderr
    os.kill(broker.process.pid, signal.SIGSTOP)  # the kernel still accepts its connections
    try:
        started = time.monotonic()
        done = subprocess.run([*command, "SELECT 1"], capture_output=True, text=True, timeout=60)
        took = time.monotonic() - started
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    assert done.returncode == 1
    assert done.stderr == (
        f"millstream: error: the query was stopped at its time limit of 2 s while connecting "
        f"to millstream://{broker.bootstrap}; allow it more with --timeout\n"
    )
    assert took < baseline + 2 + 3, f"--timeout 2 ended the command after {took:.1f} s"


class _CloseConnectionOnFirstRecords:
    """A progress listener that closes the query's connection when the first records arrive."""

    def __init__(self, conn, loop: asyncio.AbstractEventLoop) -> None:
        self.conn = conn
        self.loop = loop
        self.closed = False

    def begin(self, total: int) -> None:
        pass

    def advance(self, records: int) -> None:
        if not self.closed:
            self.closed = True
            asyncio.run_coroutine_threadsafe(self.conn.close(), self.loop).result()


async def test_a_scan_that_fails_says_which_topic_and_broker_in_one_line(broker) -> None:
    url = f"millstream://{broker.bootstrap}"
    await fill_large(url)
    async with await connect(url, read_only=True) as conn:
        closing = _CloseConnectionOnFirstRecords(conn, asyncio.get_running_loop())
        with pytest.raises(QueryError) as caught:
            await asyncio.to_thread(
                engine_for(conn).run, "SELECT count(*) FROM big", progress=closing
            )
    assert closing.closed
    message = str(caught.value)
    assert message.startswith(f"reading topic 'big' from {url} failed: "), message
    assert "\n" not in message and "Traceback" not in message


async def test_an_interrupt_stops_a_scan_whose_broker_stopped_answering(broker) -> None:
    url = f"millstream://{broker.bootstrap}"
    await fill_large(url)
    frozen = _FreezeBrokerOnFirstRecords(broker)
    try:
        async with await connect(url, read_only=True) as conn:
            engine = engine_for(conn)
            running = asyncio.create_task(
                asyncio.to_thread(engine.run, "SELECT count(*) FROM big", progress=frozen)
            )
            while not frozen.frozen:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.3)  # the scan now waits on the frozen broker
            interrupted = time.monotonic()
            engine.interrupt()  # what Ctrl-C does
            with pytest.raises(QueryError) as caught:
                await asyncio.wait_for(running, 10)
            took = time.monotonic() - interrupted
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
    assert str(caught.value) == "the query was stopped before it finished"
    assert took < 2, f"the interrupted query ended {took:.1f} s later"


async def test_a_scan_that_fails_over_sasl_shows_the_url_without_its_password(
    kafka_secure,
) -> None:
    address = kafka_secure.address("SASL_PLAINTEXT")
    options = "security.protocol=SASL_PLAINTEXT&sasl.mechanism=SCRAM-SHA-256"
    url = f"kafka://alice:alice-secret@{address}?{options}"
    topic = f"big-{os.getpid()}-{time.monotonic_ns()}"
    await fill_large(url, topic)
    async with await connect(url, read_only=True) as conn:
        closing = _CloseConnectionOnFirstRecords(conn, asyncio.get_running_loop())
        with pytest.raises(QueryError) as caught:
            await asyncio.to_thread(
                engine_for(conn).run, f'SELECT count(*) FROM "{topic}"', progress=closing
            )
    message = str(caught.value)
    assert message.startswith(
        f"reading topic {topic!r} from kafka://alice:****@{address}?{options} failed: "
    ), message
    assert "alice-secret" not in message
