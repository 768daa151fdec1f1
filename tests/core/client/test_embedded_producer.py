"""The embedded producer: batches, partitions, acknowledgements and errors."""

from __future__ import annotations

import asyncio
import time

import pytest

from millstream.core.client.partitioner import partition_for_key
from millstream.core.errors import (
    InvalidPartitionsError,
    RecordTooLargeError,
    StoreClosedError,
    UnknownTopicError,
)
from millstream.core.log.batch import read_header
from millstream.core.log.compression import Compression


def batches(conn, topic, partition=0):
    """The headers of every batch stored in one partition."""
    part = conn.store.topic(topic).partitions[partition]
    return [read_header(raw) for raw in part.read(part.log_start_offset, 1 << 30)]


def stored(conn, topic, partition=0):
    part = conn.store.topic(topic).partitions[partition]
    return part.read_records(part.log_start_offset, max_bytes=1 << 30)


async def test_a_delivery_yields_where_the_record_was_stored(conn):
    await conn.admin().create_topic("t", 1)
    async with conn.producer() as producer:
        before = int(time.time() * 1000)
        first = await producer.send("t", b"a", key=b"k", headers=[("h", b"1")])
        second = await producer.send("t", b"b", timestamp=1234)
    assert (first.topic, first.partition, first.offset) == ("t", 0, 0)
    assert before <= first.timestamp <= int(time.time() * 1000)
    assert (second.offset, second.timestamp) == (1, 1234)
    records = stored(conn, "t")
    assert [(r.key, r.value, r.headers) for r in records] == [
        (b"k", b"a", (("h", b"1"),)),
        (None, b"b", ()),
    ]
    assert records[0].timestamp == first.timestamp


async def test_records_sent_together_share_one_batch(conn):
    await conn.admin().create_topic("t", 1)
    producer = conn.producer(linger_ms=1000)
    deliveries = [producer.send("t", b"%d" % i) for i in range(100)]
    assert not any(d.done() for d in deliveries)
    await producer.flush()
    assert all(d.done() for d in deliveries)
    assert [(await d).offset for d in deliveries] == list(range(100))
    assert [h.record_count for h in batches(conn, "t")] == [100]


async def test_a_batch_is_sealed_when_full(conn):
    await conn.admin().create_topic("t", 1)
    producer = conn.producer(linger_ms=10_000, batch_bytes=1000)
    for _ in range(50):
        producer.send("t", b"x" * 100)
    # full batches were appended at once, before any flush; the last one is still open
    appended = conn.store.topic("t").partitions[0].log_end_offset
    assert 0 < appended < 50
    await producer.flush()
    counts = [h.record_count for h in batches(conn, "t")]
    assert sum(counts) == 50
    assert len(counts) > 1
    assert all(h.size <= 1000 for h in batches(conn, "t"))


async def test_a_batch_is_sealed_after_lingering(conn):
    await conn.admin().create_topic("t", 1)
    producer = conn.producer(linger_ms=20)
    delivery = producer.send("t", b"x")
    meta = await asyncio.wait_for(delivery, 2)  # no flush: the linger timer seals it
    assert meta.offset == 0
    await producer.close()


async def test_keys_go_where_kafka_puts_them(conn):
    await conn.admin().create_topic("t", 6)
    async with conn.producer() as producer:
        keys = [b"k%d" % i for i in range(40)]
        metas = [await d for d in [producer.send("t", b"v", key=k) for k in keys]]
    for key, meta in zip(keys, metas, strict=True):
        assert meta.partition == partition_for_key(key, 6)
    assert len({m.partition for m in metas}) > 1


async def test_keyless_records_stick_to_one_partition_per_batch(conn):
    await conn.admin().create_topic("t", 4)
    producer = conn.producer(linger_ms=1000)
    deliveries = [producer.send("t", b"v") for _ in range(20)]
    await producer.flush()
    assert len({(await d).partition for d in deliveries}) == 1
    await producer.close()
    # each sealed batch moves the sticky partition on
    partitions = set()
    async with conn.producer(linger_ms=0) as producer:
        for _ in range(8):
            partitions.add((await producer.send("t", b"v")).partition)
    assert len(partitions) > 1


async def test_an_explicit_partition_is_used_and_checked(conn):
    await conn.admin().create_topic("t", 3)
    async with conn.producer() as producer:
        assert (await producer.send("t", b"v", key=b"k", partition=2)).partition == 2
        with pytest.raises(InvalidPartitionsError, match="valid partitions are 0 to 2"):
            producer.send("t", b"v", partition=3)


async def test_the_topic_compression_overrides_the_producers(conn):
    admin = conn.admin()
    await admin.create_topic("forced", 1, config={"compression.type": "gzip"})
    await admin.create_topic("free", 1)
    async with conn.producer(compression="zstd") as producer:
        await producer.send("forced", b"v" * 100)
        await producer.send("free", b"v" * 100)
    assert batches(conn, "forced")[0].compression == Compression.GZIP
    assert batches(conn, "free")[0].compression == Compression.ZSTD
    assert stored(conn, "forced")[0].value == b"v" * 100


async def test_log_append_time_topics_report_the_stores_clock(conn):
    await conn.admin().create_topic("t", 1, config={"message.timestamp.type": "LogAppendTime"})
    async with conn.producer() as producer:
        meta = await producer.send("t", b"v", timestamp=5)
    assert meta.timestamp > 5
    assert stored(conn, "t")[0].timestamp == meta.timestamp


async def test_a_record_over_max_message_bytes_raises_at_send(conn):
    await conn.admin().create_topic("t", 1, config={"max.message.bytes": "1000"})
    async with conn.producer() as producer:
        with pytest.raises(RecordTooLargeError, match=r"max.message.bytes=1000 of topic 't'"):
            producer.send("t", b"x" * 1000)
        fits = await producer.send("t", b"x" * 800)
        # batches never exceed the topic's limit, whatever the producer's batch size
        for _ in range(10):
            producer.send("t", b"x" * 300)
    assert fits.offset == 0
    assert all(h.size <= 1000 for h in batches(conn, "t"))
    assert sum(h.record_count for h in batches(conn, "t")) == 11


async def test_bad_arguments_raise_at_once(conn):
    await conn.admin().create_topic("t", 1)
    producer = conn.producer()
    with pytest.raises(UnknownTopicError, match="unknown topic 'nope'"):
        producer.send("nope", b"v")
    with pytest.raises(TypeError, match="value must be bytes"):
        producer.send("t", "text")
    with pytest.raises(TypeError, match="key must be bytes"):
        producer.send("t", b"v", key=7)
    with pytest.raises(ValueError, match=r"timestamp -5 .*int >= 0"):
        producer.send("t", b"v", timestamp=-5)
    with pytest.raises(TypeError, match="header"):
        producer.send("t", b"v", headers=["oops"])
    assert (await producer.send("t", bytearray(b"ok"), key=memoryview(b"k"))).offset == 0
    await producer.close()
    await producer.close()  # idempotent
    with pytest.raises(StoreClosedError):
        producer.send("t", b"v")


async def test_flush_reports_failures_nobody_awaited(conn):
    await conn.admin().create_topic("t", 1)
    producer = conn.producer(linger_ms=1000)
    producer.send("t", b"v")
    await conn.store.close()  # the store goes away under the open batch
    with pytest.raises(StoreClosedError):
        await producer.flush()


async def test_many_records_arrive_complete_and_in_order(conn):
    await conn.admin().create_topic("t", 3)
    async with conn.producer(batch_bytes=4096) as producer:
        for i in range(6000):
            producer.send("t", b"%d" % i, key=b"%d" % (i % 7))
    seen = []
    for p in range(3):
        per_key: dict[bytes, list[int]] = {}
        for r in stored(conn, "t", p):
            assert partition_for_key(r.key, 3) == p
            per_key.setdefault(r.key, []).append(int(r.value))
            seen.append(int(r.value))
        for values in per_key.values():
            assert values == sorted(values)
    assert sorted(seen) == list(range(6000))
