"""Idempotence state (core/broker/producers.py): rebuilt from the log off the event loop,
expired and capped per partition."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
import time

from broker_server import BrokerServer
from broker_wire import Wire, batch, request

from millstream.core.broker.producers import Check, SequenceState
from millstream.core.log import LogStore, encode_batch
from millstream.core.log.batch import read_header
from millstream.core.protocol import ApiKey, ErrorCode
from millstream.core.record import Record

_PRODUCE = request(ApiKey.PRODUCE).__class__
_PING = struct.pack(">ihhih", 10, 18, 0, 1, 0)  # ApiVersions v0


def idempotent(producer_id: int, sequence: int, timestamp: int | None = None) -> bytes:
    record = Record(None, b"v", timestamp=timestamp) if timestamp else Record(None, b"v")
    return bytes(
        encode_batch([record], producer_id=producer_id, producer_epoch=0, base_sequence=sequence)
    )


async def test_producers_are_forgotten_past_the_cap_least_recent_first(tmp_path):
    store = LogStore.open(tmp_path / "d")
    try:
        store.create_topic("t", 1)
        partition = store.topic("t").partition(0)
        state = SequenceState(max_producers=3)
        await state.load(partition)
        for producer_id in range(5):
            raw = idempotent(producer_id, 0)
            header = read_header(raw)
            assert state.check(partition, header).check is Check.APPEND
            result = partition.append(bytearray(raw))
            state.appended(partition, header, result.base_offset, result.last_offset)
        again = [state.check(partition, read_header(idempotent(p, 0))).check for p in range(5)]
        # the two least recent producers were forgotten: their resend is taken as new
        assert again == [Check.APPEND] * 2 + [Check.DUPLICATE] * 3
    finally:
        await store.close()


async def test_producers_idle_past_the_expiration_are_not_rebuilt_from_the_log(tmp_path):
    store = LogStore.open(tmp_path / "d")
    store.create_topic("t", 1)
    partition = store.topic("t").partition(0)
    now = int(time.time() * 1000)
    partition.append(bytearray(idempotent(1, 0, timestamp=now - 3 * 3_600_000)))
    partition.append(bytearray(idempotent(2, 0, timestamp=now)))
    await store.close()
    store = LogStore.open(tmp_path / "d")
    try:
        partition = store.topic("t").partition(0)
        state = SequenceState(expiration_s=3600)
        await state.load(partition)
        assert state.check(partition, read_header(idempotent(1, 0))).check is Check.APPEND
        assert state.check(partition, read_header(idempotent(2, 0))).check is Check.DUPLICATE
    finally:
        await store.close()


def _pinger(port: int, stop: threading.Event, worst: list[float]) -> None:
    with socket.create_connection(("127.0.0.1", port)) as s:
        while not stop.is_set():
            started = time.monotonic()
            s.sendall(_PING)
            size = struct.unpack(">i", s.recv(4))[0]
            got = 0
            while got < size:
                got += len(s.recv(size - got))
            worst[0] = max(worst[0], time.monotonic() - started)
            time.sleep(0.005)


async def test_rebuilding_a_large_partition_does_not_stall_other_connections(tmp_path):
    data = tmp_path / "broker-data"
    store = LogStore.open(data)
    store.create_topic("big", 1)
    partition = store.topic("big").partition(0)
    one = idempotent(7, 0)
    for _ in range(100_000):  # small batches, as a producer with a short linger writes them
        partition.append(bytearray(one))
    await store.close()
    server = BrokerServer(data).start()
    stop, worst = threading.Event(), [0.0]
    pinger = threading.Thread(target=_pinger, args=(server.port, stop, worst))
    try:
        wire = await Wire.connect(server.host, server.port)
        init = await wire.call(
            ApiKey.INIT_PRODUCER_ID, 1, request(ApiKey.INIT_PRODUCER_ID, transactional_id=None)
        )
        pinger.start()
        await asyncio.sleep(0.3)
        worst[0] = 0.0
        first = batch(b"y", producer_id=init.producer_id, producer_epoch=0, base_sequence=0)
        body = _PRODUCE(
            acks=-1,
            timeout_ms=5000,
            topic_data=[_PRODUCE.TopicData("big", [_PRODUCE.TopicData.PartitionData(0, first)])],
        )
        started = time.monotonic()
        response = await wire.call(ApiKey.PRODUCE, 8, body, timeout=60)
        took = time.monotonic() - started
        answer = response.responses[0].partition_responses[0]
        assert (answer.error_code, answer.base_offset) == (ErrorCode.NONE, 100_000)
        await wire.close()
        stop.set()
        pinger.join()
        # the read of 100,000 batch headers took a while; other clients were answered meanwhile
        assert worst[0] < max(0.25, took / 3), (worst[0], took)
    finally:
        stop.set()
        server.kill()
