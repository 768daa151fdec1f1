"""Client-side partition assignment for the classic group protocol ("consumer" protocol type).

The group's leader runs an assignor over every member's subscription and sends the result to
the coordinator, which relays each member its share. The bytes are Kafka's consumer protocol,
so Java, librdkafka and kafka-python members can share a group with ours:

::

    Subscription  version int16, topics [string], user_data nullable bytes,
                  (v1+) owned_partitions [topic string, partitions [int32]], (v2+) generation …
    Assignment    version int16, assigned_partitions [topic string, partitions [int32]],
                  user_data nullable bytes

We write version 0 of both (Subscription v1 when the member owns partitions, for ``sticky``)
and read any version (fields after the ones we know are skipped). Assignors: ``sticky`` (ours:
balanced, and keeping each member's owned partitions where it can; see :func:`assign_sticky`),
``range`` (per topic, consecutive runs of partitions to members sorted by id,
the first ones one more when it does not divide evenly) and ``roundrobin`` (every partition of
every topic, sorted, dealt in turn to the members subscribed to its topic), as Kafka's
``RangeAssignor`` and ``RoundRobinAssignor`` place them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from ...errors import ProtocolError
from ...protocol.primitives import read_bytes, read_string, write_bytes, write_string
from ...record import TopicPartition

__all__ = [
    "ASSIGNORS",
    "DEFAULT_ASSIGNORS",
    "Assignment",
    "Subscription",
    "assign_range",
    "assign_roundrobin",
    "assign_sticky",
]

_INT16 = struct.Struct(">h")
_INT32 = struct.Struct(">i")


@dataclass(frozen=True, slots=True)
class Subscription:
    """What a member asks for: its topics (sorted) and opaque user data."""

    topics: tuple[str, ...]
    user_data: bytes | None = None
    owned: tuple[TopicPartition, ...] = field(default=())

    def encode(self) -> bytes:
        """Consumer protocol Subscription bytes: v0, or v1 when the member owns partitions
        (the sticky assignor keeps them where they are)."""
        version = 1 if self.owned else 0
        buf = bytearray(_INT16.pack(version))
        buf += _INT32.pack(len(self.topics))
        for topic in self.topics:
            write_string(buf, topic)
        write_bytes(buf, self.user_data)
        if version:
            _write_partitions(buf, self.owned)
        return bytes(buf)

    @classmethod
    def decode(cls, data: bytes) -> Subscription:
        """A Subscription of any version (v1's owned partitions are read too)."""
        try:
            (version,) = _INT16.unpack_from(data, 0)
            topics, pos = _read_strings(data, 2)
            user_data: bytes | None = None
            if pos < len(data):
                user_data, pos = read_bytes(data, pos, nullable=True)
            owned: list[TopicPartition] = []
            if version >= 1 and pos < len(data):
                owned, pos = _read_partitions(data, pos)
        except (struct.error, ProtocolError, IndexError) as exc:
            raise ProtocolError(f"not a consumer protocol subscription: {exc}") from None
        return cls(tuple(topics), user_data, tuple(owned))


@dataclass(frozen=True, slots=True)
class Assignment:
    """What a member is given: its partitions and opaque user data."""

    partitions: tuple[TopicPartition, ...]
    user_data: bytes | None = None

    def encode(self) -> bytes:
        """Consumer protocol Assignment v0 bytes."""
        buf = bytearray(_INT16.pack(0))
        _write_partitions(buf, self.partitions)
        write_bytes(buf, self.user_data)
        return bytes(buf)

    @classmethod
    def decode(cls, data: bytes) -> Assignment:
        """An Assignment of any version; empty bytes (no assignment) is no partitions."""
        if not data:
            return cls(())
        try:
            partitions, pos = _read_partitions(data, 2)
            user_data: bytes | None = None
            if pos < len(data):
                user_data, pos = read_bytes(data, pos, nullable=True)
        except (struct.error, ProtocolError, IndexError) as exc:
            raise ProtocolError(f"not a consumer protocol assignment: {exc}") from None
        return cls(tuple(partitions), user_data)


def _write_partitions(buf: bytearray, partitions: Sequence[TopicPartition]) -> None:
    by_topic: dict[str, list[int]] = {}
    for tp in sorted(partitions):
        by_topic.setdefault(tp.topic, []).append(tp.partition)
    buf += _INT32.pack(len(by_topic))
    for topic, numbers in by_topic.items():
        write_string(buf, topic)
        buf += _INT32.pack(len(numbers))
        for p in numbers:
            buf += _INT32.pack(p)


def _read_strings(data: bytes, pos: int) -> tuple[list[str], int]:
    (count,) = _INT32.unpack_from(data, pos)
    pos += 4
    out = []
    for _ in range(max(0, count)):
        text, pos = read_string(data, pos)
        out.append(text or "")
    return out, pos


def _read_partitions(data: bytes, pos: int) -> tuple[list[TopicPartition], int]:
    (count,) = _INT32.unpack_from(data, pos)
    pos += 4
    out = []
    for _ in range(max(0, count)):
        topic, pos = read_string(data, pos)
        (n,) = _INT32.unpack_from(data, pos)
        pos += 4
        for _ in range(max(0, n)):
            (p,) = _INT32.unpack_from(data, pos)
            pos += 4
            out.append(TopicPartition(topic or "", p))
    return out, pos


Assignor = Callable[
    [Mapping[str, Subscription], Mapping[str, int]], dict[str, tuple[TopicPartition, ...]]
]
"""``(members' subscriptions by member id, partition count by topic) → partitions by member``."""


def assign_range(
    members: Mapping[str, Subscription], partitions: Mapping[str, int]
) -> dict[str, tuple[TopicPartition, ...]]:
    """Kafka's RangeAssignor: per topic, its partitions cut into consecutive runs, one per
    subscribed member in member-id order; the first ``count % members`` get one more."""
    out: dict[str, list[TopicPartition]] = {m: [] for m in members}
    topics = sorted({t for s in members.values() for t in s.topics})
    for topic in topics:
        count = partitions.get(topic, 0)
        takers = sorted(m for m, s in members.items() if topic in s.topics)
        if not takers or count <= 0:
            continue
        each, extra = divmod(count, len(takers))
        start = 0
        for i, member in enumerate(takers):
            size = each + (1 if i < extra else 0)
            out[member].extend(TopicPartition(topic, p) for p in range(start, start + size))
            start += size
    return {m: tuple(tps) for m, tps in out.items()}


def assign_roundrobin(
    members: Mapping[str, Subscription], partitions: Mapping[str, int]
) -> dict[str, tuple[TopicPartition, ...]]:
    """Kafka's RoundRobinAssignor: every partition of every subscribed topic, sorted by topic
    and partition, dealt in turn to the members (by id) that subscribe to its topic."""
    out: dict[str, list[TopicPartition]] = {m: [] for m in members}
    order = sorted(members)
    if not order:
        return {}
    topics = sorted({t for s in members.values() for t in s.topics})
    turn = 0
    for topic in topics:
        for p in range(partitions.get(topic, 0)):
            for _ in range(len(order)):
                member = order[turn % len(order)]
                turn += 1
                if topic in members[member].topics:
                    out[member].append(TopicPartition(topic, p))
                    break
    return {m: tuple(tps) for m, tps in out.items()}


def assign_sticky(
    members: Mapping[str, Subscription], partitions: Mapping[str, int]
) -> dict[str, tuple[TopicPartition, ...]]:
    """Balanced, and moving as few partitions as it can: each member keeps the partitions it
    owned in the last generation (its subscription's owned partitions) up to its fair share
    (``partitions // members``, one more for ``partitions % members`` of them); the rest are
    dealt one by one, in order, to the subscribed member holding the fewest (ties: the lowest
    member id). A member joining takes only what
    the others hold above their share; a partition moves only when its owner left, or held
    too many. With one partition, its owner keeps it as long as it stays in the group."""
    order = sorted(members)
    if not order:
        return {}
    wanted = [
        TopicPartition(topic, p)
        for topic in sorted({t for s in members.values() for t in s.topics})
        for p in range(partitions.get(topic, 0))
    ]
    floor, extra = divmod(len(wanted), len(order))
    share = floor + (1 if extra else 0)
    valid = set(wanted)
    out: dict[str, list[TopicPartition]] = {m: [] for m in order}
    taken: set[TopicPartition] = set()
    claims: dict[TopicPartition, int] = {}
    for subscription in members.values():
        for tp in set(subscription.owned):
            claims[tp] = claims.get(tp, 0) + 1
    for member in order:
        subscription = members[member]
        # two members claim one partition only after a member was thought gone: each keeps
        # first what nobody else claims
        for tp in sorted(set(subscription.owned), key=lambda tp: (claims[tp], tp)):
            if len(out[member]) >= share:
                break
            if tp in valid and tp not in taken and tp.topic in subscription.topics:
                out[member].append(tp)
                taken.add(tp)
    # only ``extra`` members may hold one more than ``floor``: the others give it back
    if extra:
        full = [m for m in order if len(out[m]) == share]
        for member in full[extra:]:
            taken.discard(out[member].pop())
    for tp in wanted:
        if tp in taken:
            continue
        takers = [m for m in order if tp.topic in members[m].topics]
        member = min(takers, key=lambda m: len(out[m]))
        out[member].append(tp)
    return {m: tuple(sorted(tps)) for m, tps in out.items()}


ASSIGNORS: dict[str, Assignor] = {
    "sticky": assign_sticky,
    "range": assign_range,
    "roundrobin": assign_roundrobin,
}
"""The assignors by the protocol name members announce in JoinGroup."""

DEFAULT_ASSIGNORS = ("sticky", "roundrobin", "range")
"""The protocols a consumer announces unless told otherwise, in order of preference."""


def _sorted_unique(topics: Sequence[str]) -> tuple[str, ...]:
    return tuple(sorted(set(topics)))
