"""Group metadata records of ``__consumer_offsets``, laid out as Kafka writes them.

Beside committed offsets, the topic holds one record per group saying who its members are, so that
a restarted broker knows its groups and their members carry on without a rebalance::

    key   (version 2)   int16 version, string group
    value (version 3)   int16 version, string protocol_type, int32 generation,
                        nullable string protocol, nullable string leader, int64 state timestamp,
                        array of members: string member_id, nullable string group_instance_id,
                        string client_id, string client_host, int32 rebalance_timeout,
                        int32 session_timeout, bytes subscription, bytes assignment

A deleted group is a tombstone (the key with a null value). Strings have an int16 length, bytes
and arrays an int32 length; -1 is null. :class:`~millstream.core.groups.OffsetStore` skips these
keys, so both kinds of record share the topic and its partitioning.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field

from ..errors import CorruptBatchError

__all__ = [
    "GroupRecord",
    "MemberRecord",
    "decode_group_key",
    "decode_group_value",
    "encode_group_key",
    "encode_group_value",
]

GROUP_KEY_VERSION = 2
GROUP_VALUE_VERSION = 3

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")
_INT64 = struct.Struct(">q")


@dataclass(frozen=True)
class MemberRecord:
    """One member of a stored group; ``subscription`` is its metadata for the group's protocol."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupRecord:
    """A group as stored: its generation, protocol, leader and members."""

    protocol_type: str
    generation: int
    protocol: str | None
    leader: str | None
    members: tuple[MemberRecord, ...] = field(default=())
    timestamp_ms: int = -1


def _string(text: str | None) -> bytes:
    if text is None:
        return _INT16.pack(-1)
    raw = text.encode()
    return _INT16.pack(len(raw)) + raw


def _bytes(data: bytes) -> bytes:
    return _INT32.pack(len(data)) + data


class _Reader:
    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.buf):
            raise CorruptBatchError("group record runs past its end")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out

    def int16(self) -> int:
        return int(_INT16.unpack(self._take(2))[0])

    def int32(self) -> int:
        return int(_INT32.unpack(self._take(4))[0])

    def int64(self) -> int:
        return int(_INT64.unpack(self._take(8))[0])

    def string(self) -> str | None:
        n = self.int16()
        return None if n < 0 else self._take(n).decode("utf-8", "replace")

    def bytes_(self) -> bytes:
        n = self.int32()
        return b"" if n < 0 else bytes(self._take(n))


def encode_group_key(group: str) -> bytes:
    """The record key of ``group``'s metadata."""
    return _INT16.pack(GROUP_KEY_VERSION) + _string(group)


def decode_group_key(key: bytes) -> str | None:
    """The group of a group-metadata key; None for any other key (offsets, for one)."""
    if len(key) < 2 or _INT16.unpack_from(key, 0)[0] != GROUP_KEY_VERSION:
        return None
    reader = _Reader(key)
    reader.pos = 2
    return reader.string() or ""


def encode_group_value(group: GroupRecord) -> bytes:
    """The record value of ``group``."""
    timestamp = group.timestamp_ms if group.timestamp_ms >= 0 else int(time.time() * 1000)
    parts = [
        _INT16.pack(GROUP_VALUE_VERSION),
        _string(group.protocol_type),
        _INT32.pack(group.generation),
        _string(group.protocol),
        _string(group.leader),
        _INT64.pack(timestamp),
        _INT32.pack(len(group.members)),
    ]
    for m in group.members:
        parts += [
            _string(m.member_id),
            _string(m.group_instance_id),
            _string(m.client_id),
            _string(m.client_host),
            _INT32.pack(m.rebalance_timeout_ms),
            _INT32.pack(m.session_timeout_ms),
            _bytes(m.subscription),
            _bytes(m.assignment),
        ]
    return b"".join(parts)


def decode_group_value(value: bytes) -> GroupRecord:
    """The group in a record value (versions 0 to 3, as Kafka has written them)."""
    reader = _Reader(value)
    try:
        version = reader.int16()
        if not 0 <= version <= 3:
            raise CorruptBatchError(f"group value version {version} is unknown; valid: 0-3")
        protocol_type = reader.string() or ""
        generation = reader.int32()
        protocol = reader.string()
        leader = reader.string()
        timestamp = reader.int64() if version >= 2 else -1
        members = []
        for _ in range(max(reader.int32(), 0)):
            member_id = reader.string() or ""
            instance = reader.string() if version >= 3 else None
            client_id = reader.string() or ""
            client_host = reader.string() or ""
            rebalance = reader.int32() if version >= 1 else -1
            session = reader.int32()
            subscription = reader.bytes_()
            assignment = reader.bytes_()
            members.append(
                MemberRecord(
                    member_id,
                    instance,
                    client_id,
                    client_host,
                    rebalance if rebalance >= 0 else session,
                    session,
                    subscription,
                    assignment,
                )
            )
    except struct.error:
        raise CorruptBatchError(f"group value of {len(value)} bytes is truncated") from None
    return GroupRecord(protocol_type, generation, protocol, leader, tuple(members), timestamp)
