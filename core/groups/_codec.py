"""The records of ``__consumer_offsets``, byte for byte as Kafka writes them.

An offset commit is one record whose key names the place and whose value holds the offset::

    key   (version 1)   int16 version, string group, string topic, int32 partition
    value (version 1)   int16 version, int64 offset, string metadata,
                        int64 commit timestamp, int64 expire timestamp (-1: never)

Integers are big-endian; a string is an int16 length and that many UTF-8 bytes. A deleted offset
is a tombstone: the key with a null value, which compaction eventually removes. Keys of version
0 have the same layout as version 1; version 2 keys (Kafka's group metadata) are not offsets and
are skipped when reading.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from ..errors import CorruptBatchError
from ..record import TopicPartition

__all__ = ["OffsetAndMetadata", "decode_key", "decode_value", "encode_key", "encode_value"]

KEY_VERSION = 1
VALUE_VERSION = 1

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_VALUE_FIXED = struct.Struct(">hq")
_TIMES = struct.Struct(">qq")
_INT64 = struct.Struct(">q")


class OffsetAndMetadata(NamedTuple):
    """One committed offset: the next offset to read, with the committer's note and times."""

    offset: int
    metadata: str = ""
    commit_timestamp: int = -1
    expire_timestamp: int = -1


def _string(text: str) -> bytes:
    raw = text.encode()
    if len(raw) > 0x7FFF:
        raise ValueError(f"string of {len(raw)} bytes is too long for __consumer_offsets")
    return _INT16.pack(len(raw)) + raw


def _read_string(buf: bytes, pos: int) -> tuple[str, int]:
    (n,) = _INT16.unpack_from(buf, pos)
    pos += 2
    if n < 0 or pos + n > len(buf):
        raise CorruptBatchError("offset record has a string running past its end")
    return buf[pos : pos + n].decode("utf-8", "replace"), pos + n


def encode_key(group: str, tp: TopicPartition) -> bytes:
    """The record key of ``group``'s offset in ``tp``."""
    return _INT16.pack(KEY_VERSION) + _string(group) + _string(tp.topic) + _INT32.pack(tp.partition)


def decode_key(key: bytes) -> tuple[str, TopicPartition] | None:
    """``(group, partition)`` of an offset key; None for keys that are not offsets."""
    try:
        (version,) = _INT16.unpack_from(key, 0)
        if version not in (0, 1):
            return None
        group, pos = _read_string(key, 2)
        topic, pos = _read_string(key, pos)
        (partition,) = _INT32.unpack_from(key, pos)
    except struct.error:
        raise CorruptBatchError(f"offset key of {len(key)} bytes is truncated") from None
    return group, TopicPartition(topic, partition)


def encode_value(committed: OffsetAndMetadata) -> bytes:
    """The record value of one committed offset."""
    return (
        _VALUE_FIXED.pack(VALUE_VERSION, committed.offset)
        + _string(committed.metadata)
        + _TIMES.pack(committed.commit_timestamp, committed.expire_timestamp)
    )


def decode_value(value: bytes) -> OffsetAndMetadata:
    """The committed offset in a record value (versions 0 to 3, as Kafka has written them)."""
    try:
        version, offset = _VALUE_FIXED.unpack_from(value, 0)
        metadata, pos = _read_string(value, _VALUE_FIXED.size)
        if version == 1:
            commit_ts, expire_ts = _TIMES.unpack_from(value, pos)
        elif version in (0, 2):
            (commit_ts,), expire_ts = _INT64.unpack_from(value, pos), -1
        elif version == 3:  # int32 leader epoch before the metadata
            metadata, pos = _read_string(value, _VALUE_FIXED.size + 4)
            (commit_ts,), expire_ts = _INT64.unpack_from(value, pos), -1
        else:
            raise CorruptBatchError(f"offset value version {version} is unknown; valid: 0-3")
    except struct.error:
        raise CorruptBatchError(f"offset value of {len(value)} bytes is truncated") from None
    return OffsetAndMetadata(offset, metadata, commit_ts, expire_ts)
