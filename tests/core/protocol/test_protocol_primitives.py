"""The wire primitives against known encodings, and their refusals."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from millstream.core.errors import ProtocolError
from millstream.core.protocol import primitives as p


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        (0, b"\x00"),
        (-1, b"\x01"),
        (1, b"\x02"),
        (-64, b"\x7f"),
        (64, b"\x80\x01"),
        (300, b"\xd8\x04"),
        (2**31 - 1, b"\xfe\xff\xff\xff\x0f"),
        (-(2**31), b"\xff\xff\xff\xff\x0f"),
    ],
)
def test_varint_matches_kafka_zigzag(value: int, encoded: bytes) -> None:
    buf = bytearray()
    p.write_varint(buf, value)
    assert bytes(buf) == encoded
    assert p.read_varint(encoded, 0) == (value, len(encoded))


@given(st.integers(-(2**63), 2**63 - 1))
def test_varlong_round_trip(value: int) -> None:
    buf = bytearray()
    p.write_varlong(buf, value)
    assert len(buf) <= 10
    assert p.read_varlong(bytes(buf), 0) == (value, len(buf))


@given(st.integers(0, 2**32 - 1))
def test_unsigned_varint_round_trip(value: int) -> None:
    buf = bytearray()
    p.write_unsigned_varint(buf, value)
    assert p.read_unsigned_varint(bytes(buf), 0) == (value, len(buf))


def test_endless_varint_is_refused_after_five_bytes() -> None:
    with pytest.raises(ProtocolError, match="longer than 5 bytes"):
        p.read_unsigned_varint(b"\xff" * 100, 0)
    with pytest.raises(ProtocolError, match="truncated varint"):
        p.read_unsigned_varint(b"\x80\x80", 0)


def test_strings_classic_and_compact() -> None:
    buf = bytearray()
    p.write_string(buf, "héllo")
    p.write_string(buf, None)
    p.write_compact_string(buf, "héllo")
    p.write_compact_string(buf, None)
    p.write_compact_string(buf, "")
    assert bytes(buf) == b"\x00\x06h\xc3\xa9llo\xff\xff\x07h\xc3\xa9llo\x00\x01"
    data = bytes(buf)
    value, pos = p.read_string(data, 0)
    assert value == "héllo"
    assert p.read_string(data, pos, nullable=True) == (None, pos + 2)
    value, pos = p.read_compact_string(data, pos + 2)
    assert value == "héllo"
    assert p.read_compact_string(data, pos, nullable=True) == (None, pos + 1)
    assert p.read_compact_string(data, pos + 1) == ("", len(data))


def test_null_where_not_nullable_is_refused() -> None:
    with pytest.raises(ProtocolError, match="not nullable"):
        p.read_string(b"\xff\xff", 0)
    with pytest.raises(ProtocolError, match="not nullable"):
        p.read_compact_bytes(b"\x00", 0)
    with pytest.raises(ProtocolError, match="not nullable"):
        p.read_array_length(b"\xff\xff\xff\xff", 0)


def test_negative_lengths_other_than_null_are_refused() -> None:
    with pytest.raises(ProtocolError, match="length -2"):
        p.read_string(b"\xff\xfe", 0, nullable=True)
    with pytest.raises(ProtocolError, match="length -5"):
        p.read_bytes(b"\xff\xff\xff\xfb", 0, nullable=True)
    with pytest.raises(ProtocolError, match="length -2147483648"):
        p.read_array_length(b"\x80\x00\x00\x00", 0, nullable=True)


def test_lengths_past_the_end_are_refused() -> None:
    with pytest.raises(ProtocolError, match="truncated string"):
        p.read_string(b"\x00\x05abc", 0)
    with pytest.raises(ProtocolError, match="truncated bytes"):
        p.read_bytes(b"\x7f\xff\xff\xff" + b"x" * 10, 0)
    with pytest.raises(ProtocolError, match="truncated bytes"):
        p.read_compact_bytes(b"\xff\xff\xff\xff\x07", 0)


def test_array_count_larger_than_the_bytes_left_is_refused_before_allocating() -> None:
    with pytest.raises(ProtocolError, match="cannot fit"):
        p.read_array_length(b"\x7f\xff\xff\xff" + b"\x00" * 8, 0, min_item_size=4)
    with pytest.raises(ProtocolError, match="cannot fit"):
        p.read_compact_array_length(b"\xff\xff\xff\xff\x07", 0)


def test_invalid_utf8_is_refused() -> None:
    with pytest.raises(ProtocolError, match="UTF-8"):
        p.read_string(b"\x00\x02\xff\xfe", 0)


def test_uuid_round_trip_and_zero() -> None:
    import uuid

    u = uuid.uuid4()
    buf = bytearray()
    p.write_uuid(buf, u)
    assert p.read_uuid(bytes(buf), 0) == (u, 16)
    assert p.read_uuid(bytes(16), 0) == (uuid.UUID(int=0), 16)
    with pytest.raises(ProtocolError, match="truncated uuid"):
        p.read_uuid(bytes(15), 0)
