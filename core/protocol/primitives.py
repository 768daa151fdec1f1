"""The Kafka wire primitives: fixed-width integers, varints, strings, bytes and array lengths.

Writers append to a ``bytearray``; readers take ``(data, pos)`` and return ``(value, new_pos)``.
Every reader checks its bounds and raises :class:`~millstream.core.errors.ProtocolError` for
bytes that run out, a negative length other than the ``-1`` of null, or a count larger than the
bytes left could hold, so a lying length never makes the decoder allocate more than the frame.

Encodings (all big-endian):

- ``int8/16/32/64``, ``uint16``, ``float64``, ``bool``: fixed width (:data:`FIXED_FORMATS`);
- ``varint``/``varlong``: zig-zag then base-128, least significant group first (records);
- ``unsigned varint``: base-128 without zig-zag (compact lengths, tags);
- ``uuid``: 16 bytes;
- ``string``: int16 length then UTF-8, ``-1`` for null; compact: unsigned varint of length + 1,
  ``0`` for null;
- ``bytes``: int32 length then bytes, ``-1`` for null; compact: as compact strings;
- arrays: int32 count, ``-1`` for null; compact: unsigned varint of count + 1, ``0`` for null.
"""

from __future__ import annotations

import struct
import uuid

from ..errors import ProtocolError

__all__ = [
    "FIXED_FORMATS",
    "read_array_length",
    "read_bytes",
    "read_compact_array_length",
    "read_compact_bytes",
    "read_compact_string",
    "read_string",
    "read_unsigned_varint",
    "read_uuid",
    "read_varint",
    "read_varlong",
    "write_array_length",
    "write_bytes",
    "write_compact_array_length",
    "write_compact_bytes",
    "write_compact_string",
    "write_string",
    "write_unsigned_varint",
    "write_uuid",
    "write_varint",
    "write_varlong",
]

FIXED_FORMATS: dict[str, str] = {
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint16": "H",
    "uint32": "I",
    "float64": "d",
    "bool": "?",
}
"""Field type → :mod:`struct` format character, for the types of fixed width."""

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_NULL_INT16 = _INT16.pack(-1)
_NULL_INT32 = _INT32.pack(-1)
_ZERO_UUID = uuid.UUID(int=0)


def _truncated(what: str, pos: int, need: int, have: int) -> ProtocolError:
    return ProtocolError(
        f"truncated {what} at byte {pos}: needs {need} byte(s), only {max(have, 0)} left"
    )


# -- varints ----------------------------------------------------------------------------------


def write_unsigned_varint(buf: bytearray, value: int) -> None:
    """Append ``value`` (0 ≤ value < 2**64) as an unsigned base-128 varint."""
    if value < 0:
        raise ProtocolError(f"unsigned varint cannot hold negative value {value}")
    while value > 0x7F:
        buf.append((value & 0x7F) | 0x80)
        value >>= 7
    buf.append(value)


def read_unsigned_varint(data: bytes, pos: int, max_bytes: int = 5) -> tuple[int, int]:
    """Read an unsigned varint of at most ``max_bytes`` bytes (5 for 32 bits, 10 for 64)."""
    end = len(data)
    if pos < end:
        first = data[pos]
        if first < 0x80:
            return first, pos + 1
    value = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise ProtocolError(f"truncated varint at byte {start}")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if pos - start >= max_bytes:
            raise ProtocolError(f"varint at byte {start} is longer than {max_bytes} bytes")


def write_varint(buf: bytearray, value: int) -> None:
    """Append a signed 32-bit ``value`` zig-zag encoded."""
    write_unsigned_varint(buf, ((value << 1) ^ (value >> 31)) & 0xFFFFFFFF)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """Read a zig-zag encoded signed 32-bit varint."""
    raw, pos = read_unsigned_varint(data, pos, 5)
    return (raw >> 1) ^ -(raw & 1), pos


def write_varlong(buf: bytearray, value: int) -> None:
    """Append a signed 64-bit ``value`` zig-zag encoded."""
    write_unsigned_varint(buf, ((value << 1) ^ (value >> 63)) & 0xFFFFFFFFFFFFFFFF)


def read_varlong(data: bytes, pos: int) -> tuple[int, int]:
    """Read a zig-zag encoded signed 64-bit varint."""
    raw, pos = read_unsigned_varint(data, pos, 10)
    return (raw >> 1) ^ -(raw & 1), pos


# -- uuid -------------------------------------------------------------------------------------


def write_uuid(buf: bytearray, value: uuid.UUID) -> None:
    """Append the 16 bytes of ``value``."""
    buf += value.bytes


def read_uuid(data: bytes, pos: int) -> tuple[uuid.UUID, int]:
    """Read 16 bytes as a UUID (all zeros is Kafka's "no id")."""
    end = pos + 16
    if end > len(data):
        raise _truncated("uuid", pos, 16, len(data) - pos)
    raw = data[pos:end]
    return (_ZERO_UUID if raw == bytes(16) else uuid.UUID(bytes=bytes(raw))), end


# -- strings and bytes ------------------------------------------------------------------------


def write_string(buf: bytearray, value: str | None) -> None:
    """Append a classic string (int16 length, ``-1`` for None)."""
    if value is None:
        buf += _NULL_INT16
        return
    raw = value.encode()
    if len(raw) > 0x7FFF:
        raise ProtocolError(f"string of {len(raw)} bytes is longer than 32767")
    buf += _INT16.pack(len(raw))
    buf += raw


def read_string(data: bytes, pos: int, nullable: bool = False) -> tuple[str | None, int]:
    """Read a classic string; ``-1`` is None if ``nullable``, an error otherwise."""
    if pos + 2 > len(data):
        raise _truncated("string length", pos, 2, len(data) - pos)
    n = (data[pos] << 8) | data[pos + 1]
    if n >= 0x8000:
        n -= 0x10000
    start = pos + 2
    if n < 0:
        if n == -1 and nullable:
            return None, start
        raise ProtocolError(f"string length {n} at byte {pos} (the field is not nullable)")
    end = start + n
    if end > len(data):
        raise _truncated("string", start, n, len(data) - start)
    return _utf8(data, start, end), end


def write_compact_string(buf: bytearray, value: str | None) -> None:
    """Append a compact string (unsigned varint length + 1, ``0`` for None)."""
    if value is None:
        buf.append(0)
        return
    raw = value.encode()
    write_unsigned_varint(buf, len(raw) + 1)
    buf += raw


def read_compact_string(data: bytes, pos: int, nullable: bool = False) -> tuple[str | None, int]:
    """Read a compact string; length ``0`` is None if ``nullable``, an error otherwise."""
    n, start = read_unsigned_varint(data, pos)
    if n == 0:
        if nullable:
            return None, start
        raise ProtocolError(f"null compact string at byte {pos} (the field is not nullable)")
    end = start + n - 1
    if end > len(data):
        raise _truncated("string", start, n - 1, len(data) - start)
    return _utf8(data, start, end), end


def _utf8(data: bytes, start: int, end: int) -> str:
    try:
        return str(data[start:end], "utf-8")
    except UnicodeDecodeError as exc:
        raise ProtocolError(f"string at byte {start} is not valid UTF-8: {exc.reason}") from None


def write_bytes(buf: bytearray, value: bytes | bytearray | memoryview | None) -> None:
    """Append classic bytes (int32 length, ``-1`` for None)."""
    if value is None:
        buf += _NULL_INT32
        return
    buf += _INT32.pack(len(value))
    buf += value


def read_bytes(data: bytes, pos: int, nullable: bool = False) -> tuple[bytes | None, int]:
    """Read classic bytes; ``-1`` is None if ``nullable``, an error otherwise."""
    if pos + 4 > len(data):
        raise _truncated("bytes length", pos, 4, len(data) - pos)
    (n,) = _INT32.unpack_from(data, pos)
    start = pos + 4
    if n < 0:
        if n == -1 and nullable:
            return None, start
        raise ProtocolError(f"bytes length {n} at byte {pos} (the field is not nullable)")
    end = start + n
    if end > len(data):
        raise _truncated("bytes", start, n, len(data) - start)
    return bytes(data[start:end]), end


def write_compact_bytes(buf: bytearray, value: bytes | bytearray | memoryview | None) -> None:
    """Append compact bytes (unsigned varint length + 1, ``0`` for None)."""
    if value is None:
        buf.append(0)
        return
    write_unsigned_varint(buf, len(value) + 1)
    buf += value


def read_compact_bytes(data: bytes, pos: int, nullable: bool = False) -> tuple[bytes | None, int]:
    """Read compact bytes; length ``0`` is None if ``nullable``, an error otherwise."""
    n, start = read_unsigned_varint(data, pos)
    if n == 0:
        if nullable:
            return None, start
        raise ProtocolError(f"null compact bytes at byte {pos} (the field is not nullable)")
    end = start + n - 1
    if end > len(data):
        raise _truncated("bytes", start, n - 1, len(data) - start)
    return bytes(data[start:end]), end


# -- array lengths ----------------------------------------------------------------------------


def write_array_length(buf: bytearray, count: int | None) -> None:
    """Append a classic array count (int32, ``-1`` for a null array)."""
    buf += _NULL_INT32 if count is None else _INT32.pack(count)


def read_array_length(
    data: bytes, pos: int, nullable: bool = False, min_item_size: int = 1
) -> tuple[int | None, int]:
    """Read a classic array count and check that the bytes left can hold that many items.

    ``min_item_size`` is the fewest bytes one item takes; a count that cannot fit is an error
    at once, before anything is allocated.
    """
    if pos + 4 > len(data):
        raise _truncated("array length", pos, 4, len(data) - pos)
    (n,) = _INT32.unpack_from(data, pos)
    pos += 4
    if n < 0:
        if n == -1 and nullable:
            return None, pos
        raise ProtocolError(f"array length {n} at byte {pos - 4} (the field is not nullable)")
    _check_count(n, data, pos, min_item_size)
    return n, pos


def write_compact_array_length(buf: bytearray, count: int | None) -> None:
    """Append a compact array count (unsigned varint count + 1, ``0`` for null)."""
    if count is None:
        buf.append(0)
    else:
        write_unsigned_varint(buf, count + 1)


def read_compact_array_length(
    data: bytes, pos: int, nullable: bool = False, min_item_size: int = 1
) -> tuple[int | None, int]:
    """Read a compact array count, checked like :func:`read_array_length`."""
    start = pos
    n, pos = read_unsigned_varint(data, pos)
    if n == 0:
        if nullable:
            return None, pos
        raise ProtocolError(f"null compact array at byte {start} (the field is not nullable)")
    n -= 1
    _check_count(n, data, pos, min_item_size)
    return n, pos


def _check_count(n: int, data: bytes, pos: int, min_item_size: int) -> None:
    left = len(data) - pos
    if n * min_item_size > left:
        raise ProtocolError(
            f"array of {n} item(s) at byte {pos} cannot fit in the {left} byte(s) left"
        )
