"""Group metadata records of __consumer_offsets: Kafka's layout, read back as written."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millstream.core.broker.group_records import (
    GroupRecord,
    MemberRecord,
    decode_group_key,
    decode_group_value,
    encode_group_key,
    encode_group_value,
)
from millstream.core.errors import CorruptBatchError
from millstream.core.groups import encode_key
from millstream.core.record import TopicPartition

text = st.text(max_size=20)
members = st.builds(
    MemberRecord,
    text,
    st.none() | text,
    text,
    text,
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**31 - 1),
    st.binary(max_size=40),
    st.binary(max_size=40),
)
groups = st.builds(
    GroupRecord,
    text,
    st.integers(-1, 2**31 - 1),
    st.none() | text,
    st.none() | text,
    st.lists(members, max_size=4).map(tuple),
    st.integers(0, 2**62),
)


@given(groups)
def test_a_group_reads_back_as_written(group):
    assert decode_group_value(encode_group_value(group)) == group


def test_keys_of_groups_and_of_offsets_are_told_apart():
    assert decode_group_key(encode_group_key("billing")) == "billing"
    assert encode_group_key("billing") == b"\x00\x02\x00\x07billing"  # int16 2, string
    assert decode_group_key(encode_key("billing", TopicPartition("t", 0))) is None


def test_a_version_0_value_of_kafka_is_read():
    def s(x: bytes) -> bytes:
        return struct.pack(">h", len(x)) + x

    value = (
        struct.pack(">h", 0)
        + s(b"consumer")
        + struct.pack(">i", 4)
        + s(b"range")
        + s(b"m-1")
        + struct.pack(">i", 1)
        + s(b"m-1")
        + s(b"client")
        + s(b"/10.0.0.1")
        + struct.pack(">i", 10000)
        + struct.pack(">i", 3)
        + b"sub"
        + struct.pack(">i", 1)
        + b"A"
    )
    group = decode_group_value(value)
    assert (group.protocol_type, group.generation, group.protocol, group.leader) == (
        "consumer",
        4,
        "range",
        "m-1",
    )
    assert group.members == (
        MemberRecord("m-1", None, "client", "/10.0.0.1", 10000, 10000, b"sub", b"A"),
    )


def test_a_truncated_value_is_refused():
    with pytest.raises(CorruptBatchError):
        decode_group_value(encode_group_value(GroupRecord("consumer", 1, "range", "x"))[:-3])
