"""The embedded consumer: reads partitions of the log in-process.

Each partition it reads has a :class:`_Fetch`: the log partition, the position (the next offset
to return), the batches read but not yet decoded and a buffer of decoded records. A fetch reads
whole batches from the log (up to ``_FETCH_BYTES`` at a time) and decodes them one at a time, as
they are needed; ``getmany`` and ``async for`` hand out slices of the buffer, so the per-record
work is the decoding alone. Decoding a batch only when its records are wanted keeps few decoded
records waiting in a consumer of many partitions: they are short-lived objects that the cyclic
garbage collector would otherwise walk, and age, while they wait.

With a group, membership goes through the connection's :class:`GroupCoordinator`. The consumer
notices a rebalance before it returns records (its member's generation has moved on): it drops
the partitions taken from it, buffered records included, and starts the partitions given to it
at the group's committed offset (else where ``auto_offset_reset`` says).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sized
from typing import TYPE_CHECKING, TypeVar

from ...errors import (
    CommitFailedError,
    InvalidOffsetError,
    ReadOnlyStoreError,
    StoreClosedError,
    StoreError,
)
from ...log.batch import decode_columns, decode_records, read_header
from ...record import RecordBlock, StoredRecord, TopicPartition
from ..interface import Consumer, OffsetReset, checked_consumer_settings

if TYPE_CHECKING:
    from ...groups import Member
    from ...log.partition import Partition
    from .connection import EmbeddedConnection

__all__ = ["EmbeddedConsumer"]

_FETCH_BYTES = 1 << 20

_Taken = TypeVar("_Taken", bound=Sized)


class _Fetch:
    """One partition being read: where, and what is buffered."""

    __slots__ = (
        "block",
        "end",
        "index",
        "partition",
        "pending",
        "position",
        "records",
        "settled",
        "tp",
    )

    def __init__(self, tp: TopicPartition, partition: Partition) -> None:
        self.tp = tp
        self.partition = partition
        self.position: int | None = None  # None: not chosen yet (committed offset or reset)
        self.records: list[StoredRecord] = []
        self.index = 0
        self.end = 0  # the offset after the batch decoded last
        self.pending: list[bytes] = []  # batches read after it, not yet decoded, last first
        # what getmany_blocks left of the batch decoded last (then ``records`` is empty)
        self.block: RecordBlock | None = None
        # the position last committed, or started from: commit() writes a position only once
        # it has moved past this, and a partition taken away beyond it had uncommitted progress
        self.settled: int | None = None

    def clear(self) -> None:
        self.records = []
        self.index = 0
        self.pending = []
        self.block = None


class EmbeddedConsumer(Consumer):
    """A consumer of the embedded log, alone or as a member of an in-process group."""

    def __init__(
        self,
        connection: EmbeddedConnection,
        *,
        group: str | None,
        auto_offset_reset: OffsetReset | str,
        max_poll_records: int,
        client_id: str,
    ) -> None:
        self._reset = checked_consumer_settings(group, auto_offset_reset, max_poll_records)
        self._connection = connection
        self._group = group
        self._max_poll = max_poll_records
        self.client_id = client_id
        self._member: Member | None = None
        self._generation = -1
        self._topics: frozenset[str] = frozenset()  # subscribed, without a group
        self._fetches: dict[TopicPartition, _Fetch] = {}
        self._order: list[_Fetch] = []
        self._turn = 0
        self._current: _Fetch | None = None
        self._revoked: dict[TopicPartition, int] = {}  # consumed, uncommitted, then taken away
        self._closed = False

    # --- what to read ----------------------------------------------------------------------

    def subscribe(self, topics: Iterable[str]) -> None:
        self._check_open()
        if isinstance(topics, str):
            topics = [topics]
        names = frozenset(topics)
        store = self._connection.store
        for name in names:
            store.topic(name)  # UnknownTopicError says how to create it
        if self._group is None:
            self._topics = names
            self._set_assignment(self._all_partitions(names))
            return
        coordinator = self._connection.coordinator
        if self._member is None:
            self._member = coordinator.join(self._group, names, self.client_id)
        else:
            coordinator.subscribe(self._member, names)
        self._sync_group()

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        self._check_open()
        chosen = frozenset(partitions)
        for tp in chosen:
            self._connection.store.topic(tp.topic).partition(tp.partition)
        if self._member is not None:
            self._connection.coordinator.leave(self._member)
            self._member = None
        self._topics = frozenset()
        self._set_assignment(chosen)

    def assignment(self) -> frozenset[TopicPartition]:
        self._sync_group()
        return frozenset(self._fetches)

    def _all_partitions(self, topics: Iterable[str]) -> frozenset[TopicPartition]:
        store = self._connection.store
        return frozenset(
            TopicPartition(name, p)
            for name in topics
            for p in range(len(store.topic(name).partitions))
        )

    def _set_assignment(self, partitions: frozenset[TopicPartition], regained=()) -> None:
        store = self._connection.store
        for tp in list(self._fetches):
            if tp not in partitions:
                fetch = self._fetches.pop(tp)
                if fetch.position is not None and fetch.position != fetch.settled:
                    self._revoked[tp] = fetch.position
        for tp in sorted(partitions):
            if tp not in self._fetches or tp in regained:
                self._fetches[tp] = _Fetch(tp, store.topic(tp.topic).partition(tp.partition))
                self._revoked.pop(tp, None)
        self._order = [self._fetches[tp] for tp in sorted(self._fetches)]
        self._current = None

    def _sync_group(self) -> None:
        member = self._member
        if member is None:
            if self._topics and not self._closed:
                self._follow_topics()
            return
        if member.generation == self._generation and not member.changed.is_set():
            return
        before = self._generation
        partitions = self._connection.coordinator.sync(member)
        regained = {tp for tp, since in member.assignment.items() if since > before}
        self._generation = member.generation
        self._set_assignment(partitions, regained)

    def _follow_topics(self) -> None:
        # without a group, a subscription follows partition growth of its topics
        store = self._connection.store
        count = sum(
            len(store.topic(name).partitions) for name in self._topics if store.has_topic(name)
        )
        if count != len(self._fetches):
            self._set_assignment(
                self._all_partitions(n for n in self._topics if store.has_topic(n))
            )

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

    def _start(self, fetch: _Fetch) -> int:
        """Choose the position of a partition that has none: committed offset, else reset."""
        committed = None
        if self._group is not None:
            if self._connection.store.read_only:
                self._connection.offsets.refresh()
            committed = self._connection.coordinator.committed(self._group, fetch.tp)
        partition = fetch.partition
        if committed is not None and (
            partition.log_start_offset <= committed <= partition.log_end_offset
        ):
            fetch.settled = committed
        else:
            fetch.settled = self._reset_position(fetch, committed)
        return fetch.settled

    def _reset_position(self, fetch: _Fetch, offset: int | None) -> int:
        partition = fetch.partition
        if self._reset is OffsetReset.EARLIEST:
            return partition.log_start_offset
        if self._reset is OffsetReset.LATEST:
            return partition.high_watermark
        where = "no committed offset" if offset is None else f"offset {offset} is out of range"
        raise InvalidOffsetError(
            f"{fetch.tp}: {where} (valid: {partition.log_start_offset} to "
            f"{partition.log_end_offset}) and auto_offset_reset is 'none'; seek first, or use "
            "auto_offset_reset 'earliest' or 'latest'"
        )

    def position(self, tp: TopicPartition) -> int:
        fetch = self._fetch(tp)
        if fetch.position is None:
            fetch.position = self._start(fetch)
        return fetch.position

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if not isinstance(offset, int) or offset < 0:
            raise InvalidOffsetError(f"cannot seek {tp} to {offset!r}: an offset is an int >= 0")
        fetch = self._fetch(tp)
        partition = fetch.partition
        fetch.position = min(max(offset, partition.log_start_offset), partition.log_end_offset)
        fetch.clear()
        if self._current is fetch:
            self._current = None

    def _targets(self, partitions: tuple[TopicPartition, ...]) -> list[_Fetch]:
        if partitions:
            return [self._fetch(tp) for tp in partitions]
        self._check_open()
        self._sync_group()
        return list(self._order)

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        for fetch in self._targets(partitions):
            self.seek(fetch.tp, fetch.partition.log_start_offset)

    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        for fetch in self._targets(partitions):
            self._refresh(fetch)
            self.seek(fetch.tp, fetch.partition.high_watermark)

    async def seek_to_timestamp(self, timestamp_ms: int, *partitions: TopicPartition) -> None:
        for fetch in self._targets(partitions):
            self._refresh(fetch)
            found = fetch.partition.offset_for_timestamp(timestamp_ms)
            self.seek(fetch.tp, fetch.partition.high_watermark if found is None else found)

    def _refresh(self, fetch: _Fetch) -> None:
        if self._connection.store.read_only:
            fetch.partition.refresh()

    # --- reading ---------------------------------------------------------------------------

    def _fill_one(self, fetch: _Fetch) -> bool:
        """Decode the next batch of ``fetch`` that has records into its buffer, reading more
        from the log when none is pending; False at the end."""
        if fetch.block is not None:  # what getmany_blocks left of a batch comes first
            fetch.records, fetch.index, fetch.block = fetch.block.records(), 0, None
            return True
        topic, index = fetch.tp.topic, fetch.tp.partition
        while True:
            if not fetch.pending and not self._read_more(fetch):
                return False
            raw = fetch.pending.pop()
            records = decode_records(raw, topic, index, min_offset=fetch.position or 0)
            fetch.end = read_header(raw).next_offset
            if records:
                fetch.records = records
                fetch.index = 0
                return True
            fetch.position = fetch.end  # a control batch, or records compacted away

    def _read_more(self, fetch: _Fetch) -> bool:
        """Read the batches from ``fetch``'s position into its pending list; False when there
        are none yet."""
        position = fetch.position
        if position is None:
            position = fetch.position = self._start(fetch)
        partition = fetch.partition
        if position >= partition.high_watermark:
            if not self._connection.store.read_only:
                return False
            partition.refresh()  # follow what the owning process wrote since
            if position >= partition.high_watermark:
                return False
        try:
            batches = partition.read(position, _FETCH_BYTES)
        except InvalidOffsetError:  # retention or a truncation moved the log under us
            position = fetch.position = self._reset_position(fetch, position)
            batches = partition.read(position, _FETCH_BYTES)
        batches.reverse()
        fetch.pending = batches
        return bool(batches)

    def _take(self, fetch: _Fetch, limit: int) -> list[StoredRecord]:
        """Up to ``limit`` records of ``fetch``: those buffered, then those of the batches
        pending, reading from the log only when nothing else is at hand."""
        taken: list[StoredRecord] | None = None
        while True:
            records = fetch.records
            index = fetch.index
            if index >= len(records):
                if taken is not None and not fetch.pending:
                    break
                if not self._fill_one(fetch):
                    break
                records = fetch.records
                index = 0
            room = limit if taken is None else limit - len(taken)
            # the whole buffer is handed over, not copied
            whole = index == 0 and len(records) <= room
            chunk = records if whole else records[index : index + room]
            index += len(chunk)
            if index >= len(records):
                fetch.records = []
                fetch.index = 0
                fetch.position = fetch.end
            else:
                fetch.index = index
                fetch.position = chunk[-1].offset + 1
            if taken is None:
                taken = chunk
            else:
                taken += chunk
            if len(taken) >= limit:
                break
        return [] if taken is None else taken

    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[StoredRecord]]:
        return await self._poll(self._take, timeout_ms, max_records)

    async def getmany_blocks(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, RecordBlock]:
        return await self._poll(self._take_block, timeout_ms, max_records)

    async def _poll(
        self,
        take: Callable[[_Fetch, int], _Taken | None],
        timeout_ms: int,
        max_records: int | None,
    ) -> dict[TopicPartition, _Taken]:
        """What getmany and getmany_blocks share: up to ``limit`` records in all, taken from
        the partitions in turn (a different one first each call), waiting for the first."""
        self._check_open()
        limit = self._max_poll if max_records is None else max_records
        if limit < 1:
            raise ValueError(f"max_records must be >= 1, not {limit}")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0, timeout_ms) / 1000
        while True:
            self._sync_group()
            out: dict[TopicPartition, _Taken] = {}
            order = self._order
            count = len(order)
            remaining = limit
            for i in range(count):
                fetch = order[(self._turn + i) % count]
                taken = take(fetch, remaining)
                if taken:
                    out[fetch.tp] = taken
                    remaining -= len(taken)
                    if remaining <= 0:
                        break
            if count:
                self._turn = (self._turn + 1) % count
            self._current = None
            if out:
                return out
            left = deadline - loop.time()
            if left <= 0:
                return out
            await self._wait(left)
            self._check_open()

    def _take_block(self, fetch: _Fetch, limit: int) -> RecordBlock | None:
        """Up to ``limit`` records of ``fetch`` as one block: what an earlier call left of a
        batch, then the pending batches decoded field by field, reading from the log only when
        nothing else is at hand. Records that getmany decoded one by one come first, alone."""
        tp = fetch.tp
        if fetch.index < len(fetch.records):
            index = fetch.index
            chunk = fetch.records[index : index + limit]
            index += len(chunk)
            if index >= len(fetch.records):
                fetch.records, fetch.index, fetch.position = [], 0, fetch.end
            else:
                fetch.index, fetch.position = index, chunk[-1].offset + 1
            return RecordBlock.of_records(tp.topic, tp.partition, chunk)
        blocks: list[RecordBlock] = []
        room = limit
        while room > 0:
            block = fetch.block
            if block is not None:
                fetch.block = None
            else:
                if not fetch.pending and (blocks or not self._read_more(fetch)):
                    break
                raw = fetch.pending.pop()
                block = decode_columns(raw, tp.topic, tp.partition, min_offset=fetch.position or 0)
                fetch.end = read_header(raw).next_offset
            size = len(block)
            if size > room:  # the rest waits for the next call
                fetch.block = block.slice(room, size)
                block = block.slice(0, room)
                fetch.position = block.offsets[-1] + 1
            else:
                fetch.position = fetch.end
            if block:
                blocks.append(block)
                room -= len(block)
        if not blocks:
            return None
        return RecordBlock.joined(blocks)

    def _next_buffered(self) -> StoredRecord | None:
        member = self._member
        if member is not None and member.generation != self._generation:
            self._sync_group()
        fetch = self._current
        if fetch is None or fetch.index >= len(fetch.records):
            fetch = self._current = next((f for f in self._order if f.index < len(f.records)), None)
            if fetch is None:
                return None
        record = fetch.records[fetch.index]
        fetch.index += 1
        if fetch.index >= len(fetch.records):
            fetch.records = []
            fetch.index = 0
            fetch.position = fetch.end
            self._current = None
        else:
            fetch.position = record.offset + 1
        return record

    async def _fill(self, timeout_ms: int) -> None:
        self._check_open()
        self._sync_group()
        if any(self._fill_one(fetch) for fetch in self._order if fetch.index >= len(fetch.records)):
            return
        await self._wait(timeout_ms / 1000)
        self._check_open()
        self._sync_group()
        for fetch in self._order:
            if fetch.index >= len(fetch.records):
                self._fill_one(fetch)

    async def _wait(self, timeout_s: float) -> None:
        """Wait until a partition has records past its position, the assignment changes, or
        ``timeout_s`` passes."""
        waits: list[asyncio.Future[object]] = []
        for fetch in self._order:
            if fetch.position is None:
                fetch.position = self._start(fetch)
            waits.append(
                asyncio.ensure_future(fetch.partition.wait_for_data(fetch.position, timeout_s))
            )
        if self._member is not None:
            waits.append(asyncio.ensure_future(self._member.changed.wait()))
        if not waits:
            await asyncio.sleep(timeout_s)
            return
        try:
            await asyncio.wait(waits, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waits:
                waiter.cancel()

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
        store = self._connection.store
        if store.read_only:
            raise ReadOnlyStoreError.during(store.path, f"commit offsets for group {group!r}")
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
        coordinator = self._connection.coordinator
        member, generation = self._member, self._generation
        # a committer that may commit nothing is refused here; after this, a CommitFailedError
        # means the partitions still owned were committed and the moved ones were not
        moved = set(coordinator.check_commit(group, chosen, member=member, generation=generation))
        try:
            await coordinator.commit(group, chosen, member=member, generation=generation)
        except CommitFailedError:
            self._settle(chosen, moved)
            raise
        self._settle(chosen, moved)

    def _settle(self, committed: Mapping[TopicPartition, int], moved: set[TopicPartition]) -> None:
        for tp, offset in committed.items():
            fetch = self._fetches.get(tp)
            if fetch is not None and tp not in moved:
                fetch.settled = offset

    async def committed(self, tp: TopicPartition) -> int | None:
        self._check_open()
        group = self._require_group("read committed offsets")
        if self._connection.store.read_only:
            self._connection.offsets.refresh()
        return self._connection.coordinator.committed(group, tp)

    # --- closing ---------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"consumer {self.client_id!r} is closed; make a new one")
        self._connection.check_open()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._member is not None:
            self._connection.coordinator.leave(self._member)
            self._member = None
        self._fetches.clear()
        self._order = []
        self._current = None
        self._connection.forget_consumer(self)
