"""Request and response headers.

::

    request header v0   api_key int16, api_version int16, correlation_id int32
    request header v1   v0 + client_id (nullable string, int16 length)
    request header v2   v1 + tagged fields; client_id keeps its int16 length even here
    response header v0  correlation_id int32
    response header v1  v0 + tagged fields

A request in a flexible version carries header v2, any other v1 (v0 is used by no API served
here, but decodes). A response in a flexible version carries header v1, any other v0; an
ApiVersions response always carries v0, because a client reads it before it knows what the
broker speaks.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..errors import ProtocolError
from . import primitives as prim

__all__ = [
    "RequestHeader",
    "ResponseHeader",
    "decode_request_header",
    "decode_response_header",
    "encode_request_header",
    "encode_response_header",
    "skip_tagged_fields",
]

_FIXED = struct.Struct(">hhi")
_CORRELATION = struct.Struct(">i")


@dataclass(slots=True)
class RequestHeader:
    """What precedes every request body."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None = None


@dataclass(slots=True)
class ResponseHeader:
    """What precedes every response body."""

    correlation_id: int


def encode_request_header(buf: bytearray, header: RequestHeader, version: int) -> None:
    """Append ``header`` in header ``version`` (0, 1 or 2)."""
    try:
        buf += _FIXED.pack(header.api_key, header.api_version, header.correlation_id)
    except struct.error as exc:
        raise ProtocolError(f"cannot encode request header {header}: {exc}") from None
    if version >= 1:
        prim.write_string(buf, header.client_id)
    if version >= 2:
        buf.append(0)  # no tagged fields


def decode_request_header(frame: bytes, flexible: bool | None = None) -> tuple[RequestHeader, int]:
    """Read a request header (v1, or v2 when ``flexible``) at the start of ``frame``.

    Returns the header and the position of the body. With ``flexible=None`` only the fields
    common to v1 and v2 are read and the position is after the client id: enough to answer a
    request whose version is unknown.
    """
    if len(frame) < _FIXED.size:
        raise ProtocolError(
            f"truncated request header: {len(frame)} byte(s), needs at least {_FIXED.size}"
        )
    api_key, api_version, correlation_id = _FIXED.unpack_from(frame, 0)
    try:
        client_id, pos = prim.read_string(frame, _FIXED.size, nullable=True)
        if flexible:
            pos = skip_tagged_fields(frame, pos)
    except ProtocolError as exc:
        raise ProtocolError(f"malformed request header: {exc}") from None
    return RequestHeader(api_key, api_version, correlation_id, client_id), pos


def encode_response_header(buf: bytearray, correlation_id: int, version: int) -> None:
    """Append a response header in ``version`` (0 or 1)."""
    buf += _CORRELATION.pack(correlation_id)
    if version >= 1:
        buf.append(0)


def decode_response_header(frame: bytes, version: int) -> tuple[ResponseHeader, int]:
    """Read a response header in ``version`` (0 or 1); returns it and the body's position."""
    if len(frame) < 4:
        raise ProtocolError(f"truncated response header: {len(frame)} byte(s), needs 4")
    (correlation_id,) = _CORRELATION.unpack_from(frame, 0)
    pos = 4
    if version >= 1:
        try:
            pos = skip_tagged_fields(frame, pos)
        except ProtocolError as exc:
            raise ProtocolError(f"malformed response header: {exc}") from None
    return ResponseHeader(correlation_id), pos


def skip_tagged_fields(frame: bytes, pos: int) -> int:
    """The position after the (ignored) tagged fields of a header that start at ``pos``."""
    count, pos = prim.read_unsigned_varint(frame, pos)
    for _ in range(count):
        _tag, pos = prim.read_unsigned_varint(frame, pos)
        size, pos = prim.read_unsigned_varint(frame, pos)
        pos += size
        if pos > len(frame):
            raise ProtocolError(
                f"header tagged field runs past the end of the frame ({len(frame)} bytes)"
            )
    return pos
