"""Hostile bytes: every malformed frame is a ProtocolError with a clear message, found quickly,
without reading past the frame or allocating what a lying length asks for."""

from __future__ import annotations

import asyncio
import contextlib
import struct
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from millstream.core.errors import ProtocolError
from millstream.core.protocol import (
    ApiKey,
    RequestHeader,
    api_versions_fallback,
    decode_request,
    decode_request_header,
    decode_response,
    encode_request,
    encode_response,
    frame_size,
    read_frame,
    request_class,
    response_class,
    split_frames,
)


def _header(api_key: int, version: int, client_id: bytes = b"\x00\x01c") -> bytes:
    return struct.pack(">hhi", api_key, version, 1) + client_id


def test_short_and_empty_frames() -> None:
    for frame in (b"", b"\x00", b"\x00\x03\x00\x01\x00\x00"):
        with pytest.raises(ProtocolError, match="truncated request header"):
            decode_request(frame)


def test_unknown_api_key_and_version_are_named() -> None:
    with pytest.raises(ProtocolError, match="unknown API key 99; known: 0, 1, 2"):
        decode_request(_header(99, 0))
    with pytest.raises(ProtocolError, match="unsupported Metadata version 42; supported: 0-8"):
        decode_request(_header(ApiKey.METADATA, 42) + b"\x00\x00\x00\x00")


def test_unknown_api_versions_version_still_yields_a_header_for_the_fallback() -> None:
    frame = _header(ApiKey.API_VERSIONS, 9) + b"\x00" + b"future body \xff\xff"
    with pytest.raises(ProtocolError, match="unsupported ApiVersions version 9"):
        decode_request(frame)
    header, _ = decode_request_header(frame)
    assert (header.api_key, header.api_version, header.correlation_id) == (18, 9, 1)
    assert api_versions_fallback(header)[8:10] == b"\x00\x23"


def test_truncated_body_names_the_message_and_field() -> None:
    body = struct.pack(">hi", 1, 1000)  # acks and timeout, then nothing
    with pytest.raises(ProtocolError, match=r"malformed Produce v3 request: truncated"):
        decode_request(_header(ApiKey.PRODUCE, 3) + b"\xff\xff" + body)


def test_negative_lengths_are_refused() -> None:
    # Metadata v0: topics is not nullable
    with pytest.raises(ProtocolError, match="array length -1 .* not nullable"):
        decode_request(_header(ApiKey.METADATA, 0) + b"\xff\xff\xff\xff")
    # Metadata v1: a topic name of length -7
    with pytest.raises(ProtocolError, match="string length -7"):
        decode_request(_header(ApiKey.METADATA, 1) + b"\x00\x00\x00\x01\xff\xf9")
    # a client id of length -3
    with pytest.raises(ProtocolError, match="malformed request header: string length -3"):
        decode_request(_header(ApiKey.METADATA, 1, client_id=b"\xff\xfd"))


def test_huge_counts_fail_at_once_without_allocating() -> None:
    started = time.perf_counter()
    # Metadata v1 with 2**31-1 topics in 8 bytes
    with pytest.raises(ProtocolError, match="array of 2147483647 item"):
        decode_request(_header(ApiKey.METADATA, 1) + b"\x7f\xff\xff\xff" + b"\x00" * 8)
    # Metadata v8 response, a partition claiming 2**30 replica ids
    response = response_class(ApiKey.METADATA)
    body = bytearray(
        encode_response(
            RequestHeader(ApiKey.METADATA, 8, 1),
            response(
                topics=[
                    response.Topics(
                        name="t", partitions=[response.Topics.Partitions(replica_nodes=[1])]
                    )
                ]
            ),
        )[4:]
    )
    at = body.index(b"\x00\x00\x00\x01\x00\x00\x00\x01")  # replica_nodes: count 1, id 1
    body[at : at + 4] = (2**30).to_bytes(4, "big")
    with pytest.raises(ProtocolError, match="array of 1073741824 item"):
        decode_response(ApiKey.METADATA, 8, bytes(body))
    # Produce v3 whose record set claims 2 GiB
    with pytest.raises(ProtocolError, match="truncated bytes"):
        decode_request(
            _header(ApiKey.PRODUCE, 3)
            + b"\xff\xff\x00\x01\x00\x00\x03\xe8"
            + b"\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x01\x00\x00\x00\x00\x7f\xff\xff\xff"
        )
    assert time.perf_counter() - started < 0.5


def test_bytes_left_over_are_refused() -> None:
    frame = encode_request(
        RequestHeader(ApiKey.HEARTBEAT, 0, 1, "c"), request_class(ApiKey.HEARTBEAT)()
    )
    with pytest.raises(ProtocolError, match="2 unexpected byte"):
        decode_request(frame[4:] + b"\x00\x00")


def test_flexible_tagged_field_running_past_the_frame() -> None:
    # ApiVersions v3 request: header v2 with a tagged field claiming 100 bytes
    frame = _header(ApiKey.API_VERSIONS, 3) + b"\x01\x00\x64abc"
    with pytest.raises(ProtocolError, match="tagged field runs past"):
        decode_request(frame)
    # and in the body: names, then one tag of 50 bytes
    frame = _header(ApiKey.API_VERSIONS, 3) + b"\x00\x02a\x02b\x01\x05\x32xyz"
    with pytest.raises(ProtocolError, match="malformed ApiVersions v3 request: truncated"):
        decode_request(frame)


def test_encoding_bad_values_names_the_field() -> None:
    heartbeat = request_class(ApiKey.HEARTBEAT)
    with pytest.raises(ProtocolError, match=r"HeartbeatRequest.group_id is null"):
        encode_request(RequestHeader(ApiKey.HEARTBEAT, 0, 1), heartbeat(group_id=None))
    with pytest.raises(ProtocolError, match="cannot encode Heartbeat v0 request"):
        encode_request(RequestHeader(ApiKey.HEARTBEAT, 0, 1), heartbeat(generation_id=2**40))


def test_frame_size_refuses_lies() -> None:
    assert frame_size(b"\x00\x00\x01\x00") == 256
    with pytest.raises(ProtocolError, match="negative frame size -1"):
        frame_size(b"\xff\xff\xff\xff")
    with pytest.raises(ProtocolError, match="larger than the limit of 1024 bytes"):
        frame_size(b"\x00\x10\x00\x00", max_size=1024)


async def test_read_frame_stops_at_a_lying_prefix_and_a_cut_stream() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"\x00\x00\x00\x03abc\x7f\xff\xff\xff")
    reader.feed_eof()
    assert await read_frame(reader) == b"abc"
    with pytest.raises(ProtocolError, match="larger than the limit"):
        await read_frame(reader)

    reader = asyncio.StreamReader()
    reader.feed_data(b"\x00\x00\x00\x10abc")
    reader.feed_eof()
    with pytest.raises(ProtocolError, match="stream ended inside a frame: 3 of 16 bytes"):
        await read_frame(reader)

    reader = asyncio.StreamReader()
    reader.feed_eof()
    assert await read_frame(reader) is None


def test_split_frames_keeps_the_incomplete_tail() -> None:
    data = b"\x00\x00\x00\x01a\x00\x00\x00\x02bc\x00\x00\x00\x05xy"
    frames, used = split_frames(data)
    assert frames == [b"a", b"bc"]
    assert data[used:] == b"\x00\x00\x00\x05xy"


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64), st.sampled_from(sorted(ApiKey)), st.integers(-1, 12))
def test_garbage_bodies_raise_only_protocol_errors(body: bytes, api_key: int, version: int) -> None:
    with contextlib.suppress(ProtocolError):
        decode_request(_header(api_key, version) + body)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_corrupted_valid_frames_raise_only_protocol_errors(data: st.DataObject) -> None:
    response = response_class(ApiKey.METADATA)
    message = response(
        brokers=[response.Brokers(node_id=1, host="h", port=9092)],
        topics=[
            response.Topics(name="t", partitions=[response.Topics.Partitions(replica_nodes=[1, 2])])
        ],
    )
    version = data.draw(st.integers(0, 8))
    frame = bytearray(encode_response(RequestHeader(ApiKey.METADATA, version, 1), message)[4:])
    for _ in range(data.draw(st.integers(1, 4))):
        frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    with contextlib.suppress(ProtocolError):
        decode_response(ApiKey.METADATA, version, bytes(frame))
