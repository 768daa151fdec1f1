"""Codecs: values to bytes and back, bad input refused with a reason, batches like singles."""

from __future__ import annotations

import pytest

from millstream.core.codecs import BytesCodec, JsonCodec, TextCodec
from millstream.core.errors import CodecError


def test_json_round_trips_and_names_what_is_wrong() -> None:
    codec = JsonCodec()
    value = {"device": "d1", "temp": 21.5, "tags": ["a"], "ok": True, "none": None}
    assert codec.decode(codec.encode(value)) == value
    assert codec.encode(b'{"raw": 1}') == b'{"raw": 1}'  # bytes are taken as encoded already
    with pytest.raises(CodecError, match="not valid JSON"):
        codec.decode(b"{nope")
    with pytest.raises(CodecError, match="cannot be written as JSON"):
        codec.encode({"when": object()})


def test_json_batches_give_what_single_calls_give() -> None:
    codec = JsonCodec()
    assert codec.decode_many([b"1", b'"a"', b"[2]"]) == [1, "a", [2]]
    assert codec.encode_many([1, b"2", {"a": 3}]) == [b"1", b"2", b'{"a":3}']
    with pytest.raises(CodecError, match="not valid JSON"):
        codec.decode_many([b"1", b"{bad", b"3"])


def test_text_and_bytes() -> None:
    assert TextCodec().decode("héllo".encode()) == "héllo"
    assert TextCodec().encode(42) == b"42"
    with pytest.raises(CodecError, match="UTF-8"):
        TextCodec().decode(b"\xff\xfe")
    assert BytesCodec().decode(b"\x00\x01") == b"\x00\x01"
    assert BytesCodec().encode("abc") == b"abc"
    with pytest.raises(CodecError, match="only bytes or text"):
        BytesCodec().encode({"a": 1})
