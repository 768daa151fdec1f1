"""Committed offsets survive in __consumer_offsets, as Kafka keeps them."""

from __future__ import annotations

import logging

import pytest

from millstream.core.errors import InvalidOffsetError, ReadOnlyStoreError
from millstream.core.groups import (
    OFFSETS_TOPIC,
    OffsetAndMetadata,
    OffsetStore,
    decode_key,
    decode_value,
    offsets_partition,
)
from millstream.core.log import LogStore, encode_batch
from millstream.core.record import Record
from millstream.core.record import TopicPartition as TP


@pytest.fixture
async def data(tmp_path):
    return tmp_path / "data"


@pytest.fixture
async def store(data):
    store = LogStore.open(data)
    yield store
    await store.close()


async def test_the_offsets_topic_is_created_compacted(store):
    OffsetStore.open(store)
    topic = store.topic(OFFSETS_TOPIC)
    assert topic.config.compact
    assert topic.config.segment_bytes == 104_857_600  # Kafka's offsets.topic.segment.bytes
    assert topic.internal
    assert len(topic.partitions) == 1


async def test_commits_are_kept_across_a_restart(data):
    store = LogStore.open(data)
    offsets = OffsetStore.open(store)
    await offsets.commit("g", {TP("t", 0): 5, TP("t", 1): OffsetAndMetadata(9, "note")})
    await offsets.commit("g", {TP("t", 0): 7})
    await offsets.commit("other", {TP("u", 0): 1})
    await store.close()

    store = LogStore.open(data)
    try:
        offsets = OffsetStore.open(store)
        assert offsets.groups() == ["g", "other"]
        assert offsets.committed("g", TP("t", 0)).offset == 7
        assert offsets.committed("g", TP("t", 1)).metadata == "note"
        assert offsets.committed("g", TP("t", 1)).commit_timestamp > 0
        assert offsets.committed("g", TP("t", 2)) is None
        assert offsets.committed("nobody", TP("t", 0)) is None
        assert list(offsets.offsets("g")) == [TP("t", 0), TP("t", 1)]
    finally:
        await store.close()


async def test_each_commit_is_a_keyed_record_and_a_deletion_a_tombstone(store):
    offsets = OffsetStore.open(store)
    await offsets.commit("g", {TP("t", 0): 3})
    await offsets.delete("g")
    records = store.topic(OFFSETS_TOPIC).partitions[0].read_records(0)
    assert [decode_key(r.key) for r in records] == [("g", TP("t", 0))] * 2
    assert decode_value(records[0].value).offset == 3
    assert records[1].value is None
    assert offsets.groups() == []


async def test_deleted_offsets_stay_deleted_after_a_restart(data):
    store = LogStore.open(data)
    offsets = OffsetStore.open(store)
    await offsets.commit("g", {TP("t", 0): 3, TP("u", 0): 4})
    await offsets.forget_topic("t")
    assert offsets.committed("g", TP("t", 0)) is None
    await store.close()
    store = LogStore.open(data)
    try:
        reopened = OffsetStore.open(store)
        assert list(reopened.offsets("g")) == [TP("u", 0)]
        assert reopened.committed("g", TP("u", 0)).offset == 4
    finally:
        await store.close()


async def test_negative_offsets_are_refused(store):
    offsets = OffsetStore.open(store)
    with pytest.raises(InvalidOffsetError, match=r"offset -1 .* >= 0"):
        await offsets.commit("g", {TP("t", 0): -1})
    assert offsets.groups() == []


async def test_a_read_only_store_follows_commits_and_refuses_its_own(store, data):
    offsets = OffsetStore.open(store)
    await offsets.commit("g", {TP("t", 0): 1})
    reader_store = LogStore.open(data, read_only=True)
    try:
        reader = OffsetStore.open(reader_store)
        assert reader.committed("g", TP("t", 0)).offset == 1
        await offsets.commit("g", {TP("t", 0): 2})
        reader_store.refresh()
        reader.refresh()
        assert reader.committed("g", TP("t", 0)).offset == 2
        with pytest.raises(
            ReadOnlyStoreError, match="in use by another process.*millstream broker"
        ):
            await reader.commit("g", {TP("t", 0): 3})
    finally:
        await reader_store.close()


def test_groups_map_to_partitions_as_in_kafka():
    # Java: "hello".hashCode() == 99162322; "polygenelubricants".hashCode() == Integer.MIN_VALUE
    assert offsets_partition("hello", 50) == 99162322 % 50
    assert offsets_partition("polygenelubricants", 50) == 0
    assert offsets_partition("anything", 1) == 0


async def test_records_that_are_not_offsets_are_skipped_with_a_warning(data, caplog):
    store = LogStore.open(data)
    offsets = OffsetStore.open(store)
    await offsets.commit("g", {TP("t", 0): 1})
    partition = store.topic(OFFSETS_TOPIC).partitions[0]
    # what `millstream produce __consumer_offsets --key-separator :` once wrote, and worse
    partition.append(encode_batch([Record(b"x", b"y"), Record(None, b"v")]))
    await offsets.commit("g", {TP("t", 0): 2})
    await store.close()

    store = LogStore.open(data)
    try:
        with caplog.at_level(logging.WARNING, logger="millstream.core.groups.offsets"):
            offsets = OffsetStore.open(store)
        assert offsets.committed("g", TP("t", 0)).offset == 2
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 2
        assert "offset 1 of __consumer_offsets-0" in warnings[0]
        assert "offset key of 1 bytes is truncated" in warnings[0]
        assert "offset 2 of __consumer_offsets-0" in warnings[1]
        await offsets.commit("g", {TP("t", 0): 3})  # the store stays usable
        assert offsets.committed("g", TP("t", 0)).offset == 3
    finally:
        await store.close()


async def test_an_offsets_topic_made_before_it_had_a_segment_size_gets_one(data):
    store = LogStore.open(data)
    store.create_topic(OFFSETS_TOPIC, 1, {"cleanup.policy": "compact"})
    await store.close()
    store = LogStore.open(data)
    try:
        OffsetStore.open(store)
        assert store.topic(OFFSETS_TOPIC).config.segment_bytes == 104_857_600
    finally:
        await store.close()
