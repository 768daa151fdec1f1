"""The records of __consumer_offsets are laid out byte for byte as Kafka lays them out."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millstream.core.errors import CorruptBatchError
from millstream.core.groups import (
    OffsetAndMetadata,
    decode_key,
    decode_value,
    encode_key,
    encode_value,
)
from millstream.core.record import TopicPartition


def test_key_is_kafkas_offset_commit_key_v1():
    key = encode_key("g1", TopicPartition("orders", 3))
    assert key == b"\x00\x01" + b"\x00\x02g1" + b"\x00\x06orders" + b"\x00\x00\x00\x03"


def test_value_is_kafkas_offset_commit_value_v1():
    value = encode_value(OffsetAndMetadata(42, "m", 1_700_000_000_000, -1))
    assert value == (
        b"\x00\x01"
        + struct.pack(">q", 42)
        + b"\x00\x01m"
        + struct.pack(">q", 1_700_000_000_000)
        + struct.pack(">q", -1)
    )


def test_values_of_other_versions_kafka_wrote_are_read():
    v0 = b"\x00\x00" + struct.pack(">q", 7) + b"\x00\x00" + struct.pack(">q", 99)
    v3 = (
        b"\x00\x03"
        + struct.pack(">q", 8)
        + struct.pack(">i", 5)
        + b"\x00\x00"
        + struct.pack(">q", 100)
    )
    assert decode_value(v0) == OffsetAndMetadata(7, "", 99, -1)
    assert decode_value(v3) == OffsetAndMetadata(8, "", 100, -1)


def test_group_metadata_keys_are_not_offsets():
    assert decode_key(b"\x00\x02\x00\x01g") is None


def test_truncated_records_are_reported_as_corrupt():
    with pytest.raises(CorruptBatchError, match="truncated"):
        decode_key(encode_key("g", TopicPartition("t", 0))[:-2])
    with pytest.raises(CorruptBatchError):
        decode_value(encode_value(OffsetAndMetadata(1))[:5])


names = st.text(min_size=1, max_size=50)


@given(names, names, st.integers(0, 2**31 - 1))
def test_keys_round_trip(group, topic, partition):
    tp = TopicPartition(topic, partition)
    assert decode_key(encode_key(group, tp)) == (group, tp)


@given(
    st.integers(0, 2**63 - 1),
    st.text(max_size=100),
    st.integers(-1, 2**62),
    st.integers(-1, 2**62),
)
def test_values_round_trip(offset, metadata, committed_at, expires_at):
    value = OffsetAndMetadata(offset, metadata, committed_at, expires_at)
    assert decode_value(encode_value(value)) == value
