"""The broker process: hostile input, graceful shutdown, restart, the non-loopback warning."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import time

from broker_server import MILLSTREAM, BrokerServer, free_port
from broker_wire import Wire, batch, request

from millstream.core.log import LogStore
from millstream.core.protocol import ApiKey

PRODUCE = ApiKey.PRODUCE


def produce_body(topic: str, records: bytes, acks: int = -1):
    cls = request(PRODUCE).__class__
    return cls(
        acks=acks,
        timeout_ms=5000,
        topic_data=[cls.TopicData(topic, [cls.TopicData.PartitionData(0, records)])],
    )


async def metadata_ok(server: BrokerServer) -> bool:
    wire = await Wire.connect(server.host, server.port)
    try:
        response = await wire.call(ApiKey.METADATA, 8, request(ApiKey.METADATA, topics=None))
        return response.brokers[0].port == server.port
    finally:
        await wire.close()


async def test_malformed_frames_close_only_their_connection(broker):
    healthy = await Wire.connect(broker.host, broker.port)
    try:
        hostile = [
            b"\x7f\xff\xff\xff",  # a length prefix far above the request limit
            b"\xff\xff\xff\xf0",  # a negative length
            (3).to_bytes(4, "big") + b"\x00\x00\x00",  # a header cut short
            (10).to_bytes(4, "big") + b"\x03\xe7\x00\x00\x00\x00\x00\x01\x00\x00",  # API 999
            (12).to_bytes(4, "big")
            + b"\x00\x03\x00\x08\x00\x00\x00\x01\x00\x00\xff\xff",  # cut body
            b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        ]
        for data in hostile:
            wire = await Wire.connect(broker.host, broker.port)
            wire.writer.write(data)
            assert await wire.closed(), data
            await wire.close()
        # a client that connects and never speaks, and one that reads nothing for a while, do
        # no harm to others, and the one that reads late gets every answer, in order (memory
        # held and the idle timeouts are in test_broker_connections.py)
        silent = await Wire.connect(broker.host, broker.port)
        deaf = await Wire.connect(broker.host, broker.port)
        sent = [
            deaf.send(ApiKey.METADATA, 8, request(ApiKey.METADATA, topics=None)) for _ in range(200)
        ]
        assert await metadata_ok(broker)
        response = await healthy.call(ApiKey.API_VERSIONS, 3, request(ApiKey.API_VERSIONS))
        assert response.error_code == 0
        for header in sent:  # receive() checks each correlation id
            assert (await deaf.receive(header)).brokers[0].port == broker.port
        await silent.close()
        await deaf.close()
    finally:
        await healthy.close()
    assert "closing connection from 127.0.0.1:" in broker.log()


async def test_graceful_stop_keeps_data_and_idempotence_state(broker):
    wire = await Wire.connect(broker.host, broker.port)
    init = await wire.call(
        ApiKey.INIT_PRODUCER_ID, 1, request(ApiKey.INIT_PRODUCER_ID, transactional_id=None)
    )
    pid = init.producer_id
    first = batch(b"one", b"two", producer_id=pid, producer_epoch=0, base_sequence=0)
    response = await wire.call(PRODUCE, 8, produce_body("kept", first))
    assert response.responses[0].partition_responses[0].error_code == 3  # no such topic yet
    await wire.call(
        ApiKey.METADATA,
        8,
        request(ApiKey.METADATA, topics=[request(ApiKey.METADATA).Topics(name="kept")]),
    )
    response = await wire.call(PRODUCE, 8, produce_body("kept", first))
    assert response.responses[0].partition_responses[0].base_offset == 0
    await wire.close()
    assert broker.stop() == 0
    assert "stopped" in broker.log()
    broker.start()
    wire = await Wire.connect(broker.host, broker.port)
    try:
        again = await wire.call(PRODUCE, 8, produce_body("kept", first))
        part = again.responses[0].partition_responses[0]
        assert (part.error_code, part.base_offset) == (0, 0)  # a duplicate, known after restart
        nxt = batch(b"three", producer_id=pid, producer_epoch=0, base_sequence=2)
        part = (await wire.call(PRODUCE, 8, produce_body("kept", nxt))).responses[0]
        assert part.partition_responses[0].base_offset == 2
        init2 = await wire.call(
            ApiKey.INIT_PRODUCER_ID, 1, request(ApiKey.INIT_PRODUCER_ID, transactional_id=None)
        )
        assert init2.producer_id > pid  # never handed out twice
    finally:
        await wire.close()
    assert broker.stop() == 0
    store = LogStore.open(broker.data_dir, read_only=True)
    try:
        values = [r.value for r in store.topic("kept").partition(0).read_records(0)]
        assert values == [b"one", b"two", b"three"]
    finally:
        await store.close()


async def test_sigterm_answers_in_flight_requests_first(broker):
    wire = await Wire.connect(broker.host, broker.port)
    try:
        await wire.call(
            ApiKey.METADATA,
            8,
            request(ApiKey.METADATA, topics=[request(ApiKey.METADATA).Topics(name="slow")]),
        )
        cls = request(ApiKey.FETCH).__class__
        body = cls(
            max_wait_ms=60_000,
            min_bytes=1,
            topics=[
                cls.Topics(
                    "slow",
                    [
                        cls.Topics.Partitions(
                            partition=0, fetch_offset=0, partition_max_bytes=1 << 20
                        )
                    ],
                )
            ],
        )
        header = wire.send(ApiKey.FETCH, 11, body)
        await wire.writer.drain()
        await asyncio.sleep(0.3)
        broker.process.send_signal(signal.SIGTERM)
        started = time.monotonic()
        response = await wire.receive(header, timeout=30)
        assert time.monotonic() - started < 5  # the long poll ends at once, not in 60 s
        assert response.responses[0].partitions[0].error_code == 0
        assert await asyncio.to_thread(broker.process.wait, 30) == 0
    finally:
        await wire.close()


def test_listening_beyond_loopback_warns_of_no_authentication(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [
            str(MILLSTREAM),
            "broker",
            "--data-dir",
            str(tmp_path / "d"),
            "--listen",
            f"0.0.0.0:{port}",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = process.stderr.readline()
        assert "warning" in line and "no authentication" in line
        deadline = 200
        while deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                deadline -= 1
                time.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.wait()


async def test_acknowledged_records_survive_a_kill(broker):
    wire = await Wire.connect(broker.host, broker.port)
    metadata = request(ApiKey.METADATA).__class__
    await wire.call(ApiKey.METADATA, 8, metadata(topics=[metadata.Topics(name="crash")]))
    for i in range(10):
        response = await wire.call(PRODUCE, 8, produce_body("crash", batch(b"r%d" % i)))
        assert response.responses[0].partition_responses[0].base_offset == i
    await wire.close()
    broker.kill()
    broker.start()
    wire = await Wire.connect(broker.host, broker.port)
    try:
        cls = request(ApiKey.LIST_OFFSETS).__class__
        body = cls(
            replica_id=-1,
            topics=[cls.Topics(name="crash", partitions=[cls.Topics.Partitions(0, -1, -1)])],
        )
        latest = await wire.call(ApiKey.LIST_OFFSETS, 5, body)
        assert latest.topics[0].partitions[0].offset == 10
    finally:
        await wire.close()
