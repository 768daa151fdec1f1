"""Size-prefixed frames: every request and response is an int32 length and that many bytes.

:func:`frame_size` checks a length prefix before anything is read or allocated, so a lying
prefix (negative, or larger than the limit) is refused at once; :func:`read_frame` reads one
whole frame from an asyncio stream; :func:`split_frames` cuts complete frames off a buffer.
"""

from __future__ import annotations

import asyncio
import struct

from ..errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_FRAME_SIZE",
    "frame",
    "frame_size",
    "read_frame",
    "split_frames",
]

DEFAULT_MAX_FRAME_SIZE = 100 * 1024 * 1024
"""The largest frame accepted unless told otherwise (Kafka's ``socket.request.max.bytes``)."""

_SIZE = struct.Struct(">i")


def frame(payload: bytes | bytearray | memoryview) -> bytes:
    """``payload`` with its int32 size prefix."""
    return _SIZE.pack(len(payload)) + bytes(payload)


def frame_size(
    prefix: bytes | bytearray | memoryview, max_size: int = DEFAULT_MAX_FRAME_SIZE
) -> int:
    """The size announced by a 4-byte ``prefix``; negative or above ``max_size`` is refused."""
    if len(prefix) != 4:
        raise ProtocolError(f"a frame size prefix is 4 bytes, got {len(prefix)}")
    (size,) = _SIZE.unpack(prefix)
    if size < 0:
        raise ProtocolError(f"negative frame size {size}")
    if size > max_size:
        raise ProtocolError(f"frame of {size} bytes is larger than the limit of {max_size} bytes")
    return size


async def read_frame(
    reader: asyncio.StreamReader, max_size: int = DEFAULT_MAX_FRAME_SIZE
) -> bytes | None:
    """The next frame's payload, or None at a clean end of stream (before any prefix byte).

    A stream that ends inside a frame raises :class:`ProtocolError`, as does a bad prefix.
    """
    try:
        prefix = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise ProtocolError(
            f"stream ended inside a frame size prefix ({len(exc.partial)} of 4 bytes)"
        ) from None
    size = frame_size(prefix, max_size)
    try:
        return await reader.readexactly(size)
    except asyncio.IncompleteReadError as exc:
        raise ProtocolError(
            f"stream ended inside a frame: {len(exc.partial)} of {size} bytes"
        ) from None


def split_frames(
    buffer: bytes | bytearray, max_size: int = DEFAULT_MAX_FRAME_SIZE
) -> tuple[list[bytes], int]:
    """The complete frames at the start of ``buffer`` and how many bytes they took.

    The bytes after them (an incomplete frame, if any) are the caller's to keep.
    """
    frames = []
    pos = 0
    end = len(buffer)
    while end - pos >= 4:
        size = frame_size(buffer[pos : pos + 4], max_size)
        if end - pos - 4 < size:
            break
        frames.append(bytes(buffer[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    return frames, pos
