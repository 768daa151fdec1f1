"""The embedded admin: topics, offsets and consumer groups."""

from __future__ import annotations

import pytest

from millstream.core.errors import (
    ConfigError,
    InvalidOffsetError,
    InvalidPartitionsError,
    InvalidTopicError,
    StoreClosedError,
    StoreError,
    TopicExistsError,
    UnknownGroupError,
    UnknownTopicError,
)
from millstream.core.record import TopicPartition as TP


async def produce(conn, topic, n, *, partition=0, timestamp=None):
    async with conn.producer() as producer:
        for i in range(n):
            producer.send(topic, b"%d" % i, partition=partition, timestamp=timestamp)


async def test_create_describe_alter_delete(conn):
    admin = conn.admin()
    created = await admin.create_topic("t", 2, config={"retention.ms": "1000"})
    assert created.name == "t"
    assert [p.partition for p in created.partitions] == [0, 1]
    assert created.configs["retention.ms"] == "1000"
    assert created.configs["cleanup.policy"] == "delete"  # defaults are listed too
    assert created.replication_factor == 1
    await produce(conn, "t", 5)
    described = await admin.describe_topic("t")
    first = described.partitions[0]
    assert (first.earliest_offset, first.latest_offset, first.segments) == (0, 5, 1)
    assert first.size_bytes > 0
    altered = await admin.alter_topic("t", partitions=3, config={"retention.ms": None})
    assert len(altered.partitions) == 3
    assert altered.configs["retention.ms"] == "604800000"
    assert await admin.list_topics() == ["t"]
    assert "__consumer_offsets" in await admin.list_topics(internal=True)
    await admin.delete_topic("t")
    assert await admin.list_topics() == []
    with pytest.raises(UnknownTopicError, match="unknown topic 't'"):
        await admin.describe_topic("t")


async def test_topic_errors_say_what_is_valid(conn):
    admin = conn.admin()
    await admin.create_topic("t", 2)
    with pytest.raises(TopicExistsError, match="'t' already exists"):
        await admin.create_topic("t")
    with pytest.raises(InvalidPartitionsError, match="only grow"):
        await admin.alter_topic("t", partitions=1)
    with pytest.raises(ConfigError, match="unknown topic config"):
        await admin.create_topic("u", config={"retention.mss": "1"})
    with pytest.raises(StoreError, match="internal"):
        await admin.delete_topic("__consumer_offsets")


async def test_replication_is_refused_with_a_pointer_to_the_broker(conn):
    with pytest.raises(ConfigError, match=r"replication factor 3 .*embedded.*millstream broker"):
        await conn.admin().create_topic("t", 1, replication_factor=3)
    with pytest.raises(ConfigError, match="replication factor 0"):
        await conn.admin().create_topic("t", 1, replication_factor=0)
    assert await conn.admin().list_topics() == []


async def test_list_offsets(conn):
    admin = conn.admin()
    await admin.create_topic("t", 1)
    await produce(conn, "t", 4, timestamp=1_000)
    await produce(conn, "t", 4, timestamp=2_000)
    tp = TP("t", 0)
    assert await admin.list_offsets(tp, "earliest") == 0
    assert await admin.list_offsets(tp, "latest") == 8
    assert await admin.list_offsets(tp, 1_500) == 4
    assert await admin.list_offsets(tp, 5_000) == 8
    with pytest.raises(InvalidOffsetError, match="'earliest', 'latest' or a timestamp"):
        await admin.list_offsets(tp, "soon")
    with pytest.raises(InvalidPartitionsError, match="valid partitions are 0 to 0"):
        await admin.list_offsets(TP("t", 1), "latest")


async def test_groups_are_listed_and_described_with_lag(conn):
    admin = conn.admin()
    await admin.create_topic("t", 2)
    await produce(conn, "t", 10, partition=0)
    await produce(conn, "t", 4, partition=1)
    consumer = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
    await consumer.commit({TP("t", 0): 6})
    assert await admin.list_groups() == ["g"]
    described = await admin.describe_group("g")
    assert described.state in ("CompletingRebalance", "Stable")
    assert len(described.members) == 1
    assert set(described.members[0].assignment) == {TP("t", 0), TP("t", 1)}
    lags = {
        (o.topic, o.partition): (o.committed, o.latest_offset, o.lag) for o in described.offsets
    }
    assert lags == {("t", 0): (6, 10, 4), ("t", 1): (None, 4, None)}
    await consumer.getmany(timeout_ms=100)
    assert (await admin.describe_group("g")).state == "Stable"
    await consumer.close()
    described = await admin.describe_group("g")
    assert (described.state, described.members) == ("Empty", ())
    assert [(o.partition, o.lag) for o in described.offsets] == [(0, 4)]
    with pytest.raises(UnknownGroupError, match="unknown consumer group 'nope'; known groups: g"):
        await admin.describe_group("nope")


async def test_reset_group_offsets(conn):
    admin = conn.admin()
    await admin.create_topic("t", 2)
    await produce(conn, "t", 5, partition=0, timestamp=1_000)
    await produce(conn, "t", 5, partition=0, timestamp=2_000)
    await produce(conn, "t", 3, partition=1, timestamp=3_000)
    assert await admin.reset_group_offsets("g", "t", "latest") == {TP("t", 0): 10, TP("t", 1): 3}
    assert await admin.reset_group_offsets("g", "t", "earliest") == {TP("t", 0): 0, TP("t", 1): 0}
    assert await admin.reset_group_offsets("g", "t", 7) == {TP("t", 0): 7, TP("t", 1): 3}
    assert await admin.reset_group_offsets("g", "t", 1_500, by_timestamp=True) == {
        TP("t", 0): 5,
        TP("t", 1): 0,
    }
    with pytest.raises(InvalidOffsetError, match="'earliest', 'latest' or an offset"):
        await admin.reset_group_offsets("g", "t", -3)
    # a consumer of the group starts where the reset put it
    consumer = conn.consumer(["t"], group="g")
    batches = await consumer.getmany(timeout_ms=100)
    assert [r.offset for r in batches[TP("t", 0)]] == [5, 6, 7, 8, 9]
    with pytest.raises(StoreError, match="1 live member.*stop its consumers first"):
        await admin.reset_group_offsets("g", "t", "earliest")
    with pytest.raises(StoreError, match="live member"):
        await admin.delete_group("g")
    await consumer.close()
    await admin.delete_group("g")
    assert await admin.list_groups() == []
    with pytest.raises(UnknownGroupError):
        await admin.delete_group("g")


async def test_deleting_a_topic_forgets_its_offsets(conn):
    admin = conn.admin()
    await admin.create_topic("t", 1)
    await admin.create_topic("u", 1)
    await admin.reset_group_offsets("g", "t", "latest")
    await admin.reset_group_offsets("g", "u", "latest")
    await admin.delete_topic("t")
    await admin.create_topic("t", 1)
    assert [o.topic for o in (await admin.describe_group("g")).offsets] == ["u"]


async def test_a_closed_admin_refuses(conn):
    admin = conn.admin()
    async with admin:
        pass
    with pytest.raises(StoreClosedError):
        await admin.list_topics()


async def test_internal_topics_cannot_be_created_altered_or_deleted(conn):
    admin = conn.admin()
    before = await admin.describe_topic("__consumer_offsets")
    internal = "topic '__consumer_offsets' is internal to the store; clients cannot"
    with pytest.raises(InvalidTopicError, match=f"{internal} alter it"):
        await admin.alter_topic(
            "__consumer_offsets", config={"cleanup.policy": "delete", "retention.ms": "1"}
        )
    with pytest.raises(InvalidTopicError, match=f"{internal} alter it"):
        await admin.alter_topic("__consumer_offsets", partitions=4)
    with pytest.raises(InvalidTopicError, match=f"{internal} create it"):
        await admin.create_topic("__consumer_offsets")
    with pytest.raises(InvalidTopicError, match=f"{internal} delete it"):
        await admin.delete_topic("__consumer_offsets")
    with pytest.raises(InvalidTopicError, match="'__source_positions' is internal.*create it"):
        await admin.create_topic("__source_positions", config={"cleanup.policy": "delete"})
    assert await admin.describe_topic("__consumer_offsets") == before
    assert "__source_positions" not in await admin.list_topics(internal=True)
    # other names that start with "__" are ordinary topics
    await admin.create_topic("__mine")
    assert await admin.list_topics() == ["__mine"]
    await admin.alter_topic("__mine", config={"retention.ms": "1000"})
    await admin.delete_topic("__mine")
