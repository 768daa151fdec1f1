"""Compression codecs of Kafka record batches: none, gzip, snappy, lz4 and zstd.

The codec number is the low three bits of a batch's attributes, as Kafka defines them. Every
codec is C-accelerated: gzip by zlib, snappy by cramjam, lz4 (frame format) by lz4, zstd by
zstandard.

Snappy comes in two shapes: librdkafka sends raw snappy blocks; the Java client frames them the
xerial way (an 8-byte magic ``\\x82SNAPPY\\x00``, two 4-byte versions, then length-prefixed
blocks). :func:`decompress` reads both; :func:`compress` writes the xerial frame, which every
client reads.

LZ4 frames are written with independent blocks: Kafka's Java client refuses a frame whose
block-independence flag is clear. gzip members and zstd frames may come several to a batch (Java's
streams read across them), so :func:`decompress` reads them all, and it refuses a truncated
stream instead of returning what it managed to decode.
"""

from __future__ import annotations

import enum
import struct
import zlib

import cramjam
import lz4.frame
import zstandard

from ..errors import ConfigError, CorruptBatchError

__all__ = ["Compression", "compress", "decompress"]


class Compression(enum.IntEnum):
    """A batch's compression codec, numbered as in Kafka's batch attributes."""

    NONE = 0
    GZIP = 1
    SNAPPY = 2
    LZ4 = 3
    ZSTD = 4

    @classmethod
    def from_name(cls, name: str) -> Compression:
        """The codec called ``name`` (``none``, ``gzip``, ``snappy``, ``lz4``, ``zstd``)."""
        try:
            return cls[name.strip().upper()]
        except KeyError:
            valid = ", ".join(c.name.lower() for c in cls)
            raise ConfigError(f"unknown compression {name!r}; valid: {valid}") from None


_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_XERIAL_HEADER = struct.Struct(">8sii")
_XERIAL_BLOCK = 32 * 1024
_U32 = struct.Struct(">I")

_zstd_compressor = zstandard.ZstdCompressor(level=3)
_zstd_decompressor = zstandard.ZstdDecompressor()


def compress(codec: Compression, data: bytes) -> bytes:
    """Compress the records section of a batch with ``codec``."""
    if codec == Compression.NONE:
        return data
    if codec == Compression.GZIP:
        co = zlib.compressobj(6, zlib.DEFLATED, 31)
        return co.compress(data) + co.flush()
    if codec == Compression.SNAPPY:
        return _xerial_compress(data)
    if codec == Compression.LZ4:
        return lz4.frame.compress(
            data, compression_level=0, block_linked=False, content_checksum=False
        )
    if codec == Compression.ZSTD:
        return _zstd_compressor.compress(data)
    raise CorruptBatchError(f"unknown compression codec {int(codec)}; valid: 0-4")


def decompress(codec: int, data: bytes | memoryview) -> bytes:
    """Decompress the records section of a batch compressed with ``codec``.

    Raises :class:`CorruptBatchError` when the bytes are not valid for the codec.
    """
    try:
        if codec == Compression.NONE:
            return bytes(data)
        if codec == Compression.GZIP:
            return _gzip_decompress(data)
        if codec == Compression.SNAPPY:
            return _snappy_decompress(bytes(data))
        if codec == Compression.LZ4:
            return lz4.frame.decompress(data)
        if codec == Compression.ZSTD:
            return _zstd_decompress(data)
    except CorruptBatchError:
        raise
    except Exception as exc:
        name = Compression(codec).name.lower()
        raise CorruptBatchError(f"records do not decompress as {name}: {exc}") from exc
    raise CorruptBatchError(f"unknown compression codec {codec}; valid: 0-4")


def _gzip_decompress(data: bytes | memoryview) -> bytes:
    out = []
    while True:
        member = zlib.decompressobj(47)  # 32 + 15: a gzip (or zlib) header, 32 KiB window
        out.append(member.decompress(data))
        if not member.eof:
            raise CorruptBatchError("gzip stream ends before its end marker")
        data = member.unused_data
        if not data:
            return b"".join(out) if len(out) > 1 else out[0]


def _zstd_decompress(data: bytes | memoryview) -> bytes:
    try:
        # The fast path: one frame that states its content size.
        return _zstd_decompressor.decompress(data, allow_extra_data=False)
    except zstandard.ZstdError:
        pass
    # Frames written in streaming mode carry no content size, and a batch may hold several.
    out = []
    while True:
        frame = _zstd_decompressor.decompressobj()
        out.append(frame.decompress(data))
        if not frame.eof:
            raise CorruptBatchError("zstd frame ends before its end marker")
        data = frame.unused_data
        if not data:
            return b"".join(out)


def _xerial_compress(data: bytes) -> bytes:
    parts = [_XERIAL_HEADER.pack(_XERIAL_MAGIC, 1, 1)]
    for start in range(0, len(data), _XERIAL_BLOCK):
        block = bytes(cramjam.snappy.compress_raw(data[start : start + _XERIAL_BLOCK]))
        parts.append(_U32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def _snappy_decompress(data: bytes) -> bytes:
    if not data.startswith(_XERIAL_MAGIC):
        return bytes(cramjam.snappy.decompress_raw(data))
    end = len(data)
    if end < _XERIAL_HEADER.size:
        raise CorruptBatchError("xerial snappy frame ends inside its header")
    out = []
    pos = _XERIAL_HEADER.size
    while pos < end:
        if pos + 4 > end:
            raise CorruptBatchError("xerial snappy frame ends inside a block length")
        (size,) = _U32.unpack_from(data, pos)
        pos += 4
        if pos + size > end:
            raise CorruptBatchError("xerial snappy block runs past the end of the batch")
        out.append(bytes(cramjam.snappy.decompress_raw(data[pos : pos + size])))
        pos += size
    return b"".join(out)
