"""The network consumer: Fetch requests to each partition's leader, whole batches decoded here.

Each partition it reads has a :class:`_Fetch`: its position (the next offset to return), the
batches fetched but not yet decoded, and a buffer of decoded records. When nothing is buffered,
``getmany`` sends one Fetch request per leader for every partition it reads (long polling up to
the time left), keeps the whole batches that come back, and decodes them one at a time with
core.log's decoder, leaving out the records below the position (a fetch returns the whole batch
that holds the requested offset).

A partition's first position is the group's committed offset, else where ``auto_offset_reset``
says (ListOffsets); a position outside the log (OFFSET_OUT_OF_RANGE) is reset the same way,
except one given by :meth:`seek`, which is clamped into the log as the embedded consumer does.

With a group, :class:`~.group.GroupMembership` keeps the membership in the background; the
consumer takes a new assignment before it returns records, dropping the partitions taken from
it (buffered records included).

The synchronous methods (``subscribe``, ``assign``, ``assignment``, ``position``, ``seek``)
cannot wait for the network: ``subscribe`` starts joining and ``assignment`` is empty until the
group has assigned partitions (``getmany`` waits for that, within its timeout), and
``position`` of a partition whose start is not known yet raises StoreError (``getmany``,
``seek`` or the ``seek_to_*`` methods fix it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import CommitFailedError, InvalidOffsetError, StoreClosedError, StoreError
from ...log.batch import decode_columns, decode_records, iter_batches, read_header
from ...protocol import ApiKey, ErrorCode, request_class
from ...record import RecordBlock, StoredRecord, TopicPartition
from ..interface import Consumer, OffsetReset, checked_consumer_settings
from .assignors import DEFAULT_ASSIGNORS
from .failures import REFRESH_METADATA, error_for
from .group import GroupMembership
from .offsets import EARLIEST, LATEST, commit_offsets, fetch_committed, list_offsets
from .wire import BrokerUnavailableError

if TYPE_CHECKING:
    from .connection import NetworkConnection

__all__ = ["NetworkConsumer"]

_FETCH = request_class(ApiKey.FETCH)
_PARTITION_BYTES = 1 << 20
_RESPONSE_BYTES = 50 << 20
_LONG_POLL_S = 0.5
_Taken = TypeVar("_Taken", bound=Sized)


class _Fetch:
    __slots__ = (
        "block",
        "clamp",
        "end",
        "epoch",
        "index",
        "pending",
        "position",
        "records",
        "settled",
        "tp",
    )

    def __init__(self, tp: TopicPartition) -> None:
        self.tp = tp
        self.position: int | None = None
        self.records: list[StoredRecord] = []
        self.index = 0
        self.pending: list[memoryview] = []  # whole batches not decoded yet, last first
        self.block: RecordBlock | None = None  # what getmany_blocks left of a decoded batch
        self.end = 0  # the offset after the decoded batch held in records or block
        self.settled: int | None = None
        self.clamp = False  # the position came from seek(): clamp it into the log
        self.epoch = 0  # moved on by each seek: a fetch answer from before is dropped

    def clear(self) -> None:
        self.records = []
        self.index = 0
        self.pending = []
        self.block = None

    @property
    def holds(self) -> bool:
        """Whether records are at hand: decoded, left in a block, or batches to decode."""
        return bool(self.pending) or self.index < len(self.records) or self.block is not None

    @property
    def next_offset(self) -> int | None:
        """Where the next fetch starts: after the decoded batch held, else the position."""
        if self.index < len(self.records) or self.block is not None:
            return self.end
        return self.position


class NetworkConsumer(Consumer):
    """A consumer that fetches from the brokers of its connection's cluster."""

    def __init__(
        self,
        connection: NetworkConnection,
        *,
        group: str | None,
        auto_offset_reset: OffsetReset | str,
        max_poll_records: int,
        client_id: str,
        assignors: tuple[str, ...] = DEFAULT_ASSIGNORS,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self._reset = checked_consumer_settings(group, auto_offset_reset, max_poll_records)
        self._connection = connection
        self._cluster = connection.cluster
        self._group = group
        self._max_poll = max_poll_records
        self.client_id = client_id
        self._assignors = assignors
        self._session_ms = session_timeout_ms
        self._membership: GroupMembership | None = None
        self._generation = -1
        self._topics: frozenset[str] = frozenset()
        self._fetches: dict[TopicPartition, _Fetch] = {}
        self._order: list[_Fetch] = []
        self._turn = 0
        self._current: _Fetch | None = None
        self._revoked: dict[TopicPartition, int] = {}
        self._channel = f"consumer-{id(self):x}"
        self._ahead: asyncio.Task[None] | None = None
        self._closed = False

    # --- what to read ----------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str]) -> None:
        self._check_open()
        if isinstance(topics, str):
            topics = [topics]
        names = frozenset(topics)
        for name in names:
            if name not in self._cluster.topics:
                raise error_for(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"subscribe to {name!r}")
        self._topics = names
        if self._group is None:
            self._set_assignment(self._all_partitions(names))
            return
        if self._membership is None:
            self._membership = GroupMembership(
                self._cluster,
                self._group,
                names,
                client_id=self.client_id,
                assignors=self._assignors,
                session_timeout_ms=self._session_ms,
            )
            self._membership.start()
        else:
            self._membership.resubscribe(names)

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._check_open()
        chosen = frozenset(partitions)
        for tp in chosen:
            info = self._cluster.topics.get(tp.topic)
            if info is None:
                raise error_for(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"assign {tp}")
            if not 0 <= tp.partition < info.partitions:
                raise StoreError(
                    f"partition {tp.partition} does not exist in topic {tp.topic!r}; "
                    f"valid partitions are 0 to {info.partitions - 1}"
                )
        if self._membership is not None:
            membership, self._membership = self._membership, None
            self._connection.spawn(membership.leave())
        self._topics = frozenset()
        self._set_assignment(chosen)

    def assignment(self) -> frozenset[TopicPartition]:
        self._sync_group()
        return frozenset(self._fetches)

    async def wait_for_assignment(self, timeout_ms: int = 30_000) -> frozenset[TopicPartition]:
        self._check_open()
        if self._membership is not None:
            await self._membership.wait_joined(timeout_ms / 1000)
        return self.assignment()

    def _all_partitions(self, topics: Iterable[str]) -> frozenset[TopicPartition]:
        return frozenset(
            TopicPartition(name, p)
            for name in topics
            if name in self._cluster.topics
            for p in range(self._cluster.topics[name].partitions)
        )

    def _set_assignment(self, partitions: frozenset[TopicPartition]) -> None:
        for tp in list(self._fetches):
            if tp not in partitions:
                fetch = self._fetches.pop(tp)
                if fetch.position is not None and fetch.position != fetch.settled:
                    self._revoked[tp] = fetch.position
        for tp in sorted(partitions):
            if tp not in self._fetches:
                self._fetches[tp] = _Fetch(tp)
                self._revoked.pop(tp, None)
        self._order = [self._fetches[tp] for tp in sorted(self._fetches)]
        self._current = None

    def _sync_group(self) -> None:
        membership = self._membership
        if membership is None:
            if self._topics and self._group is None:
                partitions = self._all_partitions(self._topics)
                if len(partitions) != len(self._fetches):
                    self._set_assignment(partitions)
            return
        if membership.error is not None:
            error, membership.error = membership.error, None
            raise error
        if membership.generation != self._generation and membership.joined.is_set():
            self._generation = membership.generation
            membership.changed.clear()
            self._set_assignment(membership.assignment)

    # --- positions -------------------------------------------------------------------------

    def _fetch(self, tp: TopicPartition) -> _Fetch:
        self._check_open()
        self._sync_group()
        fetch = self._fetches.get(tp)
        if fetch is None:
            assigned = ", ".join(str(t) for t in sorted(self._fetches)) or "none"
            raise StoreError(
                f"partition {tp} is not assigned to this consumer; assigned: {assigned}"
            )
        return fetch

    async def _start(self, fetches: list[_Fetch]) -> None:
        """Choose the positions of partitions that have none: committed offset, else reset."""
        unknown = [f for f in fetches if f.position is None]
        if not unknown:
            return
        committed: dict[TopicPartition, int] = {}
        if self._group is not None:
            committed = await fetch_committed(self._cluster, self._group, [f.tp for f in unknown])
        reset = []
        for fetch in unknown:
            offset = committed.get(fetch.tp)
            if offset is None:
                reset.append(fetch)
            else:
                fetch.position = fetch.settled = offset
        await self._reset_positions(reset, None)

    async def _reset_positions(
        self, fetches: list[_Fetch], was: dict[TopicPartition, int] | None
    ) -> None:
        if not fetches:
            return
        if self._reset is OffsetReset.NONE:
            fetch = fetches[0]
            where = "no committed offset" if not was else f"offset {was[fetch.tp]} is out of range"
            raise InvalidOffsetError(
                f"{fetch.tp}: {where} and auto_offset_reset is 'none'; seek first, or use "
                "auto_offset_reset 'earliest' or 'latest'"
            )
        spec = EARLIEST if self._reset is OffsetReset.EARLIEST else LATEST
        found = await list_offsets(self._cluster, {f.tp: spec for f in fetches})
        for fetch in fetches:
            fetch.position = fetch.settled = found[fetch.tp]
            fetch.clear()

    async def _clamp(self, fetches: list[_Fetch]) -> None:
        tps = {f.tp for f in fetches}
        starts = await list_offsets(self._cluster, dict.fromkeys(tps, EARLIEST))
        ends = await list_offsets(self._cluster, dict.fromkeys(tps, LATEST))
        for fetch in fetches:
            position = fetch.position or 0
            fetch.position = min(max(position, starts[fetch.tp]), ends[fetch.tp])
            fetch.clamp = False
            fetch.clear()

    def position(self, tp: TopicPartition) -> int:
        fetch = self._fetch(tp)
        if fetch.position is None:
            raise StoreError(
                f"the position of {tp} is not known yet: it is the group's committed offset or "
                "where auto_offset_reset says, looked up by the first getmany(); call it, or seek"
            )
        return fetch.position

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if not isinstance(offset, int) or offset < 0:
            raise InvalidOffsetError(f"cannot seek {tp} to {offset!r}: an offset is an int >= 0")
        fetch = self._fetch(tp)
        fetch.position = offset
        fetch.clamp = True
        fetch.epoch += 1
        fetch.clear()
        if self._current is fetch:
            self._current = None

    def _targets(self, partitions: tuple[TopicPartition, ...]) -> list[_Fetch]:
        if partitions:
            return [self._fetch(tp) for tp in partitions]
        self._check_open()
        self._sync_group()
        return list(self._order)

    async def _seek_to(self, spec: int, partitions: tuple[TopicPartition, ...]) -> None:
        targets = self._targets(partitions)
        if not targets:
            return
        found = await list_offsets(self._cluster, {f.tp: spec for f in targets})
        for fetch in targets:
            self.seek(fetch.tp, found[fetch.tp])
            fetch.clamp = False

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        await self._seek_to(EARLIEST, partitions)

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        await self._seek_to(LATEST, partitions)

    async def seek_to_timestamp(self, timestamp_ms: int, *partitions: TopicPartition) -> None:
        await self._seek_to(timestamp_ms, partitions)

    # --- fetching ----------------------------------------------------------------------------

    async def _fetch_round(self, wait_s: float) -> None:
        """One Fetch per leader for every partition with no batch left to decode, waiting up to
        ``wait_s`` for data; the batches that come back become the partitions' pending ones.
        A partition still handing out a decoded batch is fetched from that batch's end, so
        its next batches arrive while it is read (only one fetch runs ahead at a time)."""
        wanted = [f for f in self._order if not f.pending]
        await self._start(wanted)
        clamp = [f for f in wanted if f.clamp]
        if clamp:
            await self._clamp(clamp)
        by_node: dict[int, list[_Fetch]] = {}
        stale: set[str] = set()
        for fetch in wanted:
            node = self._cluster.leader(fetch.tp.topic, fetch.tp.partition)
            if node < 0:
                stale.add(fetch.tp.topic)
            else:
                by_node.setdefault(node, []).append(fetch)
        if not by_node:
            if stale:
                await self._cluster.refresh(stale)
            await asyncio.sleep(min(wait_s, 0.1))
            return
        results = await asyncio.gather(
            *(self._fetch_from(node, fetches, wait_s) for node, fetches in by_node.items()),
            return_exceptions=True,
        )
        out_of_range: list[_Fetch] = []
        for outcome in results:
            if isinstance(outcome, BrokerUnavailableError):
                await self._cluster.refresh()
                continue
            if isinstance(outcome, BaseException):
                raise outcome
            more_stale, more_out = outcome
            stale |= more_stale
            out_of_range += more_out
        if stale:
            await self._cluster.refresh(stale)
        clamp = [f for f in out_of_range if f.clamp]
        if clamp:
            await self._clamp(clamp)
        reset = [f for f in out_of_range if not f.clamp]
        if reset:
            await self._reset_positions(reset, {f.tp: f.position or 0 for f in reset})

    async def _fetch_from(
        self, node: int, fetches: list[_Fetch], wait_s: float
    ) -> tuple[set[str], list[_Fetch]]:
        topics: dict[str, list[Any]] = {}
        by_tp: dict[TopicPartition, tuple[_Fetch, int, int | None]] = {}
        for fetch in fetches:
            offset = fetch.next_offset
            by_tp[fetch.tp] = (fetch, fetch.epoch, offset)
            topics.setdefault(fetch.tp.topic, []).append(
                _FETCH.Topics.Partitions(  # type: ignore[attr-defined]
                    partition=fetch.tp.partition,
                    current_leader_epoch=-1,
                    fetch_offset=offset,
                    log_start_offset=-1,
                    partition_max_bytes=_PARTITION_BYTES,
                )
            )
        request = _FETCH(
            replica_id=-1,
            max_wait_ms=max(0, int(wait_s * 1000)),
            min_bytes=1,
            max_bytes=_RESPONSE_BYTES,
            isolation_level=0,
            session_id=0,
            session_epoch=-1,
            topics=[
                _FETCH.Topics(topic=t, partitions=p)  # type: ignore[attr-defined]
                for t, p in topics.items()
            ],
            forgotten_topics_data=[],
            rack_id="",
        )
        connection = await self._cluster.connection(node, self._channel, client_id=self.client_id)
        answer = await connection.request(ApiKey.FETCH, request, timeout_s=wait_s + 30)
        if answer.error_code:
            raise error_for(answer.error_code, "fetch records")
        stale: set[str] = set()
        out_of_range: list[_Fetch] = []
        for topic in answer.responses:
            for part in topic.partitions:
                sent = by_tp.get(TopicPartition(topic.topic, part.partition_index))
                if sent is None:
                    continue
                fetch, epoch, offset = sent
                if fetch.epoch != epoch or self._fetches.get(fetch.tp) is not fetch:
                    continue  # sought or reassigned meanwhile
                if fetch.pending or fetch.next_offset != offset:
                    continue  # filled by another fetch meanwhile
                code = ErrorCode.for_code(part.error_code)
                if code == ErrorCode.OFFSET_OUT_OF_RANGE:
                    if not fetch.holds:
                        out_of_range.append(fetch)
                    continue
                if code in REFRESH_METADATA or code.retriable:
                    stale.add(topic.topic)
                    continue
                if code != ErrorCode.NONE:
                    raise error_for(code, f"fetch from {fetch.tp}")
                records = part.records
                if not records:
                    continue
                view = memoryview(records)
                batches = []
                for pos, header in iter_batches(view):
                    if header.next_offset > (offset or 0):
                        batches.append(view[pos : pos + header.size])
                batches.reverse()
                fetch.pending = batches
        return stale, out_of_range

    # --- handing records out -----------------------------------------------------------------

    def _fill_one(self, fetch: _Fetch) -> bool:
        """Decode the next pending batch that has records into the buffer; False when none."""
        tp = fetch.tp
        if fetch.block is not None:
            fetch.records, fetch.index, fetch.block = fetch.block.records(), 0, None
            return True
        while fetch.pending:
            raw = fetch.pending.pop()
            records = decode_records(raw, tp.topic, tp.partition, min_offset=fetch.position or 0)
            end = _next_offset(raw)
            if records:
                fetch.records = records
                fetch.index = 0
                fetch.end = end
                return True
            fetch.position = max(fetch.position or 0, end)
        return False

    def _take(self, fetch: _Fetch, limit: int) -> list[StoredRecord]:
        taken: list[StoredRecord] = []
        while len(taken) < limit:
            if fetch.index >= len(fetch.records) and not self._fill_one(fetch):
                break
            records = fetch.records
            chunk = records[fetch.index : fetch.index + limit - len(taken)]
            fetch.index += len(chunk)
            fetch.position = chunk[-1].offset + 1
            if fetch.index >= len(records):
                fetch.records = []
                fetch.index = 0
            taken += chunk
        return taken

    def _take_block(self, fetch: _Fetch, limit: int) -> RecordBlock | None:
        """Up to ``limit`` records of ``fetch`` as one block, decoded batch by batch field by
        field (no record object); what is left of the last batch waits as a block. Records
        that getmany decoded one by one come first, alone."""
        tp = fetch.tp
        if fetch.index < len(fetch.records):
            taken = self._take(fetch, limit)
            return RecordBlock.of_records(tp.topic, tp.partition, taken) if taken else None
        blocks: list[RecordBlock] = []
        room = limit
        while room > 0:
            block = fetch.block
            if block is not None:
                fetch.block = None
                end = fetch.end
            elif fetch.pending:
                raw = fetch.pending.pop()
                block = decode_columns(raw, tp.topic, tp.partition, min_offset=fetch.position or 0)
                end = _next_offset(raw)
            else:
                break
            size = len(block)
            if size > room:  # the rest waits for the next call
                fetch.block, fetch.end = block.slice(room, size), end
                block = block.slice(0, room)
                fetch.position = block.offsets[-1] + 1
            else:
                fetch.position = max(fetch.position or 0, end)
            if size:
                blocks.append(block)
                room -= len(block)
        if not blocks:
            return None
        return RecordBlock.joined(blocks)

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[StoredRecord]]:
        return await self._poll(self._take, timeout_ms, max_records)

    async def getmany_blocks(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, RecordBlock]:
        return await self._poll(self._take_block, timeout_ms, max_records)

    async def _poll(
        self, take: Callable[[_Fetch, int], _Taken | None], timeout_ms: int, max_records: int | None
    ) -> dict[TopicPartition, _Taken]:
        self._check_open()
        limit = self._max_poll if max_records is None else max_records
        if limit < 1:
            raise ValueError(f"max_records must be >= 1, not {limit}")
        deadline = time.monotonic() + max(0, timeout_ms) / 1000
        fetched = False
        while True:
            if self._membership is not None and not self._membership.joined.is_set():
                await self._membership.wait_joined(max(0.0, deadline - time.monotonic()))
            self._sync_group()
            out: dict[TopicPartition, _Taken] = {}
            order = self._order
            remaining = limit
            for i in range(len(order)):
                fetch = order[(self._turn + i) % len(order)]
                taken = take(fetch, remaining)
                if taken:
                    out[fetch.tp] = taken
                    remaining -= len(taken)
                    if remaining <= 0:
                        break
            if order:
                self._turn = (self._turn + 1) % len(order)
            self._current = None
            if out:
                self._prefetch()
                return out
            left = deadline - time.monotonic()
            if left <= 0 and fetched:
                return out
            if not order:
                if left <= 0:
                    return out
                await asyncio.sleep(min(left, 0.1))
                continue
            ahead = self._ahead
            if ahead is not None:
                # the fetch started when the last records were handed out: wait for it (within
                # the time left; it goes on if that runs out), then take what it brought
                await asyncio.wait([ahead], timeout=max(0.0, left))
                if ahead.done():
                    self._ahead = None
                    ahead.result()
                fetched = True
                continue
            await self._fetch_round(max(0.0, min(left, _LONG_POLL_S)))
            fetched = True
            self._check_open()

    def _prefetch(self) -> None:
        """Start fetching for the partitions with no batch left to decode, so the next call
        finds their next batches waiting (a fetch answer that a seek made stale is dropped)."""
        if self._ahead is None and any(
            not f.pending and f.position is not None for f in self._order
        ):
            self._ahead = asyncio.get_running_loop().create_task(self._fetch_round(_LONG_POLL_S))

    def _next_buffered(self) -> StoredRecord | None:
        self._sync_group()
        fetch = self._current
        if fetch is None or fetch.index >= len(fetch.records):
            fetch = None
            for candidate in self._order:
                if candidate.index < len(candidate.records) or self._fill_one(candidate):
                    fetch = candidate
                    break
            self._current = fetch
            if fetch is None:
                return None
        record = fetch.records[fetch.index]
        fetch.index += 1
        fetch.position = record.offset + 1
        if fetch.index >= len(fetch.records):
            fetch.records = []
            fetch.index = 0
            self._current = None
        return record

    async def _fill(self, timeout_ms: int) -> None:
        self._check_open()
        if self._membership is not None and not self._membership.joined.is_set():
            await self._membership.wait_joined(timeout_ms / 1000)
        self._sync_group()
        if not self._order:
            await asyncio.sleep(timeout_ms / 1000)
            return
        ahead = self._ahead
        if ahead is not None:
            await asyncio.wait([ahead], timeout=timeout_ms / 1000)
            if ahead.done():
                self._ahead = None
                ahead.result()
            return
        await self._fetch_round(min(timeout_ms / 1000, _LONG_POLL_S))

    # --- offsets ---------------------------------------------------------------------------

    def _require_group(self, action: str) -> str:
        if self._group is None:
            raise StoreError(
                f"cannot {action}: this consumer has no group; make it with group=NAME"
            )
        return self._group

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._check_open()
        group = self._require_group("commit offsets")
        self._sync_group()
        if offsets is None:
            chosen = {
                tp: f.position
                for tp, f in self._fetches.items()
                if f.position is not None and f.position != f.settled
            }
            revoked, self._revoked = self._revoked, {}
            chosen.update(revoked)
        else:
            chosen = dict(offsets)
        if not chosen:
            return
        membership = self._membership
        if membership is None:
            refused = await commit_offsets(self._cluster, group, chosen)
            if refused:
                self._refused(group, chosen, refused, assigned=True)
            self._settle(chosen)
            return
        for _ in range(3):
            owned = {tp: o for tp, o in chosen.items() if tp in membership.assignment}
            moved = sorted(set(chosen) - set(owned))
            refused = {}
            if owned:
                refused = await commit_offsets(
                    self._cluster,
                    group,
                    owned,
                    generation=membership.generation,
                    member_id=membership.member_id,
                )
            if any(
                c
                in (
                    ErrorCode.REBALANCE_IN_PROGRESS,
                    ErrorCode.ILLEGAL_GENERATION,
                    ErrorCode.UNKNOWN_MEMBER_ID,
                )
                for c in refused.values()
            ):
                membership.rejoin()
                membership.joined.clear()
                await membership.wait_joined(30)
                self._sync_group()
                continue
            if refused:
                self._refused(group, owned, refused, assigned=False)
            self._settle(owned)
            if moved:
                raise CommitFailedError(
                    f"group {group!r} rebalanced: "
                    + ", ".join(str(tp) for tp in moved)
                    + " moved to another member and were not committed (their records will be "
                    "read again by it); committed: "
                    + (", ".join(str(tp) for tp in sorted(owned)) or "none")
                )
            return
        raise CommitFailedError(
            f"group {group!r} kept rebalancing; nothing of "
            + ", ".join(str(tp) for tp in sorted(chosen))
            + " was committed"
        )

    def _refused(
        self,
        group: str,
        chosen: Mapping[TopicPartition, int],
        refused: Mapping[TopicPartition, ErrorCode],
        *,
        assigned: bool,
    ) -> None:
        codes = set(refused.values())
        if codes & {
            ErrorCode.ILLEGAL_GENERATION,
            ErrorCode.UNKNOWN_MEMBER_ID,
            ErrorCode.REBALANCE_IN_PROGRESS,
        }:
            raise CommitFailedError(
                f"cannot commit offsets of group {group!r}: "
                + (
                    "the group has live members, and this consumer assigned its partitions itself"
                    if assigned
                    else "this member is no longer in the group"
                )
                + "; nothing of "
                + ", ".join(str(tp) for tp in sorted(refused))
                + " was committed"
            )
        tp, code = next(iter(sorted(refused.items())))
        raise error_for(code, f"commit offset {chosen[tp]} of {tp} for group {group!r}")

    def _settle(self, committed: Mapping[TopicPartition, int]) -> None:
        for tp, offset in committed.items():
            fetch = self._fetches.get(tp)
            if fetch is not None:
                fetch.settled = offset

    async def committed(self, tp: TopicPartition) -> int | None:
        self._check_open()
        group = self._require_group("read committed offsets")
        found = await fetch_committed(self._cluster, group, [tp])
        return found.get(tp)

    # --- closing ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"consumer {self.client_id!r} is closed; make a new one")
        self._connection.check_open()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead.cancel()
            await asyncio.gather(ahead, return_exceptions=True)
        membership, self._membership = self._membership, None
        if membership is not None:
            await membership.leave()
        self._fetches.clear()
        self._order = []
        self._current = None
        await self._cluster.close_channel(self._channel)
        self._connection.forget_consumer(self)


def _next_offset(raw: memoryview) -> int:
    return read_header(raw).next_offset
