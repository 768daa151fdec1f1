"""``millstream broker`` applies retention and compaction while it serves."""

from __future__ import annotations

import asyncio
import time

import pytest
from broker_server import BrokerServer
from broker_wire import Wire, request

from millstream.core.log import decode_records, encode_batch
from millstream.core.protocol import ApiKey
from millstream.core.record import Record

_CREATE = request(ApiKey.CREATE_TOPICS).__class__
_PRODUCE = request(ApiKey.PRODUCE).__class__
_LIST = request(ApiKey.LIST_OFFSETS).__class__
_FETCH = request(ApiKey.FETCH).__class__


@pytest.fixture
def busy_broker(tmp_path):
    server = BrokerServer(tmp_path / "broker-data", None, "--retention-check-interval", "0.3")
    server.start()
    try:
        yield server
    finally:
        server.kill()


async def create(wire: Wire, name: str, **configs: str) -> None:
    body = _CREATE(
        topics=[
            _CREATE.Topics(
                name=name,
                num_partitions=1,
                replication_factor=1,
                assignments=[],
                configs=[_CREATE.Topics.Configs(name=k, value=v) for k, v in configs.items()],
            )
        ],
        timeout_ms=1000,
    )
    response = await wire.call(ApiKey.CREATE_TOPICS, 4, body)
    assert response.topics[0].error_code == 0


async def produce(wire: Wire, topic: str, records: list[Record]) -> None:
    raw = bytes(encode_batch(records))
    partition = _PRODUCE.TopicData.PartitionData(0, raw)
    body = _PRODUCE(acks=-1, timeout_ms=5000, topic_data=[_PRODUCE.TopicData(topic, [partition])])
    response = await wire.call(ApiKey.PRODUCE, 8, body)
    assert response.responses[0].partition_responses[0].error_code == 0


async def earliest(wire: Wire, topic: str) -> int:
    body = _LIST(
        replica_id=-1,
        topics=[_LIST.Topics(name=topic, partitions=[_LIST.Topics.Partitions(0, -1, -2)])],
    )
    return (await wire.call(ApiKey.LIST_OFFSETS, 5, body)).topics[0].partitions[0].offset


async def values(wire: Wire, topic: str) -> list[bytes]:
    """Every value in ``topic``, fetched from its start (a fetch stops at a segment's end)."""
    out: list[bytes] = []
    offset = 0
    while True:
        partition = _FETCH.Topics.Partitions(
            partition=0, fetch_offset=offset, partition_max_bytes=1 << 20
        )
        body = _FETCH(
            max_wait_ms=0,
            min_bytes=0,
            max_bytes=1 << 20,
            topics=[_FETCH.Topics(topic, [partition])],
        )
        answer = (await wire.call(ApiKey.FETCH, 11, body)).responses[0].partitions[0]
        raw = bytes(answer.records or b"")
        if not raw:
            return out
        pos = 0
        while pos < len(raw):
            size = int.from_bytes(raw[pos + 8 : pos + 12], "big") + 12
            for record in decode_records(raw[pos : pos + size]):
                out.append(record.value)
                offset = record.offset + 1
            pos += size


async def test_retention_deletes_expired_segments_while_the_broker_runs(busy_broker):
    wire = await Wire.connect(busy_broker.host, busy_broker.port)
    try:
        await create(wire, "short", **{"retention.ms": "1000", "segment.bytes": "1024"})
        an_hour_ago = int(time.time() * 1000) - 3_600_000
        for _ in range(20):
            await produce(wire, "short", [Record(b"k", b"v" * 600, timestamp=an_hour_ago)])
        deadline = time.monotonic() + 15
        while await earliest(wire, "short") < 19:  # every closed segment goes
            assert time.monotonic() < deadline, "retention never ran"
            await asyncio.sleep(0.2)
    finally:
        await wire.close()


async def test_compaction_keeps_the_newest_record_per_key_while_the_broker_runs(busy_broker):
    wire = await Wire.connect(busy_broker.host, busy_broker.port)
    try:
        await create(wire, "latest", **{"cleanup.policy": "compact", "segment.bytes": "1024"})
        for i in range(30):
            await produce(wire, "latest", [Record(b"k%d" % (i % 3), b"%03d" % i + b"." * 500)])
        deadline = time.monotonic() + 15
        while len(await values(wire, "latest")) > 4:  # 3 keys, and what the active segment holds
            assert time.monotonic() < deadline, "compaction never ran"
            await asyncio.sleep(0.2)
        kept = [v[:3] for v in await values(wire, "latest")]
        assert kept[-3:] == [b"027", b"028", b"029"]
    finally:
        await wire.close()
