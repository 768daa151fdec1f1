"""Consumer groups: who is in a group, which partitions each member reads, who may commit.

:class:`GroupCoordinator` keeps the groups of one store in memory. Members join with the topics
they subscribe to; whenever the membership, a subscription or a subscribed topic's partition
count changes, the group *rebalances*: its generation goes up by one and its partitions are dealt
out anew by :func:`~.assignor.round_robin`. Offsets are stored through
:class:`~.offsets.OffsetStore`.

A group's state is one of Kafka's, as text:

- ``Empty``: no live members (it may still have committed offsets);
- ``PreparingRebalance``: membership changed; members are being gathered. In one process
  joining is immediate, so a group passes through this state at once;
- ``CompletingRebalance``: a new assignment is made and some member has not picked it up yet
  (:meth:`GroupCoordinator.sync`);
- ``Stable``: every member reads the partitions of the current generation;
- ``Dead``: the group has neither members nor offsets (unknown, or deleted).

Who may commit: a member may commit a partition it holds now and has held without a break since
the generation it last synced (so a consumer that lost a partition and got it back while not
looking cannot commit a stale position over its successor's). A member's commit stores the offsets
of the partitions it may commit, then raises :class:`CommitFailedError` naming those a rebalance
moved away from it. A committer outside the group's balancing (``member=None``, a consumer that
assigned partitions itself) may commit only while the group has no live members, as in Kafka, and
a member that left may not commit at all: those commit nothing and raise
:class:`CommitFailedError`.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..errors import CommitFailedError, StoreError
from ..record import TopicPartition
from ._codec import OffsetAndMetadata
from .assignor import round_robin
from .offsets import OffsetStore

__all__ = ["GroupCoordinator", "GroupSnapshot", "Member"]

EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"


@dataclass(eq=False)
class Member:
    """One live member of a group, as its consumer sees it.

    ``generation`` is the generation of the member's latest assignment and ``assignment`` maps
    each partition it holds to the generation since which it has held it. ``changed`` is set
    whenever either changes, so a consumer waiting for records can wake up and :meth:`sync`.
    """

    member_id: str
    client_id: str
    group: str
    topics: frozenset[str]
    generation: int = 0
    assignment: dict[TopicPartition, int] = field(default_factory=dict)
    synced: int = -1
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    left: bool = False

    def partitions(self) -> frozenset[TopicPartition]:
        """The partitions this member holds in its latest assignment."""
        return frozenset(self.assignment)


@dataclass(frozen=True)
class GroupSnapshot:
    """A group as :meth:`GroupCoordinator.describe` sees it."""

    group: str
    state: str
    generation: int
    protocol: str
    members: tuple[Member, ...]
    offsets: Mapping[TopicPartition, OffsetAndMetadata]


@dataclass(eq=False)
class _Group:
    name: str
    generation: int = 0
    state: str = EMPTY
    members: dict[str, Member] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)  # partition counts it was dealt with


class GroupCoordinator:
    """The consumer groups of one store, in this process.

    ``partition_count(topic)`` tells how many partitions a topic has now (0 when it does not
    exist); call :meth:`topics_changed` after creating, growing or deleting topics.
    """

    protocol = "roundrobin"

    def __init__(self, offsets: OffsetStore, partition_count: Callable[[str], int]) -> None:
        self.offsets = offsets
        self._partition_count = partition_count
        self._groups: dict[str, _Group] = {}

    # --- membership ------------------------------------------------------------------------

    def join(self, group: str, topics: Iterable[str], client_id: str = "millstream") -> Member:
        """Add a member subscribed to ``topics`` and rebalance the group."""
        if not group:
            raise ValueError("a consumer group needs a non-empty name")
        state = self._groups.get(group)
        if state is None:
            state = self._groups[group] = _Group(group)
        member = Member(f"{client_id}-{uuid.uuid4()}", client_id, group, frozenset(topics))
        state.members[member.member_id] = member
        self._rebalance(state)
        return member

    def subscribe(self, member: Member, topics: Iterable[str]) -> None:
        """Change what ``member`` subscribes to (a rebalance when it differs)."""
        topics = frozenset(topics)
        state = self._live_group(member)
        if topics != member.topics:
            member.topics = topics
            self._rebalance(state)

    def leave(self, member: Member) -> None:
        """Remove ``member``; its partitions go to the others. Idempotent."""
        if member.left:
            return
        member.left = True
        member.assignment = {}
        member.changed.set()
        state = self._groups.get(member.group)
        if state is not None and state.members.pop(member.member_id, None) is not None:
            self._rebalance(state)

    def sync(self, member: Member) -> frozenset[TopicPartition]:
        """Mark ``member``'s latest assignment as picked up and return it."""
        member.changed.clear()
        member.synced = member.generation
        state = self._groups.get(member.group)
        if (
            state is not None
            and state.state == COMPLETING_REBALANCE
            and all(m.synced == state.generation for m in state.members.values())
        ):
            state.state = STABLE
        return frozenset(member.assignment)

    def topics_changed(self) -> None:
        """Rebalance every group whose subscribed topics changed their partition counts."""
        for state in self._groups.values():
            if state.members and self._counts(state) != state.counts:
                self._rebalance(state)

    def _live_group(self, member: Member) -> _Group:
        state = self._groups.get(member.group)
        if member.left or state is None or member.member_id not in state.members:
            raise CommitFailedError(
                f"consumer {member.member_id} has left group {member.group!r}; "
                "make a new consumer to join it again"
            )
        return state

    def _counts(self, state: _Group) -> dict[str, int]:
        topics = sorted(set().union(*(m.topics for m in state.members.values())))
        return {topic: self._partition_count(topic) for topic in topics}

    def _rebalance(self, state: _Group) -> None:
        if not state.members:
            state.state = EMPTY
            state.counts = {}
            state.generation += 1
            return
        state.state = PREPARING_REBALANCE
        state.generation += 1
        state.counts = self._counts(state)
        dealt = round_robin({m: s.topics for m, s in state.members.items()}, state.counts)
        for member_id, partitions in dealt.items():
            member = state.members[member_id]
            held = member.assignment
            member.assignment = {tp: held.get(tp, state.generation) for tp in partitions}
            member.generation = state.generation
            member.changed.set()
        state.state = COMPLETING_REBALANCE

    # --- offsets ---------------------------------------------------------------------------

    def committed(self, group: str, tp: TopicPartition) -> int | None:
        """The offset ``group`` committed for ``tp``, or None."""
        committed = self.offsets.committed(group, tp)
        return None if committed is None else committed.offset

    def check_commit(
        self,
        group: str,
        partitions: Iterable[TopicPartition],
        *,
        member: Member | None = None,
        generation: int | None = None,
    ) -> list[TopicPartition]:
        """The partitions of ``partitions`` that a rebalance moved away from ``member``, sorted:
        the ones it may not commit. ``generation`` is the generation the member last synced
        (default: its latest).

        Raises CommitFailedError when the committer may commit nothing at all: a member that
        left the group, or an outsider (``member=None``) while the group has live members.
        """
        if member is None:
            state = self._groups.get(group)
            if state is not None and state.members:
                raise CommitFailedError(
                    f"cannot commit for group {group!r}: it has {len(state.members)} live "
                    "member(s) balancing its partitions; a consumer that assigns partitions "
                    "itself may commit only for a group with no live members"
                )
            return []
        self._live_group(member)
        seen = member.synced if generation is None else generation
        return sorted(
            tp
            for tp in set(partitions)
            if (since := member.assignment.get(tp)) is None or since > seen
        )

    async def commit(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
        *,
        member: Member | None = None,
        generation: int | None = None,
    ) -> None:
        """Commit ``offsets`` for ``group``: those of the partitions the committer may commit
        (:meth:`check_commit`) are stored; then, if a rebalance moved any of the others away,
        CommitFailedError names them and the ones committed."""
        moved = self.check_commit(group, offsets, member=member, generation=generation)
        gone = set(moved)
        kept = {tp: offset for tp, offset in offsets.items() if tp not in gone}
        if kept:
            await self.offsets.commit(group, kept)
        # a rebalance while the write was in flight does not undo it: like Kafka, the commit
        # was accepted when it was checked
        if moved and member is not None:  # only a member's partitions move
            raise CommitFailedError(_moved_message(group, moved, sorted(kept), member.generation))

    async def set_offsets(
        self, group: str, offsets: Mapping[TopicPartition, int | OffsetAndMetadata]
    ) -> None:
        """Overwrite ``group``'s offsets (an operator's reset); refused while it has members."""
        self._require_empty(group, "reset its offsets")
        await self.offsets.commit(group, offsets)

    async def delete_group(self, group: str) -> None:
        """Forget ``group`` and its offsets; refused while it has members."""
        self._require_empty(group, "delete it")
        await self.offsets.delete(group)
        self._groups.pop(group, None)

    def _require_empty(self, group: str, action: str) -> None:
        state = self._groups.get(group)
        if state is not None and state.members:
            ids = ", ".join(sorted(state.members))
            raise StoreError(
                f"cannot {action}: consumer group {group!r} has {len(state.members)} live "
                f"member(s) ({ids}); stop its consumers first"
            )

    # --- describing ------------------------------------------------------------------------

    def list_groups(self) -> list[str]:
        """Groups known here (members joined since the store opened) or with committed
        offsets, sorted."""
        return sorted(set(self._groups).union(self.offsets.groups()))

    def describe(self, group: str) -> GroupSnapshot:
        """The group's state, members and committed offsets (state ``Dead`` when unknown)."""
        state = self._groups.get(group)
        offsets = self.offsets.offsets(group)
        if state is None or not state.members:
            name = EMPTY if offsets or state is not None else DEAD
            generation = state.generation if state is not None else 0
            return GroupSnapshot(group, name, generation, "", (), offsets)
        return GroupSnapshot(
            group,
            state.state,
            state.generation,
            self.protocol,
            tuple(state.members.values()),
            offsets,
        )


def _moved_message(
    group: str, moved: list[TopicPartition], committed: list[TopicPartition], generation: int
) -> str:
    one = len(moved) == 1
    them, their = ("it", "its") if one else ("them", "their")
    return (
        f"cannot commit {', '.join(map(str, moved))} for group {group!r}: a rebalance "
        f"(generation {generation}) moved {them} from this consumer, and the consumer that owns "
        f"{them} now will read {their} records again; committed: "
        f"{', '.join(map(str, committed)) or 'nothing'}"
    )
