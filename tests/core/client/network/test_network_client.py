"""The network transport against a real ``millstream broker`` subprocess: producing, consuming,
admin and source positions over the Kafka protocol, with the embedded transport's semantics."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from millstream.core import Record
from millstream.core.client import Connection, connect
from millstream.core.client.partitioner import partition_for_key
from millstream.core.errors import (
    ConfigError,
    InvalidPartitionsError,
    InvalidTopicError,
    RecordTooLargeError,
    StoreClosedError,
    TopicExistsError,
    UnknownTopicError,
)
from millstream.core.record import TopicPartition


@pytest.fixture
async def conn(remote) -> AsyncIterator[Connection]:
    connection = await connect(remote.url)
    yield connection
    await connection.close()


def fresh(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def read_all(conn: Connection, topic: str, partitions: int) -> list:
    consumer = conn.consumer()
    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    await consumer.seek_to_beginning()
    out = []
    while got := await consumer.getmany(timeout_ms=300):
        for records in got.values():
            out.extend(records)
    await consumer.close()
    return out


async def test_records_go_where_kafka_puts_them_and_come_back(conn: Connection) -> None:
    topic = fresh()
    await conn.admin().create_topic(topic, partitions=4)
    async with conn.producer() as producer:
        metas = [
            await producer.send(topic, b"v%d" % i, key=b"k%d" % i, headers=[("h", b"x")])
            for i in range(20)
        ]
        stamped = await producer.send(topic, b"old", key=b"k0", timestamp=1_000)
    for i, meta in enumerate(metas):
        assert meta.partition == partition_for_key(b"k%d" % i, 4)
    assert stamped.timestamp == 1_000
    got = await read_all(conn, topic, 4)
    assert sorted(r.value for r in got) == sorted([b"v%d" % i for i in range(20)] + [b"old"])
    by_value = {r.value: r for r in got}
    assert by_value[b"v3"].key == b"k3" and by_value[b"v3"].headers == (("h", b"x"),)
    assert by_value[b"old"].timestamp == 1_000
    assert by_value[b"v7"].offset == metas[7].offset


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
async def test_every_compression_round_trips(conn: Connection, codec: str) -> None:
    topic = fresh(codec)
    await conn.admin().create_topic(topic)
    async with conn.producer(compression=codec, linger_ms=5) as producer:
        done = producer.send_batch(topic, [Record(None, b"%05d" % i * 20) for i in range(2000)])
        metas = await done
    assert [m.offset for m in metas] == list(range(2000))
    got = await read_all(conn, topic, 1)
    assert [r.value for r in got] == [b"%05d" % i * 20 for i in range(2000)]


async def test_many_sends_keep_their_order_per_partition(conn: Connection) -> None:
    topic = fresh()
    await conn.admin().create_topic(topic, partitions=3)
    async with conn.producer(batch_bytes=4096) as producer:
        deliveries = [producer.send(topic, b"%d" % i, key=b"%d" % (i % 5)) for i in range(5000)]
        await producer.flush()
    metas = [await d for d in deliveries]
    got = await read_all(conn, topic, 3)
    assert len(got) == 5000
    for p in range(3):
        values = [int(r.value) for r in got if r.partition == p]
        assert values == sorted(values)
        assert [m.offset for m in metas if m.partition == p] == list(range(len(values)))


async def test_bad_arguments_raise_at_once(conn: Connection) -> None:
    topic = fresh()
    await conn.admin().create_topic(topic, partitions=2, config={"max.message.bytes": "2000"})
    await conn.admin().list_topics()
    producer = conn.producer()
    with pytest.raises(InvalidPartitionsError, match="valid partitions are 0 to 1"):
        producer.send(topic, b"x", partition=2)
    with pytest.raises(RecordTooLargeError, match="max.message.bytes=2000"):
        producer.send(topic, b"x" * 5000)
    with pytest.raises(TypeError, match="bytes"):
        producer.send(topic, "text")  # type: ignore[arg-type]
    with pytest.raises(InvalidTopicError, match="internal"):
        producer.send("__consumer_offsets", b"x")
    with pytest.raises(UnknownTopicError, match="no-such"):
        await producer.send("no-such-" + fresh(), b"x")
    with pytest.raises(UnknownTopicError):
        conn.consumer(["no-such-" + fresh()])
    await producer.close()
    with pytest.raises(StoreClosedError):
        producer.send(topic, b"x")


async def test_admin_creates_describes_alters_and_deletes(conn: Connection) -> None:
    admin = conn.admin()
    topic = fresh()
    made = await admin.create_topic(topic, partitions=2, config={"retention.ms": "3600000"})
    assert len(made.partitions) == 2 and made.configs["retention.ms"] == "3600000"
    with pytest.raises(TopicExistsError):
        await admin.create_topic(topic)
    with pytest.raises(InvalidTopicError):
        await admin.create_topic("__consumer_offsets")
    assert topic in await admin.list_topics()
    assert "__consumer_offsets" not in await admin.list_topics()
    async with conn.producer() as producer:
        await producer.send(topic, b"a", partition=0, timestamp=1_000)
        await producer.send(topic, b"b", partition=0, timestamp=5_000)
    tp = TopicPartition(topic, 0)
    assert await admin.list_offsets(tp, "earliest") == 0
    assert await admin.list_offsets(tp, "latest") == 2
    assert await admin.list_offsets(tp, 2_000) == 1
    assert await admin.list_offsets(tp, 9_000) == 2
    altered = await admin.alter_topic(topic, partitions=3, config={"retention.ms": "7200000"})
    assert len(altered.partitions) == 3 and altered.configs["retention.ms"] == "7200000"
    described = await admin.describe_topic(topic)
    assert described.partitions[0].latest_offset == 2
    reset = await admin.alter_topic(topic, config={"retention.ms": None})
    assert reset.configs["retention.ms"] != "7200000"
    await admin.delete_topic(topic)
    assert topic not in await admin.list_topics()
    with pytest.raises(UnknownTopicError):
        await admin.describe_topic(topic)


async def test_a_producer_writes_to_a_topic_created_after_the_connection(
    conn: Connection, remote
) -> None:
    topic = fresh()
    async with await connect(remote.url) as other:
        await other.admin().create_topic(topic, partitions=2)
    async with conn.producer() as producer:
        meta = await producer.send(topic, b"late", key=b"k")
    assert meta.partition == partition_for_key(b"k", 2) and meta.offset == 0


async def test_positions_are_kept_on_the_broker(conn: Connection, remote) -> None:
    positions = conn.positions()
    key = f"{fresh('pipe')}/source"
    assert await positions.get(key) is None
    await positions.put(key, b"offset=10")
    await positions.put(key, b"offset=20")
    async with await connect(remote.url) as other:
        assert await other.positions().get(key) == b"offset=20"
        assert key in await other.positions().keys()
        await other.positions().put(key, None)
    assert await positions.get(key) is None


async def test_getmany_waits_for_records_that_arrive(conn: Connection) -> None:
    topic = fresh()
    await conn.admin().create_topic(topic)
    consumer = conn.consumer([topic], auto_offset_reset="latest")
    assert await consumer.getmany(timeout_ms=100) == {}

    async def later() -> None:
        await asyncio.sleep(0.2)
        async with conn.producer() as producer:
            await producer.send(topic, b"now")

    task = asyncio.ensure_future(later())
    got = await consumer.getmany(timeout_ms=5000)
    await task
    assert [r.value for rs in got.values() for r in rs] == [b"now"]
    await consumer.close()


async def test_seek_is_clamped_into_the_log(conn: Connection) -> None:
    topic = fresh()
    await conn.admin().create_topic(topic)
    async with conn.producer() as producer:
        for i in range(5):
            await producer.send(topic, b"%d" % i)
    consumer = conn.consumer()
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek(tp, 3)
    got = await consumer.getmany(timeout_ms=1000)
    assert [r.value for r in got[tp]] == [b"3", b"4"]
    consumer.seek(tp, 100)
    assert await consumer.getmany(timeout_ms=200) == {}
    assert consumer.position(tp) == 5
    await consumer.seek_to_timestamp(0, tp)
    assert consumer.position(tp) == 0
    await consumer.close()


async def test_send_batch_answers_in_the_order_given_across_partitions(conn: Connection) -> None:
    topic = fresh()
    await conn.admin().create_topic(topic, partitions=3)
    records = [Record(b"k%d" % (i % 7) if i % 3 else None, b"%d" % i) for i in range(900)]
    async with conn.producer(batch_bytes=2048) as producer:
        producer.send(topic, b"before", key=b"k1")
        metas = await producer.send_batch(topic, records)
    for record, meta in zip(records, metas, strict=True):
        if record.key is not None:
            assert meta.partition == partition_for_key(record.key, 3)
    stored = {(r.partition, r.offset): r.value for r in await read_all(conn, topic, 3)}
    assert [stored[(m.partition, m.offset)] for m in metas] == [r.value for r in records]
    assert stored[(partition_for_key(b"k1", 3), 0)] == b"before"


async def test_a_seek_after_records_were_handed_out_wins_over_the_fetch_ahead(
    conn: Connection,
) -> None:
    topic = fresh()
    await conn.admin().create_topic(topic)
    async with conn.producer() as producer:
        for i in range(10):
            await producer.send(topic, b"%d" % i)
    tp = TopicPartition(topic, 0)
    consumer = conn.consumer()
    consumer.assign([tp])
    await consumer.seek_to_beginning()
    first = await consumer.getmany(timeout_ms=2000, max_records=4)
    assert [r.value for r in first[tp]] == [b"0", b"1", b"2", b"3"]
    consumer.seek(tp, 1)  # while the next fetch may be on its way
    again = await consumer.getmany(timeout_ms=2000, max_records=3)
    assert [r.value for r in again[tp]] == [b"1", b"2", b"3"]
    values = []
    async for record in consumer:
        values.append(record.value)
        if record.value == b"9":
            break
    assert values == [b"%d" % i for i in range(4, 10)]
    await consumer.close()


async def test_partitions_added_elsewhere_are_followed(remote, monkeypatch) -> None:
    from millstream.core.client.network import NetworkConnection

    monkeypatch.setattr(NetworkConnection, "metadata_refresh_s", 0.2)
    topic = fresh()
    url = remote.url
    async with await connect(url) as conn, await connect(url) as other:
        await conn.admin().create_topic(topic, partitions=1)
        member = conn.consumer([topic], group=fresh("g"), auto_offset_reset="earliest")
        loner = conn.consumer([topic])
        producer = conn.producer()
        await producer.send(topic, b"before", key=b"key-7")
        while len(member.assignment()) != 1:
            await member.getmany(timeout_ms=100)
        await other.admin().alter_topic(topic, partitions=4)
        deadline = asyncio.get_running_loop().time() + 20
        while len(member.assignment()) != 4 or len(loner.assignment()) != 4:
            assert asyncio.get_running_loop().time() < deadline, member.assignment()
            await member.getmany(timeout_ms=100)
        meta = await producer.send(topic, b"after", key=b"key-7")
        assert meta.partition == partition_for_key(b"key-7", 4)
        await producer.close()
        await member.close()
        await loner.close()


async def test_a_topics_codec_is_kept_on_every_store_and_flush_policy_where_the_store_keeps_it(
    conn: Connection, remote
) -> None:
    # a millstream broker keeps `codec` with the topic; Apache Kafka refuses config names it
    # does not know, so there the client keeps it beside the topic (__topic_codecs): the same
    # descriptions either way, also to another connection
    admin = conn.admin()
    assert await admin.keeps_config("codec") and await admin.keeps_config("retention.ms")
    topic = fresh("codec")
    described = await admin.create_topic(topic, config={"codec": "text", "retention.ms": "60000"})
    assert described.configs["codec"] == "text" and described.configs["retention.ms"] == "60000"
    assert {"codec", "retention.ms"} <= described.overrides
    plain = await admin.create_topic(fresh("plain"))
    assert plain.configs["codec"] == "json" and "codec" not in plain.overrides

    altered = await admin.alter_topic(topic, config={"codec": "bytes"})
    assert altered.configs["codec"] == "bytes" and altered.configs["retention.ms"] == "60000"
    async with await connect(remote.url) as other:
        assert (await other.admin().describe_topic(topic)).configs["codec"] == "bytes"
    assert (await admin.alter_topic(topic, config={"codec": None})).configs["codec"] == "json"
    await admin.alter_topic(topic, config={"codec": "text"})
    # a topic deleted and made again under its name starts from the default codec
    await admin.delete_topic(topic)
    assert (await admin.create_topic(topic)).configs["codec"] == "json"
    # the codec kept beside topics is checked as a broker checks it, and nothing is made
    refused = fresh("refused")
    with pytest.raises(ConfigError, match="codec='Not A Codec' is not valid"):
        await admin.create_topic(refused, config={"codec": "Not A Codec"})
    assert refused not in await admin.list_topics()
    assert "__topic_codecs" not in await admin.list_topics()
    with pytest.raises(InvalidTopicError, match="internal"):
        await admin.create_topic("__topic_codecs")

    # flush.policy: our broker keeps it; Kafka could not honour it, so it is refused by name
    assert await admin.keeps_config("flush.policy") is not remote.is_kafka
    if remote.is_kafka:
        flush_policy = "flush.policy=never is a millstream topic config.*flush.ms"
        with pytest.raises(ConfigError, match=flush_policy):
            await admin.alter_topic(topic, config={"flush.policy": "never"})
        with pytest.raises(ConfigError, match=flush_policy):
            await admin.create_topic(fresh("flush"), config={"flush.policy": "never"})
    else:
        altered = await admin.alter_topic(topic, config={"flush.policy": "never"})
        assert altered.configs["flush.policy"] == "never"


async def test_records_sent_while_a_partition_waits_for_acks_share_batches(
    conn: Connection,
) -> None:
    # sends spread over loop turns, faster than acknowledgements come back: once a partition
    # has its requests in flight, what is sent meanwhile goes out in few batches, not in a
    # queue of one-record batches that each wait for a round trip (hundreds of ms of latency
    # at 1,000 records/s against a broker that acknowledges after an fsync)
    topic = fresh("batching")
    await conn.admin().create_topic(topic)
    async with conn.producer(linger_ms=0, acks=1, idempotence=False) as producer:
        deliveries = []
        for i in range(1000):
            deliveries.append(producer.send(topic, b"%04d" % i))
            await asyncio.sleep(0)
        metas = [await d for d in deliveries]
    assert [m.offset for m in metas] == list(range(1000))
    stored = (await conn.admin().describe_topic(topic)).partitions[0].size_bytes
    # a one-record batch takes about 70 bytes; a thousand of them would be ~70 kB
    assert stored < 20_000, f"{stored} bytes: about {stored // 70} one-record batches"


async def test_a_topic_another_client_made_first_can_be_subscribed_at_once(
    conn: Connection, remote
) -> None:
    # workers that start together each create the pipeline's topics; the ones that lose get
    # TopicExistsError and subscribe next, which must find the topic
    topic = fresh("made-elsewhere")
    async with await connect(remote.url) as late:  # it has read the metadata before
        await conn.admin().create_topic(topic)
        with pytest.raises(TopicExistsError):
            await late.admin().create_topic(topic)
        consumer = late.consumer(group=fresh("g"))
        consumer.subscribe([topic])
        await consumer.close()
