"""Idempotent producers: producer ids, and per partition the sequence ranges of their last batches.

Producer ids are handed out in blocks recorded in the topic ``__millstream_producer_ids``
(one record per block, the block's end as its value): a restarted broker starts after the last
recorded block, so an id is never given twice.

Sequence state is rebuilt from the log, not persisted: the first time a partition sees an
idempotent batch after the broker started, every batch header of the partition is read once
(producer id, epoch and base sequence are in the header) and the last
:data:`MAX_CACHED_BATCHES` batches of each producer are kept. That read runs in a worker thread
(:meth:`SequenceState.load`): the partition's idempotent appends wait for it, everything else is
served meanwhile. From then on appends keep it up to date. So the state survives any restart,
clean or not, exactly as far as the log does.

A producer's state is forgotten ``expiration_s`` after its last append (Kafka's
``producer.id.expiration.ms``; for state read from the log, after its last batch's timestamp),
and a partition keeps at most ``max_producers`` of them, forgetting the least recently active
first. A forgotten producer that writes again is taken as new.
"""

from __future__ import annotations

import asyncio
import enum
import time
from collections import deque
from dataclasses import dataclass, field

from ..groups import OFFSETS_TOPIC
from ..log import LogStore, Partition, encode_batch
from ..log.batch import BatchHeader, iter_batches
from ..record import Record

__all__ = [
    "BROKER_TOPICS",
    "HIDDEN_TOPICS",
    "MAX_CACHED_BATCHES",
    "PRODUCER_ID_TOPIC",
    "Check",
    "ProducerIds",
    "SequenceCheck",
    "SequenceState",
    "is_idempotent",
]

MAX_CACHED_BATCHES = 5
"""Batches remembered per producer and partition, as Kafka (max.in.flight ≤ 5 with idempotence)."""

PRODUCER_ID_TOPIC = "__millstream_producer_ids"
"""Where blocks of producer ids are recorded."""

BROKER_TOPICS = frozenset({OFFSETS_TOPIC, PRODUCER_ID_TOPIC})
"""The broker's own topics, which only it writes (groups' committed offsets, blocks of producer
ids): Produce, CreateTopics and DeleteTopics refuse them. ``__source_positions`` is written by
clients and is not among them."""

HIDDEN_TOPICS = BROKER_TOPICS - {OFFSETS_TOPIC}
"""The broker's own topics that Kafka does not have, left out of topic listings."""

_BLOCK = 1000
_INT32_MAX = (1 << 31) - 1


class ProducerIds:
    """Hands out producer ids that are never reused, across restarts too."""

    def __init__(self, store: LogStore) -> None:
        self._store = store
        self._next = 0
        self._block_end = 0

    def load(self) -> None:
        """Find the end of the last recorded block (none yet: the topic is made on first use)."""
        if not self._store.has_topic(PRODUCER_ID_TOPIC):
            return
        partition = self._store.topic(PRODUCER_ID_TOPIC).partition(0)
        end = 0
        for record in partition.iter_records(max(0, partition.high_watermark - 1)):
            end = max(end, int(record.value or b"0"))
        self._next = self._block_end = end

    async def allocate(self) -> int:
        """A producer id never handed out before."""
        if self._next >= self._block_end:
            block_end = self._block_end + _BLOCK
            if not self._store.has_topic(PRODUCER_ID_TOPIC):
                self._store.create_topic(PRODUCER_ID_TOPIC, 1)
            partition = self._store.topic(PRODUCER_ID_TOPIC).partition(0)
            batch = encode_batch([Record(key=b"block-end", value=str(block_end).encode())])
            result = partition.append(batch)
            await partition.durable(result.last_offset + 1)
            self._block_end = block_end
        producer_id = self._next
        self._next += 1
        return producer_id


class Check(enum.Enum):
    """What the sequence state says of a batch."""

    APPEND = "append"
    DUPLICATE = "duplicate"
    OUT_OF_ORDER = "out of order"
    FENCED = "fenced"


@dataclass(frozen=True, slots=True)
class SequenceCheck:
    """The verdict on one batch; for a duplicate, the offsets it got the first time."""

    check: Check
    base_offset: int = -1
    last_offset: int = -1
    message: str = ""


@dataclass(slots=True)
class _Entry:
    first_sequence: int
    last_sequence: int
    base_offset: int
    last_offset: int


@dataclass(slots=True)
class _Producer:
    epoch: int
    last_append_ms: int = 0
    batches: deque[_Entry] = field(default_factory=lambda: deque(maxlen=MAX_CACHED_BATCHES))


def _last_sequence(header: BatchHeader) -> int:
    last = header.base_sequence + header.last_offset_delta
    return last - _INT32_MAX - 1 if last > _INT32_MAX else last


class SequenceState:
    """Per partition, per producer id: its epoch and its last batches' sequences and offsets.

    Producers are kept per partition in order of their last append, the least recent first.
    """

    def __init__(self, expiration_s: float = 86400.0, max_producers: int = 1000) -> None:
        self.expiration_ms = int(expiration_s * 1000)
        self.max_producers = max_producers
        self._partitions: dict[tuple[str, int], dict[int, _Producer]] = {}
        self._loading: dict[tuple[str, int], asyncio.Future[None]] = {}

    def forget_topic(self, topic: str) -> None:
        """Drop the state of a deleted topic."""
        for key in [k for k in self._partitions if k[0] == topic]:
            del self._partitions[key]

    def loaded(self, partition: Partition) -> bool:
        """Whether ``partition``'s state is known (else :meth:`load` it before checking)."""
        return (partition.topic, partition.index) in self._partitions

    async def load(self, partition: Partition) -> None:
        """Rebuild ``partition``'s state from its batch headers in a worker thread; callers
        waiting at once share one read, and resume in the order they called."""
        key = (partition.topic, partition.index)
        if key in self._partitions:
            return
        loading = self._loading.get(key)
        if loading is None:
            loading = self._loading[key] = asyncio.ensure_future(self._load(key, partition))
            loading.add_done_callback(lambda _: self._loading.pop(key, None))
        await asyncio.shield(loading)

    async def _load(self, key: tuple[str, int], partition: Partition) -> None:
        producers = await asyncio.to_thread(self._scan, partition)
        if not partition.closed and key not in self._partitions:
            self._partitions[key] = producers

    def _scan(self, partition: Partition) -> dict[int, _Producer]:
        producers: dict[int, _Producer] = {}
        for header in _headers(partition):
            if header.producer_id >= 0:
                self._record(
                    producers, header, header.base_offset, header.last_offset, header.max_timestamp
                )
        return producers

    def _producers(self, partition: Partition) -> dict[int, _Producer]:
        key = (partition.topic, partition.index)
        producers = self._partitions.get(key)
        if producers is None:  # not loaded first: read it here, on the caller's thread
            producers = self._partitions[key] = self._scan(partition)
        return producers

    def check(self, partition: Partition, header: BatchHeader) -> SequenceCheck:
        """Whether the idempotent batch ``header`` should be appended to ``partition``."""
        producers = self._producers(partition)
        state = producers.get(header.producer_id)
        if state is None:
            return SequenceCheck(Check.APPEND)
        if header.producer_epoch < state.epoch:
            return SequenceCheck(
                Check.FENCED,
                message=f"producer {header.producer_id} epoch {header.producer_epoch} is older "
                f"than the current epoch {state.epoch}",
            )
        if header.producer_epoch > state.epoch:
            if header.base_sequence != 0:
                return SequenceCheck(
                    Check.OUT_OF_ORDER,
                    message=f"a new epoch {header.producer_epoch} of producer "
                    f"{header.producer_id} must start at sequence 0, not {header.base_sequence}",
                )
            return SequenceCheck(Check.APPEND)
        last = _last_sequence(header)
        for entry in state.batches:
            if entry.first_sequence == header.base_sequence and entry.last_sequence == last:
                return SequenceCheck(Check.DUPLICATE, entry.base_offset, entry.last_offset)
        if state.batches:
            expected = state.batches[-1].last_sequence + 1
            if expected > _INT32_MAX:
                expected = 0
            if header.base_sequence != expected:
                return SequenceCheck(
                    Check.OUT_OF_ORDER,
                    message=f"producer {header.producer_id} sent sequence "
                    f"{header.base_sequence} to {partition.name}; expected {expected}",
                )
        return SequenceCheck(Check.APPEND)

    def appended(self, partition: Partition, header: BatchHeader, base: int, last: int) -> None:
        """Record an idempotent batch that was appended at ``base``..``last``."""
        self._record(self._producers(partition), header, base, last, int(time.time() * 1000))

    def _record(
        self,
        producers: dict[int, _Producer],
        header: BatchHeader,
        base: int,
        last: int,
        now_ms: int,
    ) -> None:
        state = producers.pop(header.producer_id, None)  # put back last: the most recent
        if state is None or header.producer_epoch > state.epoch:
            state = _Producer(header.producer_epoch)
        producers[header.producer_id] = state
        state.last_append_ms = max(state.last_append_ms, now_ms)
        state.batches.append(_Entry(header.base_sequence, _last_sequence(header), base, last))
        self._expire(producers, now_ms)

    def _expire(self, producers: dict[int, _Producer], now_ms: int) -> None:
        """Forget the least recently active producers past the expiration time or the cap."""
        horizon = now_ms - self.expiration_ms
        while producers:
            oldest_id = next(iter(producers))
            oldest = producers[oldest_id]
            if len(producers) <= self.max_producers and oldest.last_append_ms >= horizon:
                return
            del producers[oldest_id]


def is_idempotent(records: bytes | None) -> bool:
    """Whether the first batch of a produce request's ``records`` carries a producer id and a
    sequence (read from its header, before any check of the batch)."""
    if records is None or len(records) < 61:
        return False
    producer_id = int.from_bytes(records[43:51], "big", signed=True)
    base_sequence = int.from_bytes(records[53:57], "big", signed=True)
    return producer_id >= 0 and base_sequence >= 0


def _headers(partition: Partition):
    """Every batch header of ``partition`` up to its log end, read a chunk at a time."""
    offset = partition.log_start_offset
    end = partition.high_watermark
    while offset < end:
        batches = partition.read(offset, 8 << 20)
        if not batches:
            return
        for raw in batches:
            for _, header in iter_batches(raw):
                yield header
                offset = max(offset, header.next_offset)
