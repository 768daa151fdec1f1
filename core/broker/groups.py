"""The broker's group coordinator: Kafka's classic consumer-group protocol, as a state machine.

A group's state is one of Kafka's::

    Empty ──join──► PreparingRebalance ──all rejoined / rebalance timeout──► CompletingRebalance
      ▲                  ▲   │                                                  │
      │                  │   └── no members left ──► Empty                      │ leader's SyncGroup
      │                  └──────── join, leave, expiry ◄──────── Stable ◄───────┘
      └── DeleteGroups (Empty only) ──► Dead (forgotten)

Contracts:

- **JoinGroup** gathers the members. A new member with an empty member id on JoinGroup v4+ gets
  ``MEMBER_ID_REQUIRED`` with the id to join with (it is *pending* until it does, for at most its
  session timeout); older versions are added at once. The join phase ends when every known
  member has rejoined and no pending member is outstanding, or when the largest rebalance timeout
  of the members runs out (dynamic members that did not rejoin are then removed). A group's first
  rebalance waits ``initial_rebalance_delay_ms`` for more members. Then the generation goes up by
  one, the protocol chosen is the one every member supports that most members prefer, and every
  waiting member gets its answer; only the leader's answer lists the members with their metadata.
- **SyncGroup**: the leader's assignment bytes are kept and relayed as they are, each member
  getting its own (empty bytes for a member the leader left out); followers wait for the leader.
  A member that has not synced within the rebalance timeout after the join phase is removed.
- **Heartbeat** keeps a member alive: one asyncio timer per member, re-armed by every request of
  that member, removes it when its session timeout passes (not while it waits in a JoinGroup or
  SyncGroup). During a rebalance the answer is ``REBALANCE_IN_PROGRESS``.
- **Static membership** (``group.instance.id``): a member rejoining with an empty member id under
  a known instance id takes the old member's place under a new member id; the old id is fenced
  (``FENCED_INSTANCE_ID``). In a Stable group, with unchanged protocols and metadata, this causes
  no rebalance: the member syncs and gets its old assignment back.
- **Offsets** go through :class:`millstream.core.groups.OffsetStore` into ``__consumer_offsets``
  and survive a restart. A commit with generation -1 and no member id comes from a consumer
  outside the group protocol and is allowed only while the group has no members.
- **Group metadata** (generation, protocol, leader, members with their subscriptions and
  assignments) is written to ``__consumer_offsets`` too (:mod:`.group_records`) whenever a group
  becomes Stable or Empty, so after a restart a group is Stable at the same generation and its
  members carry on heartbeating and committing; a member that does not come back within its
  session timeout is removed as usual.
- An Empty group without committed offsets is forgotten (it describes as ``Dead``).

Everything runs on the broker's event loop; nothing here blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import MillstreamError
from ..groups import OFFSETS_TOPIC, OffsetAndMetadata, OffsetStore, offsets_partition
from ..log import encode_batch
from ..protocol import ErrorCode
from ..record import Record, TopicPartition
from .group_records import (
    GroupRecord,
    MemberRecord,
    decode_group_key,
    decode_group_value,
    encode_group_key,
    encode_group_value,
)
from .handler import BrokerContext

__all__ = [
    "COMPLETING_REBALANCE",
    "DEAD",
    "EMPTY",
    "PREPARING_REBALANCE",
    "STABLE",
    "GroupCoordinator",
    "GroupDescription",
    "GroupSettings",
    "JoinResult",
    "MemberDescription",
    "MemberMetadata",
    "SyncResult",
]

log = logging.getLogger(__name__)

EMPTY = "Empty"
PREPARING_REBALANCE = "PreparingRebalance"
COMPLETING_REBALANCE = "CompletingRebalance"
STABLE = "Stable"
DEAD = "Dead"

MAX_METADATA_SIZE = 4096
"""The longest metadata string a committed offset may carry (Kafka's
``offset.metadata.max.bytes``)."""


@dataclass(frozen=True)
class GroupSettings:
    """The coordinator's limits and delays, in milliseconds (Kafka's ``group.*`` broker configs)."""

    min_session_timeout_ms: int = 6000
    """The shortest session timeout a member may ask for (``group.min.session.timeout.ms``)."""
    max_session_timeout_ms: int = 1_800_000
    """The longest session timeout a member may ask for (``group.max.session.timeout.ms``)."""
    initial_rebalance_delay_ms: int = 3000
    """How long an Empty group's first rebalance waits for more members
    (``group.initial.rebalance.delay.ms``)."""

    @classmethod
    def from_config(cls, config: Any) -> GroupSettings:
        """The settings of a broker config: its ``group_*`` attributes, defaults for the rest."""
        defaults = cls()
        return cls(
            min_session_timeout_ms=int(
                getattr(config, "group_min_session_timeout_ms", defaults.min_session_timeout_ms)
            ),
            max_session_timeout_ms=int(
                getattr(config, "group_max_session_timeout_ms", defaults.max_session_timeout_ms)
            ),
            initial_rebalance_delay_ms=int(
                getattr(
                    config,
                    "group_initial_rebalance_delay_ms",
                    defaults.initial_rebalance_delay_ms,
                )
            ),
        )


@dataclass(frozen=True)
class MemberMetadata:
    """A member as the leader sees it in its JoinGroup answer."""

    member_id: str
    group_instance_id: str | None
    metadata: bytes


@dataclass(frozen=True)
class JoinResult:
    """The answer to a JoinGroup."""

    error: ErrorCode
    member_id: str = ""
    generation: int = -1
    protocol_type: str = ""
    protocol_name: str = ""
    leader: str = ""
    members: tuple[MemberMetadata, ...] = ()


@dataclass(frozen=True)
class SyncResult:
    """The answer to a SyncGroup: the member's assignment bytes, as the leader wrote them."""

    error: ErrorCode
    assignment: bytes = b""


@dataclass(frozen=True)
class MemberDescription:
    """A member as DescribeGroups shows it (metadata and assignment only in a Stable group)."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    metadata: bytes
    assignment: bytes


@dataclass(frozen=True)
class GroupDescription:
    """A group as DescribeGroups shows it; an unknown group is ``Dead``."""

    group_id: str
    state: str
    protocol_type: str
    protocol: str
    members: tuple[MemberDescription, ...]
    generation: int = 0


@dataclass(eq=False)
class _Member:
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    session_timeout_ms: int
    rebalance_timeout_ms: int
    protocols: list[tuple[str, bytes]]
    assignment: bytes = b""
    join_waiter: asyncio.Future[JoinResult] | None = None
    sync_waiter: asyncio.Future[SyncResult] | None = None
    session_timer: asyncio.TimerHandle | None = None

    def metadata(self, protocol: str | None) -> bytes:
        for name, metadata in self.protocols:
            if name == protocol:
                return metadata
        return b""


@dataclass(eq=False)
class _Group:
    group_id: str
    state: str = EMPTY
    generation: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, _Member] = field(default_factory=dict)
    pending: dict[str, asyncio.TimerHandle] = field(default_factory=dict)
    static: dict[str, str] = field(default_factory=dict)  # instance id -> member id
    pending_sync: set[str] = field(default_factory=set)
    join_timer: asyncio.TimerHandle | None = None
    initial_delay: bool = False
    sync_timer: asyncio.TimerHandle | None = None

    def fenced(self, member_id: str, instance_id: str | None) -> bool:
        """Whether ``instance_id`` belongs to a member other than ``member_id``."""
        if instance_id is None:
            return False
        known = self.static.get(instance_id)
        return known is not None and known != member_id

    def all_joined(self) -> bool:
        return not self.pending and all(m.join_waiter is not None for m in self.members.values())

    def rebalance_timeout_s(self) -> float:
        timeouts = [m.rebalance_timeout_ms for m in self.members.values()]
        return max(timeouts, default=0) / 1000

    def candidates(self, exclude: str | None = None) -> set[str] | None:
        """The protocols every member (but ``exclude``) supports; None when there is no one."""
        common: set[str] | None = None
        for member in self.members.values():
            if member.member_id == exclude:
                continue
            names = {name for name, _ in member.protocols}
            common = names if common is None else common & names
        return common

    def select_protocol(self) -> str:
        """The protocol every member supports that most members list first among those."""
        common = self.candidates() or set()
        votes: dict[str, int] = {}
        for member in self.members.values():
            for name, _ in member.protocols:
                if name in common:
                    votes[name] = votes.get(name, 0) + 1
                    break
        return max(votes, key=lambda name: votes[name]) if votes else ""


class GroupCoordinator:
    """Every consumer group of one broker: membership, rebalances and committed offsets.

    Call :meth:`start` before serving requests and :meth:`close` when the broker stops. The
    request methods take and return plain values (error codes from
    :class:`~millstream.core.protocol.ErrorCode`); :mod:`.group_apis` translates the wire
    messages.
    """

    def __init__(self, ctx: BrokerContext, settings: GroupSettings | None = None) -> None:
        self._ctx = ctx
        self.settings = settings or GroupSettings.from_config(getattr(ctx, "config", None))
        self._groups: dict[str, _Group] = {}
        self._offsets: OffsetStore | None = None
        self._stored: set[str] = set()  # groups with a metadata record in the log
        self._closed = False

    @property
    def node_id(self) -> int:
        """The node that coordinates every group: this one."""
        return self._ctx.node_id

    @property
    def host(self) -> str:
        """The advertised host of this node."""
        return self._ctx.host

    @property
    def port(self) -> int:
        """The advertised port of this node."""
        return self._ctx.port

    @property
    def offsets(self) -> OffsetStore:
        """The committed offsets (open after :meth:`start`)."""
        if self._offsets is None:
            raise MillstreamError("the group coordinator is not started; call start() first")
        return self._offsets

    async def start(self) -> None:
        """Load the committed offsets of ``__consumer_offsets`` (creating the topic if needed)."""
        self._offsets = OffsetStore.open(self._ctx.store)
        self._closed = False
        self._load_groups()
        log.info(
            "group coordinator loaded the offsets of %d group(s) and %d group(s) with members",
            len(self._offsets.groups()),
            sum(1 for g in self._groups.values() if g.members),
        )

    # --- group metadata in the log -------------------------------------------------------------

    def _load_groups(self) -> None:
        store = self._ctx.store
        if not store.has_topic(OFFSETS_TOPIC):
            return
        found: dict[str, GroupRecord | None] = {}
        for partition in store.topic(OFFSETS_TOPIC).partitions:
            for record in partition.iter_records(partition.log_start_offset):
                group_id = None if record.key is None else decode_group_key(record.key)
                if group_id is None:
                    continue
                try:
                    found[group_id] = (
                        None if record.value is None else decode_group_value(record.value)
                    )
                except MillstreamError as exc:
                    log.warning("skipped group record at offset %d: %s", record.offset, exc)
        for group_id, stored in found.items():
            if stored is None:
                continue
            self._stored.add(group_id)
            group = _Group(
                group_id,
                generation=stored.generation,
                protocol_type=stored.protocol_type or None,
                protocol_name=stored.protocol,
            )
            for m in stored.members:
                group.members[m.member_id] = _Member(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.session_timeout_ms,
                    m.rebalance_timeout_ms,
                    [(stored.protocol, m.subscription)] if stored.protocol else [],
                    m.assignment,
                )
                if m.group_instance_id is not None:
                    group.static[m.group_instance_id] = m.member_id
            if group.members:
                group.state = STABLE
                group.leader_id = (
                    stored.leader if stored.leader in group.members else next(iter(group.members))
                )
                for member in group.members.values():
                    self._touch(group, member)
            self._groups[group_id] = group

    def _write_group(self, group_id: str, value: bytes | None) -> asyncio.Future[None] | None:
        """Append ``group_id``'s metadata record (None: a tombstone); a future for durability."""
        store = self._ctx.store
        try:
            if not store.has_topic(OFFSETS_TOPIC):
                return None
            partitions = store.topic(OFFSETS_TOPIC).partitions
            partition = partitions[offsets_partition(group_id, len(partitions))]
            result = partition.append(encode_batch([Record(encode_group_key(group_id), value)]))
            durable = partition.durable(result.last_offset + 1)
        except MillstreamError as exc:
            log.warning("group %s: storing its metadata failed: %s", group_id, exc)
            return None
        durable.add_done_callback(_log_failure)
        if value is None:
            self._stored.discard(group_id)
        else:
            self._stored.add(group_id)
        return durable

    def _store_group(self, group: _Group) -> asyncio.Future[None] | None:
        record = GroupRecord(
            group.protocol_type or "",
            group.generation,
            group.protocol_name,
            group.leader_id,
            tuple(
                MemberRecord(
                    m.member_id,
                    m.group_instance_id,
                    m.client_id,
                    m.client_host,
                    m.rebalance_timeout_ms,
                    m.session_timeout_ms,
                    m.metadata(group.protocol_name),
                    m.assignment,
                )
                for m in group.members.values()
            ),
        )
        return self._write_group(group.group_id, encode_group_value(record))

    def _unstore_group(self, group_id: str) -> None:
        if group_id in self._stored:
            self._write_group(group_id, None)

    async def close(self) -> None:
        """Stop every timer and answer every waiting JoinGroup and SyncGroup with
        ``COORDINATOR_NOT_AVAILABLE`` (the clients find the coordinator again)."""
        self._closed = True
        for group in self._groups.values():
            _cancel(group.join_timer)
            _cancel(group.sync_timer)
            for handle in group.pending.values():
                handle.cancel()
            for member in group.members.values():
                _cancel(member.session_timer)
                _answer(member.join_waiter, JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE))
                _answer(member.sync_waiter, SyncResult(ErrorCode.COORDINATOR_NOT_AVAILABLE))
        self._groups.clear()

    # --- JoinGroup -----------------------------------------------------------------------------

    async def join(
        self,
        group_id: str,
        member_id: str,
        *,
        protocol_type: str,
        protocols: Iterable[tuple[str, bytes]],
        session_timeout_ms: int,
        rebalance_timeout_ms: int = -1,
        group_instance_id: str | None = None,
        client_id: str = "",
        client_host: str = "",
        require_known_member_id: bool = True,
    ) -> JoinResult:
        """Join (or rejoin) ``group_id``; returns when the join phase of the rebalance ends.

        ``rebalance_timeout_ms`` -1 means the session timeout (JoinGroup v0).
        ``require_known_member_id`` is JoinGroup v4+'s rule: a new member is first given its id.
        """
        protocols = [(name, bytes(metadata)) for name, metadata in protocols]
        if not group_id:
            return JoinResult(ErrorCode.INVALID_GROUP_ID, member_id)
        if self._closed:
            return JoinResult(ErrorCode.COORDINATOR_NOT_AVAILABLE, member_id)
        settings = self.settings
        if (
            not settings.min_session_timeout_ms
            <= session_timeout_ms
            <= (settings.max_session_timeout_ms)
        ):
            return JoinResult(ErrorCode.INVALID_SESSION_TIMEOUT, member_id)
        if rebalance_timeout_ms < 0:
            rebalance_timeout_ms = session_timeout_ms
        group = self._groups.get(group_id)
        if group is None:
            if member_id:
                return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
            group = self._groups[group_id] = _Group(group_id)
        if not self._supports(group, protocol_type, protocols, member_id):
            self._maybe_forget(group)
            return JoinResult(ErrorCode.INCONSISTENT_GROUP_PROTOCOL, member_id)

        def new_member(new_id: str) -> _Member:
            return _Member(
                new_id,
                group_instance_id,
                client_id,
                client_host,
                session_timeout_ms,
                rebalance_timeout_ms,
                protocols,
            )

        if not member_id:
            if group_instance_id is not None:
                old_id = group.static.get(group_instance_id)
                new_id = f"{group_instance_id}-{uuid.uuid4()}"
                if old_id is not None and old_id in group.members:
                    return await self._replace_static(group, old_id, new_member(new_id))
                return await self._add_and_rebalance(group, new_member(new_id), protocol_type)
            new_id = f"{client_id}-{uuid.uuid4()}"
            if require_known_member_id:
                loop = asyncio.get_running_loop()
                group.pending[new_id] = loop.call_later(
                    session_timeout_ms / 1000, self._expire_pending, group, new_id
                )
                return JoinResult(ErrorCode.MEMBER_ID_REQUIRED, new_id)
            return await self._add_and_rebalance(group, new_member(new_id), protocol_type)

        if member_id in group.pending:
            group.pending.pop(member_id).cancel()
            return await self._add_and_rebalance(group, new_member(member_id), protocol_type)
        if group.fenced(member_id, group_instance_id):
            return JoinResult(ErrorCode.FENCED_INSTANCE_ID, member_id)
        member = group.members.get(member_id)
        if member is None:
            return JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member_id)
        unchanged = member.protocols == protocols
        if group.state == COMPLETING_REBALANCE and unchanged:
            # the member missed its answer: give it again
            self._touch(group, member)
            return self._join_answer(group, member)
        if group.state == STABLE and unchanged and member.member_id != group.leader_id:
            self._touch(group, member)
            return self._join_answer(group, member, with_members=False)
        member.protocols = protocols
        member.session_timeout_ms = session_timeout_ms
        member.rebalance_timeout_ms = rebalance_timeout_ms
        member.client_id = client_id or member.client_id
        return await self._await_join(group, member)

    def _supports(
        self,
        group: _Group,
        protocol_type: str,
        protocols: list[tuple[str, bytes]],
        member_id: str,
    ) -> bool:
        if not protocol_type or not protocols:
            return False
        others = group.candidates(exclude=member_id)
        if others is None:  # no other member: anything goes
            return group.state == EMPTY or group.protocol_type in (None, protocol_type)
        return group.protocol_type == protocol_type and bool(
            others & {name for name, _ in protocols}
        )

    async def _add_and_rebalance(
        self, group: _Group, member: _Member, protocol_type: str
    ) -> JoinResult:
        if not group.members:
            group.protocol_type = protocol_type
        group.members[member.member_id] = member
        if member.group_instance_id is not None:
            group.static[member.group_instance_id] = member.member_id
        if group.leader_id is None:
            group.leader_id = member.member_id
        return await self._await_join(group, member)

    async def _await_join(self, group: _Group, member: _Member) -> JoinResult:
        _answer(member.join_waiter, JoinResult(ErrorCode.REBALANCE_IN_PROGRESS, member.member_id))
        waiter: asyncio.Future[JoinResult] = asyncio.get_running_loop().create_future()
        member.join_waiter = waiter
        _cancel(member.session_timer)
        member.session_timer = None
        if group.state != PREPARING_REBALANCE:
            self._prepare_rebalance(group, f"member {member.member_id} joined")
        self._check_join_complete(group)
        return await waiter

    async def _replace_static(self, group: _Group, old_id: str, member: _Member) -> JoinResult:
        old = group.members.pop(old_id)
        _cancel(old.session_timer)
        _answer(old.join_waiter, JoinResult(ErrorCode.FENCED_INSTANCE_ID, old_id))
        _answer(old.sync_waiter, SyncResult(ErrorCode.FENCED_INSTANCE_ID))
        group.pending_sync.discard(old_id)
        member.assignment = old.assignment
        group.members[member.member_id] = member
        group.static[member.group_instance_id or ""] = member.member_id
        leader_before = group.leader_id
        if group.leader_id == old_id:
            group.leader_id = member.member_id
        log.info(
            "group %s: static member %s rejoined as %s (was %s)",
            group.group_id,
            member.group_instance_id,
            member.member_id,
            old_id,
        )
        if group.state == STABLE and old.protocols == member.protocols:
            self._touch(group, member)
            self._store_group(group)
            # The old leader id is returned so that a returning leader does not assign again:
            # a Stable group would not relay a new assignment. It syncs and gets its own back.
            return JoinResult(
                ErrorCode.NONE,
                member.member_id,
                group.generation,
                group.protocol_type or "",
                group.protocol_name or "",
                leader_before or "",
            )
        return await self._await_join(group, member)

    def _join_answer(
        self, group: _Group, member: _Member, *, with_members: bool = True
    ) -> JoinResult:
        members: tuple[MemberMetadata, ...] = ()
        if with_members and member.member_id == group.leader_id:
            members = tuple(
                MemberMetadata(m.member_id, m.group_instance_id, m.metadata(group.protocol_name))
                for m in group.members.values()
            )
        return JoinResult(
            ErrorCode.NONE,
            member.member_id,
            group.generation,
            group.protocol_type or "",
            group.protocol_name or "",
            group.leader_id or "",
            members,
        )

    # --- the rebalance -------------------------------------------------------------------------

    def _prepare_rebalance(self, group: _Group, reason: str) -> None:
        """Move ``group`` to PreparingRebalance and arm the join deadline."""
        if group.state == COMPLETING_REBALANCE:
            for member in group.members.values():
                member.assignment = b""
                _answer(member.sync_waiter, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
                member.sync_waiter = None
        _cancel(group.sync_timer)
        group.sync_timer = None
        group.pending_sync.clear()
        _cancel(group.join_timer)
        loop = asyncio.get_running_loop()
        delay_ms = self.settings.initial_rebalance_delay_ms
        group.initial_delay = group.state == EMPTY and delay_ms > 0
        delay = (
            min(delay_ms / 1000, group.rebalance_timeout_s())
            if group.initial_delay
            else (group.rebalance_timeout_s())
        )
        log.info(
            "group %s: preparing a rebalance from %s (generation %d): %s",
            group.group_id,
            group.state,
            group.generation,
            reason,
        )
        group.state = PREPARING_REBALANCE
        group.join_timer = loop.call_later(delay, self._join_deadline, group)

    def _check_join_complete(self, group: _Group) -> None:
        if group.state == PREPARING_REBALANCE and not group.initial_delay and group.all_joined():
            self._complete_join(group)

    def _join_deadline(self, group: _Group) -> None:
        group.join_timer = None
        if group.state != PREPARING_REBALANCE:
            return
        if group.initial_delay:
            group.initial_delay = False
            if not group.all_joined():
                group.join_timer = asyncio.get_running_loop().call_later(
                    group.rebalance_timeout_s(), self._join_deadline, group
                )
                return
        self._complete_join(group)

    def _complete_join(self, group: _Group) -> None:
        """End the join phase: drop dynamic members that did not rejoin, start a generation."""
        _cancel(group.join_timer)
        group.join_timer = None
        for member in list(group.members.values()):
            if member.join_waiter is None and member.group_instance_id is None:
                log.info(
                    "group %s: member %s did not rejoin in time; removed",
                    group.group_id,
                    member.member_id,
                )
                self._drop(group, member)
        joined = [m for m in group.members.values() if m.join_waiter is not None]
        if group.members and not joined:
            # only static members that did not rejoin: wait for them (or their sessions)
            group.join_timer = asyncio.get_running_loop().call_later(
                group.rebalance_timeout_s(), self._join_deadline, group
            )
            return
        if group.leader_id not in group.members or (
            group.members[group.leader_id].join_waiter is None
        ):
            group.leader_id = joined[0].member_id if joined else None
        group.generation += 1
        if not group.members:
            group.state = EMPTY
            group.protocol_name = None
            group.leader_id = None
            log.info("group %s: empty at generation %d", group.group_id, group.generation)
            if not self._maybe_forget(group):
                self._store_group(group)
            return
        group.protocol_name = group.select_protocol()
        group.state = COMPLETING_REBALANCE
        group.pending_sync = set(group.members)
        log.info(
            "group %s: generation %d with %d member(s), protocol %s, leader %s",
            group.group_id,
            group.generation,
            len(group.members),
            group.protocol_name,
            group.leader_id,
        )
        for member in group.members.values():
            waiter = member.join_waiter
            member.join_waiter = None
            _answer(waiter, self._join_answer(group, member))
            self._touch(group, member)
        group.sync_timer = asyncio.get_running_loop().call_later(
            group.rebalance_timeout_s(), self._sync_deadline, group, group.generation
        )

    def _sync_deadline(self, group: _Group, generation: int) -> None:
        group.sync_timer = None
        if generation != group.generation or group.state not in (COMPLETING_REBALANCE, STABLE):
            return
        late = [group.members[m] for m in group.pending_sync if m in group.members]
        group.pending_sync.clear()
        if not late:
            return
        for member in late:
            log.info(
                "group %s: member %s did not sync in time; removed",
                group.group_id,
                member.member_id,
            )
            self._drop(group, member)
        self._prepare_rebalance(group, "members did not sync in time")
        self._check_join_complete(group)

    # --- members leaving -----------------------------------------------------------------------

    def _drop(self, group: _Group, member: _Member) -> None:
        """Take ``member`` out of ``group`` (no state change)."""
        _cancel(member.session_timer)
        member.session_timer = None
        _answer(member.join_waiter, JoinResult(ErrorCode.UNKNOWN_MEMBER_ID, member.member_id))
        _answer(member.sync_waiter, SyncResult(ErrorCode.UNKNOWN_MEMBER_ID))
        group.members.pop(member.member_id, None)
        group.pending_sync.discard(member.member_id)
        if member.group_instance_id is not None and (
            group.static.get(member.group_instance_id) == member.member_id
        ):
            del group.static[member.group_instance_id]
        if group.leader_id == member.member_id:
            group.leader_id = next(iter(group.members), None)

    def _remove_and_rebalance(self, group: _Group, member: _Member, reason: str) -> None:
        self._drop(group, member)
        if group.state in (STABLE, COMPLETING_REBALANCE):
            self._prepare_rebalance(group, reason)
        self._check_join_complete(group)

    def _touch(self, group: _Group, member: _Member) -> None:
        """Re-arm ``member``'s session timer."""
        _cancel(member.session_timer)
        member.session_timer = asyncio.get_running_loop().call_later(
            member.session_timeout_ms / 1000, self._session_expired, group, member
        )

    def _session_expired(self, group: _Group, member: _Member) -> None:
        member.session_timer = None
        if group.members.get(member.member_id) is not member:
            return
        if member.join_waiter is not None or member.sync_waiter is not None:
            self._touch(group, member)  # waiting in a JoinGroup or SyncGroup: alive
            return
        log.info(
            "group %s: member %s sent nothing for %d ms (its session timeout); removed",
            group.group_id,
            member.member_id,
            member.session_timeout_ms,
        )
        self._remove_and_rebalance(group, member, f"member {member.member_id}'s session expired")

    def _expire_pending(self, group: _Group, member_id: str) -> None:
        if group.pending.pop(member_id, None) is None:
            return
        self._check_join_complete(group)
        self._maybe_forget(group)

    def _maybe_forget(self, group: _Group) -> bool:
        """Forget an Empty group with nobody pending and no committed offsets; whether it was."""
        if (
            group.state == EMPTY
            and not group.members
            and not group.pending
            and self._groups.get(group.group_id) is group
            and not (self._offsets is not None and self._offsets.offsets(group.group_id))
        ):
            _cancel(group.join_timer)
            del self._groups[group.group_id]
            self._unstore_group(group.group_id)
            return True
        return False

    def leave(self, group_id: str, members: Iterable[tuple[str, str | None]]) -> list[ErrorCode]:
        """Remove each ``(member_id, group_instance_id)`` of ``members``; one error per member.

        A member may be named by its instance id alone (an empty member id).
        """
        group = self._groups.get(group_id)
        errors: list[ErrorCode] = []
        for member_id, instance_id in members:
            if group is None:
                errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
                continue
            if not member_id and instance_id is not None:
                member_id = group.static.get(instance_id, "")
            if group.fenced(member_id, instance_id):
                errors.append(ErrorCode.FENCED_INSTANCE_ID)
            elif member_id in group.pending:
                group.pending.pop(member_id).cancel()
                self._check_join_complete(group)
                errors.append(ErrorCode.NONE)
            elif member_id in group.members:
                log.info("group %s: member %s left", group.group_id, member_id)
                self._remove_and_rebalance(
                    group, group.members[member_id], f"member {member_id} left"
                )
                errors.append(ErrorCode.NONE)
            else:
                errors.append(ErrorCode.UNKNOWN_MEMBER_ID)
        if group is not None:
            self._maybe_forget(group)
        return errors

    # --- SyncGroup and Heartbeat ---------------------------------------------------------------

    def _validate(
        self, group: _Group | None, member_id: str, instance_id: str | None, generation: int
    ) -> ErrorCode:
        if group is None:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if group.fenced(member_id, instance_id):
            return ErrorCode.FENCED_INSTANCE_ID
        if member_id not in group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID
        if generation != group.generation:
            return ErrorCode.ILLEGAL_GENERATION
        return ErrorCode.NONE

    async def sync(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        assignments: Mapping[str, bytes] | None = None,
        *,
        group_instance_id: str | None = None,
    ) -> SyncResult:
        """Hand ``member_id`` its assignment of ``generation``; the leader brings everyone's.

        A follower in CompletingRebalance waits until the leader's SyncGroup arrives.
        """
        group = self._groups.get(group_id)
        error = self._validate(group, member_id, group_instance_id, generation)
        if error:
            return SyncResult(error)
        assert group is not None
        member = group.members[member_id]
        if group.state == PREPARING_REBALANCE:
            return SyncResult(ErrorCode.REBALANCE_IN_PROGRESS)
        group.pending_sync.discard(member_id)
        self._touch(group, member)
        if group.state == STABLE:
            return SyncResult(ErrorCode.NONE, member.assignment)
        # CompletingRebalance
        waiter: asyncio.Future[SyncResult] = asyncio.get_running_loop().create_future()
        _answer(member.sync_waiter, SyncResult(ErrorCode.REBALANCE_IN_PROGRESS))
        member.sync_waiter = waiter
        if member_id == group.leader_id:
            given = dict(assignments or {})
            for other in group.members.values():
                other.assignment = bytes(given.get(other.member_id, b""))
            group.state = STABLE
            log.info("group %s: stable at generation %d", group.group_id, group.generation)
            stored = self._store_group(group)
            for other in group.members.values():
                if other is member:
                    continue
                sync_waiter = other.sync_waiter
                other.sync_waiter = None
                _answer(sync_waiter, SyncResult(ErrorCode.NONE, other.assignment))
            try:
                if stored is not None:
                    with contextlib.suppress(MillstreamError):
                        await asyncio.shield(stored)  # the leader hears back once it is durable
            finally:
                _answer(waiter, SyncResult(ErrorCode.NONE, member.assignment))
        try:
            return await waiter
        finally:
            if member.sync_waiter is waiter:
                member.sync_waiter = None

    def heartbeat(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        *,
        group_instance_id: str | None = None,
    ) -> ErrorCode:
        """Keep ``member_id`` alive; REBALANCE_IN_PROGRESS tells it to rejoin."""
        group = self._groups.get(group_id)
        error = self._validate(group, member_id, group_instance_id, generation)
        if error:
            return error
        assert group is not None
        self._touch(group, group.members[member_id])
        if group.state == PREPARING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        return ErrorCode.NONE

    # --- offsets -------------------------------------------------------------------------------

    def _has_partition(self, tp: TopicPartition) -> bool:
        store = self._ctx.store
        if not store.has_topic(tp.topic):
            return False
        return 0 <= tp.partition < len(store.topic(tp.topic).partitions)

    async def commit_offsets(
        self,
        group_id: str,
        generation: int,
        member_id: str,
        offsets: Mapping[TopicPartition, OffsetAndMetadata],
        *,
        group_instance_id: str | None = None,
    ) -> dict[TopicPartition, ErrorCode]:
        """Commit ``offsets`` for ``group_id``; one error per partition (NONE: durable).

        A member commits with its member id and current generation (also while the group is
        preparing a rebalance); generation -1 with no member id is a consumer outside the group
        protocol, allowed only while the group has no members.
        """
        error = self._check_commit(group_id, generation, member_id, group_instance_id)
        if error:
            return dict.fromkeys(offsets, error)
        results: dict[TopicPartition, ErrorCode] = {}
        accepted: dict[TopicPartition, OffsetAndMetadata] = {}
        for tp, committed in offsets.items():
            if len(committed.metadata.encode()) > MAX_METADATA_SIZE:
                results[tp] = ErrorCode.OFFSET_METADATA_TOO_LARGE
            elif not self._has_partition(tp):
                results[tp] = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
            elif committed.offset < 0:
                results[tp] = ErrorCode.OFFSET_OUT_OF_RANGE
            else:
                accepted[tp] = committed
        if accepted:
            try:
                await self.offsets.commit(group_id, accepted)
            except MillstreamError as exc:
                log.warning("group %s: committing offsets failed: %s", group_id, exc)
                results.update(dict.fromkeys(accepted, ErrorCode.KAFKA_STORAGE_ERROR))
            else:
                results.update(dict.fromkeys(accepted, ErrorCode.NONE))
        return {tp: results[tp] for tp in offsets}

    def _check_commit(
        self, group_id: str, generation: int, member_id: str, instance_id: str | None
    ) -> ErrorCode:
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        if self._closed:
            return ErrorCode.COORDINATOR_NOT_AVAILABLE
        group = self._groups.get(group_id)
        if group is None:
            # no live group: a consumer outside the group protocol, or an old generation
            return ErrorCode.NONE if generation < 0 else ErrorCode.ILLEGAL_GENERATION
        if generation >= 0 or member_id or instance_id is not None:
            error = self._validate(group, member_id, instance_id, generation)
            if error:
                return error
        elif group.members:
            return ErrorCode.UNKNOWN_MEMBER_ID  # only members may commit for a live group
        if group.state == COMPLETING_REBALANCE:
            return ErrorCode.REBALANCE_IN_PROGRESS
        member = group.members.get(member_id)
        if member is not None and member.join_waiter is None and member.sync_waiter is None:
            self._touch(group, member)
        return ErrorCode.NONE

    def fetch_offsets(
        self, group_id: str, partitions: Iterable[TopicPartition] | None = None
    ) -> dict[TopicPartition, OffsetAndMetadata | None]:
        """The committed offsets of ``group_id`` in ``partitions`` (None: not committed);
        every committed partition when ``partitions`` is None."""
        known = self.offsets.offsets(group_id)
        if partitions is None:
            return dict(known)
        return {tp: known.get(tp) for tp in partitions}

    async def topic_deleted(self, topic: str) -> None:
        """Forget every group's offsets in ``topic`` (call after deleting it)."""
        await self.offsets.forget_topic(topic)

    # --- describing and deleting ---------------------------------------------------------------

    def state(self, group_id: str) -> str:
        """``group_id``'s state: Empty for a group known only by its committed offsets, Dead for
        an unknown one."""
        group = self._groups.get(group_id)
        if group is not None:
            return group.state
        return EMPTY if self.offsets.offsets(group_id) else DEAD

    def describe(self, group_id: str) -> GroupDescription:
        """``group_id`` with its members; metadata and assignments are shown when Stable."""
        group = self._groups.get(group_id)
        if group is None:
            return GroupDescription(group_id, self.state(group_id), "", "", ())
        stable = group.state == STABLE
        members = tuple(
            MemberDescription(
                m.member_id,
                m.group_instance_id,
                m.client_id,
                m.client_host,
                m.metadata(group.protocol_name) if stable else b"",
                m.assignment if stable else b"",
            )
            for m in group.members.values()
        )
        return GroupDescription(
            group_id,
            group.state,
            group.protocol_type or "",
            (group.protocol_name or "") if stable else "",
            members,
            group.generation,
        )

    def list_groups(self) -> list[tuple[str, str]]:
        """``(group id, protocol type)`` of every group, live or with committed offsets, sorted."""
        found = {name: "" for name in self.offsets.groups()}
        for name, group in self._groups.items():
            found[name] = group.protocol_type or ""
        return sorted(found.items())

    async def delete_group(self, group_id: str) -> ErrorCode:
        """Delete an Empty group and its committed offsets (then it is Dead).

        GROUP_ID_NOT_FOUND for an unknown group, NON_EMPTY_GROUP while it has members.
        """
        if not group_id:
            return ErrorCode.INVALID_GROUP_ID
        state = self.state(group_id)
        if state == DEAD:
            return ErrorCode.GROUP_ID_NOT_FOUND
        if state != EMPTY:
            return ErrorCode.NON_EMPTY_GROUP
        group = self._groups.pop(group_id, None)
        if group is not None:
            _cancel(group.join_timer)
            for handle in group.pending.values():
                handle.cancel()
        self._unstore_group(group_id)
        try:
            await self.offsets.delete(group_id)
        except MillstreamError as exc:
            log.warning("group %s: deleting its offsets failed: %s", group_id, exc)
            return ErrorCode.KAFKA_STORAGE_ERROR
        log.info("group %s: deleted", group_id)
        return ErrorCode.NONE


def _cancel(handle: asyncio.TimerHandle | None) -> None:
    if handle is not None:
        handle.cancel()


def _log_failure(future: asyncio.Future[None]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.warning("storing group metadata failed: %s", future.exception())


def _answer(waiter: asyncio.Future[Any] | None, result: Any) -> None:
    """Resolve ``waiter`` unless it is gone (answered, or its request was cancelled)."""
    if waiter is not None and not waiter.done():
        waiter.set_result(result)
