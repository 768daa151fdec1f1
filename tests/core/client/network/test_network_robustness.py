"""The network client when a broker misbehaves or the client is pushed: a broker that accepts
connections but never answers, a producer id that changes while a batch's outcome is unknown,
requests written in order while a connection is being opened."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import struct
import time
from collections.abc import AsyncIterator

import pytest
from broker_server import BrokerServer, free_port

from millstream.core import Record
from millstream.core.client import connect
from millstream.core.client.network import (
    BrokerUnavailableError,
    BufferFullError,
    NetworkConnection,
)
from millstream.core.errors import ConfigError, RecordTooLargeError, StoreClosedError, StoreError
from millstream.core.protocol import ApiKey
from millstream.core.record import TopicPartition


async def test_a_broker_that_accepts_but_never_answers_is_unavailable(broker) -> None:
    os.kill(broker.process.pid, signal.SIGSTOP)  # the kernel still accepts connections
    try:
        started = time.monotonic()
        with pytest.raises(BrokerUnavailableError, match="did not answer ApiVersions within 0.5 s"):
            await NetworkConnection.open(f"millstream://{broker.bootstrap}", timeout_s=0.5)
        assert time.monotonic() - started < 1.4  # the timeout is not spent again on retries
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)


class Proxy:
    """A TCP proxy the broker advertises, so every client connection goes through it. When
    ``flaky``, each new connection is slow to open (ApiVersions answered a few ms late) and is
    cut after a few Produce requests, their answers lost. ``lose_next_answer`` forwards the
    next Produce, lets the broker append it, then cuts the connection before its answer and
    turns new connections away for half a second."""

    def __init__(self, upstream_port: int, seed: int = 5) -> None:
        self.upstream_port = upstream_port
        self.flaky = False
        self.lose_next_answer = False
        self.lost = asyncio.Event()
        self._refuse_until = 0.0
        self.cuts = 0
        self._random = random.Random(seed)
        self._server: asyncio.Server | None = None
        self.port = 0

    async def start(self, port: int) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        if asyncio.get_running_loop().time() < self._refuse_until:
            client_w.transport.abort()
            return
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        flaky = self.flaky
        if flaky:
            await asyncio.sleep(self._random.uniform(0.0, 0.001))
        budget = self._random.randint(3, 25)

        async def answers() -> None:
            with contextlib.suppress(Exception):
                while data := await up_r.read(65536):
                    client_w.write(data)
                    await client_w.drain()
            client_w.close()

        back = asyncio.create_task(answers())
        try:
            while True:
                head = await client_r.readexactly(4)
                body = await client_r.readexactly(struct.unpack(">i", head)[0])
                produce = struct.unpack_from(">h", body)[0] == ApiKey.PRODUCE
                if produce and self.lose_next_answer:
                    self.lose_next_answer = False
                    back.cancel()
                    up_w.write(head + body)
                    await asyncio.sleep(0.3)  # the broker appends it and answers...
                    client_w.transport.abort()  # ...into the void
                    self._refuse_until = asyncio.get_running_loop().time() + 0.5
                    self.lost.set()
                    return
                up_w.write(head + body)
                await up_w.drain()
                if flaky and struct.unpack_from(">h", body)[0] == ApiKey.PRODUCE:
                    budget -= 1
                    if budget == 0:
                        back.cancel()
                        self.cuts += 1
                        client_w.transport.abort()
                        return
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            up_w.close()


@pytest.fixture
async def proxied(tmp_path) -> AsyncIterator[tuple[BrokerServer, Proxy]]:
    port = free_port()
    server = BrokerServer(tmp_path / "broker-data", None, "--advertised", f"127.0.0.1:{port}")
    server.start()
    proxy = Proxy(server.port)
    await proxy.start(port)
    proxy.port = port
    try:
        yield server, proxy
    finally:
        await proxy.close()
        server.kill()


async def read_partitions(conn, topic: str, partitions: int) -> dict[int, list[bytes]]:
    consumer = conn.consumer()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    await consumer.seek_to_beginning()
    found: dict[int, list[bytes]] = {p: [] for p in range(partitions)}
    while batch := await consumer.getmany(timeout_ms=500):
        for tp, records in batch.items():
            found[tp.partition] += [r.value for r in records]
    await consumer.close()
    return found


async def test_connections_cut_and_reopened_while_producing_keep_order_and_lose_nothing(
    proxied,
) -> None:
    """Each reopened connection is a moment where Produce requests of the same partition wait
    for it together, while batches of the lost connection wait to be retried: they must still
    reach the broker in sequence order, and never more of them than the broker remembers ahead
    of a retry (else it refuses one with OUT_OF_ORDER_SEQUENCE_NUMBER and its records fail)."""
    _, proxy = proxied
    async with await connect(f"millstream://127.0.0.1:{proxy.port}") as conn:
        await conn.admin().create_topic("cut", partitions=6)
        proxy.flaky = True
        producer = conn.producer(linger_ms=0)
        deliveries = []
        for i in range(4000):  # a batch every moment or two, so requests wait on each reopen
            deliveries.append(producer.send("cut", b"%05d" % i, partition=i % 6))
            await asyncio.sleep(0.0002)
        await producer.flush()
        metas = [await d for d in deliveries]  # every record acknowledged, none failed
        await producer.close()
        proxy.flaky = False
        assert proxy.cuts >= 20
        found = await read_partitions(conn, "cut", 6)
    values = [int(v) for part in found.values() for v in part]
    assert sorted(values) == list(range(4000))  # each record stored exactly once
    for part in found.values():
        assert [int(v) for v in part] == sorted(int(v) for v in part)  # in send order
    assert {(m.partition, m.offset) for m in metas} == {
        (p, o) for p, part in found.items() for o in range(len(part))
    }


async def test_a_batch_whose_answer_was_lost_is_stored_once_when_the_producer_id_changes(
    proxied,
) -> None:
    """The producer takes a new producer id after a reported failure; a batch sent before,
    whose answer was lost, is retried under the id it was sent with, so the broker knows it."""
    server, proxy = proxied
    async with await connect(f"millstream://127.0.0.1:{proxy.port}") as conn:
        await conn.admin().create_topic("once", partitions=2)
        producer = conn.producer(linger_ms=5)
        await producer.send("once", b"warm-0", partition=0)
        await producer.send("once", b"warm-1", partition=1)
        async with await connect(f"millstream://{server.bootstrap}") as other:
            await other.admin().alter_topic("once", config={"max.message.bytes": "2000"})
        with pytest.raises(RecordTooLargeError):  # a failure on partition 0, reported
            await producer.send("once", b"x" * 5000, partition=0)
        proxy.lose_next_answer = True
        delivery = producer.send("once", b"ONLY-ONCE", partition=1)
        await proxy.lost.wait()
        producer.send("once", b"after", partition=0)  # partition 0 resumes: a new producer id
        meta = await delivery
        await producer.flush()
        found = await read_partitions(conn, "once", 2)
    assert found[1] == [b"warm-1", b"ONLY-ONCE"]
    assert meta.offset == 1
    assert found[0] == [b"warm-0", b"after"]


async def test_closing_a_connection_closes_every_client_even_when_one_fails(broker_session) -> None:
    conn = await connect(f"millstream://{broker_session.bootstrap}")
    failing = conn.consumer()
    other = conn.consumer()

    async def refuse() -> None:  # a close that fails (a leave the coordinator refused, say)
        raise StoreError("cannot leave the group")

    failing.close = refuse  # type: ignore[method-assign]
    with pytest.raises(StoreError, match="cannot leave the group"):
        await conn.close()
    with pytest.raises(StoreClosedError):  # the one after it was closed all the same
        await other.getmany(timeout_ms=0)
    with pytest.raises(StoreClosedError):
        conn.admin()


async def test_an_alter_with_a_refused_config_adds_no_partitions(broker_session) -> None:
    topic = f"alter-{random.randrange(1 << 30)}"
    async with await connect(f"millstream://{broker_session.bootstrap}") as conn:
        admin = conn.admin()
        await admin.create_topic(topic, partitions=1)
        with pytest.raises(ConfigError, match="max.message.bytes"):
            await admin.alter_topic(topic, partitions=3, config={"max.message.bytes": "lots"})
        assert len((await admin.describe_topic(topic)).partitions) == 1  # nothing half done
        altered = await admin.alter_topic(topic, partitions=3, config={"retention.ms": "5000"})
        assert len(altered.partitions) == 3
        assert altered.configs["retention.ms"] == "5000"


async def test_a_producer_refuses_records_beyond_its_buffer_while_the_broker_is_away(
    broker,
) -> None:
    async with await connect(f"millstream://{broker.bootstrap}") as conn:
        await conn.admin().create_topic("held")
        producer = conn.producer(buffer_bytes=100_000)
        await producer.send("held", b"warm")
        os.kill(broker.process.pid, signal.SIGSTOP)  # nothing is acknowledged from now on
        try:
            held = []
            with pytest.raises(BufferFullError, match="await their deliveries or flush"):
                for i in range(10_000):
                    held.append(producer.send("held", b"%04d" % i + b"." * 996))
            assert 90 <= len(held) <= 110  # about 100 KB of records, not all 10 MB
            with pytest.raises(BufferFullError):
                producer.send_batch("held", [Record(None, b"more")])
        finally:
            os.kill(broker.process.pid, signal.SIGCONT)
        await producer.flush()  # the broker is back: what was held is delivered
        assert [(await d).offset for d in held] == list(range(1, len(held) + 1))
        assert (await producer.send("held", b"again")).offset == len(held) + 1
        await producer.close()


@pytest.mark.parametrize("scheme", ["millstream", "kafka"])
async def test_a_refused_connection_names_both_kinds_of_broker_on_one_line(scheme: str) -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(BrokerUnavailableError) as caught:
        await NetworkConnection.open(f"{scheme}://127.0.0.1:{port}", timeout_s=2)
    message = str(caught.value)
    assert message.startswith(f"cannot reach {scheme}://127.0.0.1:{port}: cannot connect to ")
    assert message.endswith(
        "is a Kafka protocol broker (millstream broker or Apache Kafka) listening there?"
    )
    assert "\n" not in message
