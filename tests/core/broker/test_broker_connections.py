"""The broker's connection limits, through a real ``millstream broker``: a client that reads
nothing, too many connections, requests that allow no answer, and shutdown with a member waiting
in JoinGroup."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from broker_server import BrokerServer
from broker_wire import Wire, batch, request

from millstream.core.log import Compression
from millstream.core.protocol import ApiKey, ErrorCode

PRODUCE = ApiKey.PRODUCE
_PRODUCE = request(PRODUCE).__class__
_FETCH = request(ApiKey.FETCH).__class__
_JOIN = request(ApiKey.JOIN_GROUP).__class__


def produce_body(topic: str, records: bytes, acks: int = -1, transactional_id=None):
    return _PRODUCE(
        acks=acks,
        timeout_ms=5000,
        transactional_id=transactional_id,
        topic_data=[_PRODUCE.TopicData(topic, [_PRODUCE.TopicData.PartitionData(0, records)])],
    )


def fetch_everything(topic: str):
    partition = _FETCH.Topics.Partitions(
        partition=0, fetch_offset=0, partition_max_bytes=0x7FFFFFFF
    )
    return _FETCH(
        replica_id=-1,
        max_wait_ms=0,
        min_bytes=0,
        max_bytes=0x7FFFFFFF,
        isolation_level=0,
        topics=[_FETCH.Topics(topic=topic, partitions=[partition])],
    )


def rss_mb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024
    raise AssertionError("no VmRSS")


async def create_topic(wire: Wire, name: str) -> None:
    metadata = request(ApiKey.METADATA).__class__
    await wire.call(ApiKey.METADATA, 8, metadata(topics=[metadata.Topics(name=name)]))


async def answers(server: BrokerServer) -> bool:
    try:
        wire = await Wire.connect(server.host, server.port)
    except OSError:
        return False
    try:
        response = await wire.call(ApiKey.API_VERSIONS, 3, request(ApiKey.API_VERSIONS), 5)
        return response.error_code == 0
    except (AssertionError, ConnectionError, TimeoutError):
        return False
    finally:
        await wire.close()


async def wait_for_log(server: BrokerServer, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log():
            return True
        await asyncio.sleep(0.1)
    return text in server.log()


@pytest.fixture
def strict_broker(tmp_path):
    server = BrokerServer(
        tmp_path / "broker-data", None, "--idle-timeout", "2", "--max-connections", "4"
    ).start()
    try:
        yield server
    finally:
        server.kill()


async def test_a_client_that_reads_nothing_holds_one_response_and_is_dropped(strict_broker):
    broker = strict_broker
    wire = await Wire.connect(broker.host, broker.port)
    await create_topic(wire, "big")
    value = os.urandom(900_000)
    for _ in range(16):  # about 14 MB
        records = batch(value, compression=Compression.NONE)
        response = await wire.call(PRODUCE, 8, produce_body("big", records, acks=1))
        assert response.responses[0].partition_responses[0].error_code == 0
    await wire.close()
    before = rss_mb(broker.process.pid)

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((broker.host, broker.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    deaf = Wire(reader, writer)
    writer.transport.pause_reading()  # reads nothing at all
    for _ in range(40):  # each asks for the whole topic
        deaf.send(ApiKey.FETCH, 4, fetch_everything("big"))
    await writer.drain()
    peak = before
    deadline = time.monotonic() + 4
    while time.monotonic() < deadline:
        peak = max(peak, rss_mb(broker.process.pid))
        await asyncio.sleep(0.1)
    # one response is built at a time: 40 held at once would be over 500 MB
    assert peak - before < 150, (before, peak)
    assert await wait_for_log(broker, "it read nothing of a response for 2.0s", 10)
    writer.transport.abort()
    assert await answers(broker)


async def test_connections_beyond_the_limit_are_closed_as_they_come(strict_broker):
    broker = strict_broker
    held: list[Wire] = []
    deadline = time.monotonic() + 10
    try:
        while len(held) < 4:  # the start-up probe's connection may still be counted a moment
            wire = await Wire.connect(broker.host, broker.port)
            try:
                await wire.call(ApiKey.API_VERSIONS, 3, request(ApiKey.API_VERSIONS))
                held.append(wire)
            except AssertionError:
                await wire.close()
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        extra = await Wire.connect(broker.host, broker.port)
        assert await extra.closed(timeout=1)  # at once, not after the idle timeout
        await extra.close()
        assert "refusing connection from 127.0.0.1:" in broker.log()
        await held.pop().close()
        deadline = time.monotonic() + 5
        while not await answers(broker):  # once the broker has seen the close
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    finally:
        for wire in held:
            await wire.close()


async def test_a_silent_client_is_closed_after_the_idle_timeout(strict_broker):
    silent = await Wire.connect(strict_broker.host, strict_broker.port)
    started = time.monotonic()
    assert await silent.closed(timeout=10)
    assert 1.5 < time.monotonic() - started < 8
    await silent.close()


async def test_produce_with_acks_0_is_never_answered_even_when_refused(broker):
    wire = await Wire.connect(broker.host, broker.port)
    await create_topic(wire, "quiet")
    await wire.close()
    for version, body in [
        (2, produce_body("quiet", batch(b"old version"), acks=0)),
        (8, produce_body("quiet", batch(b"transactional"), acks=0, transactional_id="tx")),
    ]:
        wire = await Wire.connect(broker.host, broker.port)
        wire.send(PRODUCE, version, body)
        following = wire.send(ApiKey.API_VERSIONS, 3, request(ApiKey.API_VERSIONS))
        await wire.writer.drain()
        # no answer carrying the Produce's correlation id: the connection is closed instead
        assert await wire.closed(), version
        await wire.close()
        assert following.correlation_id == 2
    assert "with acks=0" in broker.log()
    assert await answers(broker)


async def test_sigterm_answers_a_member_waiting_in_join_group_at_once(broker):
    def join(member_id: str = ""):
        return _JOIN(
            group_id="g",
            session_timeout_ms=60_000,
            rebalance_timeout_ms=120_000,
            member_id=member_id,
            protocol_type="consumer",
            protocols=[_JOIN.Protocols(name="range", metadata=b"x")],
        )

    first = await Wire.connect(broker.host, broker.port)
    second = await Wire.connect(broker.host, broker.port)
    try:
        joined = await first.call(ApiKey.JOIN_GROUP, 3, join(), timeout=15)
        assert joined.error_code == 0
        sync = request(ApiKey.SYNC_GROUP).__class__
        synced = await first.call(
            ApiKey.SYNC_GROUP,
            2,
            sync(
                group_id="g",
                generation_id=joined.generation_id,
                member_id=joined.member_id,
                assignments=[],
            ),
        )
        assert synced.error_code == 0
        waiting = second.send(ApiKey.JOIN_GROUP, 3, join())  # waits for the first to rejoin
        await second.writer.drain()
        await asyncio.sleep(0.5)
        broker.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        answer = await second.receive(waiting, timeout=10)
        assert answer.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
        assert await asyncio.to_thread(broker.process.wait, 10) == 0
        assert time.monotonic() - started < 5
    finally:
        await first.close()
        await second.close()
