"""Membership of a consumer group through its coordinator (the classic group protocol).

:class:`GroupMembership` joins a group (FindCoordinator, JoinGroup, SyncGroup), keeps the
membership alive with heartbeats in a background task, and joins again when the coordinator
says the group is rebalancing, so a member that is busy elsewhere still takes part in a
rebalance. When this member is the group's leader it assigns the partitions itself, with the
assignor the group chose (:mod:`.assignors`), and hands the result to the coordinator.

``generation`` and ``assignment`` are the latest the coordinator confirmed; ``changed`` is set
each time they change, for the consumer to notice before it returns records.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ...errors import StoreError
from ...protocol import ApiKey, ErrorCode, request_class
from ...record import TopicPartition
from .assignors import ASSIGNORS, DEFAULT_ASSIGNORS, Assignment, Subscription
from .failures import error_for
from .wire import BrokerUnavailableError

if TYPE_CHECKING:
    from .cluster import Cluster
    from .wire import BrokerConnection

__all__ = ["GroupMembership"]

log = logging.getLogger(__name__)

_PROTOCOL_TYPE = "consumer"
_REJOIN = frozenset(
    {
        ErrorCode.REBALANCE_IN_PROGRESS,
        ErrorCode.ILLEGAL_GENERATION,
        ErrorCode.UNKNOWN_MEMBER_ID,
        ErrorCode.FENCED_INSTANCE_ID if hasattr(ErrorCode, "FENCED_INSTANCE_ID") else -99,
    }
)
_NEW_COORDINATOR = frozenset(
    {
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    }
)
_MEMBER_ID_REQUIRED = 79
_JOIN_WAIT_MS = 300_000
"""How long a JoinGroup may wait at least: Kafka's default max.poll.interval.ms, the rebalance
timeout of Java consumers that may share the group."""


class GroupMembership:
    """This consumer's membership of ``group`` for ``topics``."""

    def __init__(
        self,
        cluster: Cluster,
        group: str,
        topics: frozenset[str],
        *,
        client_id: str,
        assignors: Sequence[str] = DEFAULT_ASSIGNORS,
        session_timeout_ms: int = 10_000,
        rebalance_timeout_ms: int = 30_000,
        heartbeat_interval_ms: int = 1_000,
    ) -> None:
        unknown = [a for a in assignors if a not in ASSIGNORS]
        if unknown or not assignors:
            raise ValueError(
                f"unknown assignor {unknown[0] if unknown else None!r}; valid: "
                + ", ".join(ASSIGNORS)
            )
        self._cluster = cluster
        self.group = group
        self.topics = topics
        self.client_id = client_id
        self._assignors = tuple(assignors)
        self._session_ms = session_timeout_ms
        self._rebalance_ms = rebalance_timeout_ms
        self._heartbeat_s = heartbeat_interval_ms / 1000
        self.member_id = ""
        self.generation = -1
        self.assignment: frozenset[TopicPartition] = frozenset()
        self.changed = asyncio.Event()
        self.joined = asyncio.Event()
        self.error: BaseException | None = None
        self._rejoin = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._assigned_counts: dict[str, int] | None = None
        self._closed = False
        self.channel = f"group-{id(self):x}"

    def start(self) -> None:
        """Join in the background and stay a member until :meth:`leave`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"millstream-group-{self.group}"
            )

    def resubscribe(self, topics: frozenset[str]) -> None:
        """Change the topics; the group rebalances."""
        if topics != self.topics:
            self.topics = topics
            self._rejoin.set()

    def rejoin(self) -> None:
        """Join again (the coordinator refused a request for this generation)."""
        self._rejoin.set()

    async def wait_joined(self, timeout_s: float) -> bool:
        """Wait until the member holds an assignment of the current generation."""
        if self.error is not None:
            raise self.error
        if not self.joined.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.joined.wait(), timeout_s)
        if self.error is not None:
            raise self.error
        return self.joined.is_set()

    # --- the membership loop ------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closed:
            try:
                await self._join()
                await self._heartbeats()
            except asyncio.CancelledError:
                raise
            except BrokerUnavailableError as exc:
                log.info("group %s: %s; joining again", self.group, exc)
                self._cluster.forget_coordinator(self.group)
                await asyncio.sleep(0.2)
            except StoreError as exc:
                self.error = exc
                self.joined.set()
                self.changed.set()
                return

    async def _coordinator(self) -> BrokerConnection:
        return await self._cluster.coordinator(
            self.group, channel=self.channel, client_id=self.client_id
        )

    async def _join(self) -> None:
        self.joined.clear()
        self._rejoin.clear()
        self._assigned_counts = None
        join = request_class(ApiKey.JOIN_GROUP)
        while True:
            coordinator = await self._coordinator()
            # what it owns, so that the sticky assignor leaves it where it is; a member the
            # group has forgotten (no member id) owns nothing any more
            owned = tuple(sorted(self.assignment)) if self.member_id else ()
            metadata = Subscription(tuple(sorted(self.topics)), owned=owned).encode()
            request = join(
                group_id=self.group,
                session_timeout_ms=self._session_ms,
                rebalance_timeout_ms=self._rebalance_ms,
                member_id=self.member_id,
                group_instance_id=None,
                protocol_type=_PROTOCOL_TYPE,
                protocols=[join.Protocols(name=n, metadata=metadata) for n in self._assignors],  # type: ignore[attr-defined]
            )
            # the coordinator answers a JoinGroup once the group is formed, which may take up
            # to the largest rebalance timeout of the group's members (a Java consumer's is
            # its max.poll.interval.ms, 5 minutes by default), not only this member's
            longest = max(self._rebalance_ms, _JOIN_WAIT_MS)
            answer = await coordinator.request(
                ApiKey.JOIN_GROUP, request, timeout_s=longest / 1000 + 5
            )
            code = answer.error_code
            if code == _MEMBER_ID_REQUIRED:
                self.member_id = answer.member_id
                continue
            if code == ErrorCode.UNKNOWN_MEMBER_ID:
                self.member_id = ""
                continue
            if code in _NEW_COORDINATOR:
                self._cluster.forget_coordinator(self.group)
                await asyncio.sleep(0.1)
                continue
            if code == ErrorCode.REBALANCE_IN_PROGRESS:
                await asyncio.sleep(0.05)
                continue
            if code:
                raise error_for(code, f"join group {self.group!r}")
            self.member_id = answer.member_id
            generation = answer.generation_id
            assignments: list[Any] = []
            if answer.leader == answer.member_id:
                assignments = await self._assign(answer.protocol_name, answer.members)
            sync = request_class(ApiKey.SYNC_GROUP)
            synced = await coordinator.request(
                ApiKey.SYNC_GROUP,
                sync(
                    group_id=self.group,
                    generation_id=generation,
                    member_id=self.member_id,
                    group_instance_id=None,
                    assignments=[
                        sync.Assignments(member_id=m, assignment=a)  # type: ignore[attr-defined]
                        for m, a in assignments
                    ],
                ),
            )
            code = synced.error_code
            if code in _REJOIN or code in _NEW_COORDINATOR:
                if code == ErrorCode.UNKNOWN_MEMBER_ID:
                    self.member_id = ""
                if code in _NEW_COORDINATOR:
                    self._cluster.forget_coordinator(self.group)
                await asyncio.sleep(0.05)
                continue
            if code:
                raise error_for(code, f"sync group {self.group!r}")
            given = Assignment.decode(synced.assignment)
            self.generation = generation
            self.assignment = frozenset(given.partitions)
            self.joined.set()
            self.changed.set()
            log.debug("group %s generation %d: %s", self.group, generation, sorted(self.assignment))
            return

    async def _assign(self, protocol: str, members: list[Any]) -> list[tuple[str, bytes]]:
        subscriptions = {m.member_id: Subscription.decode(m.metadata) for m in members}
        topics = {t for s in subscriptions.values() for t in s.topics}
        await self._cluster.refresh()
        counts = {
            t: self._cluster.topics[t].partitions for t in topics if t in self._cluster.topics
        }
        assignor = ASSIGNORS.get(protocol, ASSIGNORS["range"])
        chosen = assignor(subscriptions, counts)
        self._assigned_counts = counts  # the leader rebalances when they change
        return [(member, Assignment(chosen.get(member, ())).encode()) for member in subscriptions]

    async def _heartbeats(self) -> None:
        heartbeat = request_class(ApiKey.HEARTBEAT)
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._rejoin.wait(), self._heartbeat_s)
            if self._rejoin.is_set() or self._partitions_changed():
                return
            coordinator = await self._coordinator()
            answer = await coordinator.request(
                ApiKey.HEARTBEAT,
                heartbeat(
                    group_id=self.group,
                    generation_id=self.generation,
                    member_id=self.member_id,
                    group_instance_id=None,
                ),
            )
            code = answer.error_code
            if code == ErrorCode.NONE:
                continue
            if code in _NEW_COORDINATOR:
                self._cluster.forget_coordinator(self.group)
                continue
            if code == ErrorCode.UNKNOWN_MEMBER_ID:
                self.member_id = ""
            if code in _REJOIN:
                return
            raise error_for(code, f"stay in group {self.group!r}")

    def _partitions_changed(self) -> bool:
        """Whether this member led the last assignment and the partition count of one of the
        group's topics has changed since (as the cluster's metadata now says)."""
        counts = self._assigned_counts
        if not counts:
            return False
        topics = self._cluster.topics
        return any(t in topics and topics[t].partitions != n for t, n in counts.items())

    # --- leaving ------------------------------------------------------------------------------

    async def leave(self) -> None:
        """Stop heartbeating and leave the group, so its partitions move at once. Idempotent."""
        if self._closed:
            return
        self._closed = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if not self.member_id:
            return
        leave = request_class(ApiKey.LEAVE_GROUP)
        with contextlib.suppress(StoreError, OSError, TimeoutError):
            coordinator = await self._coordinator()
            request = leave(
                group_id=self.group,
                member_id=self.member_id,
                members=[leave.Members(member_id=self.member_id, group_instance_id=None)],  # type: ignore[attr-defined]
            )
            await asyncio.wait_for(coordinator.request(ApiKey.LEAVE_GROUP, request), 5)
        with contextlib.suppress(StoreError, OSError):
            await self._cluster.close_channel(self.channel)
        self.assignment = frozenset()
