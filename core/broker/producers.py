"""Idempotent producers: producer ids, and per partition the sequence ranges of their last batches.

Producer ids are handed out in blocks recorded in the topic ``__millstream_producer_ids``
(one record per block, the block's end as its value): a restarted broker starts after the last
recorded block, so an id is never given twice.

Sequence state is rebuilt from the log, not persisted: the first time a partition sees an
idempotent batch after the broker started, every batch header of the partition is read once
(producer id, epoch and base sequence are in the header) and the last
:data:`MAX_CACHED_BATCHES` batches of each producer are kept. From then on appends keep it up to
date. So the state survives any restart, clean or not, exactly as far as the log does.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass, field

from ..log import LogStore, Partition, encode_batch
from ..log.batch import BatchHeader, iter_batches
from ..record import Record

__all__ = [
    "MAX_CACHED_BATCHES",
    "PRODUCER_ID_TOPIC",
    "Check",
    "ProducerIds",
    "SequenceCheck",
    "SequenceState",
]

MAX_CACHED_BATCHES = 5
"""Batches remembered per producer and partition, as Kafka (max.in.flight ≤ 5 with idempotence)."""

PRODUCER_ID_TOPIC = "__millstream_producer_ids"
"""Where blocks of producer ids are recorded."""

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
    batches: deque[_Entry] = field(default_factory=lambda: deque(maxlen=MAX_CACHED_BATCHES))


def _last_sequence(header: BatchHeader) -> int:
    last = header.base_sequence + header.last_offset_delta
    return last - _INT32_MAX - 1 if last > _INT32_MAX else last


class SequenceState:
    """Per partition, per producer id: its epoch and its last batches' sequences and offsets."""

    def __init__(self) -> None:
        self._partitions: dict[tuple[str, int], dict[int, _Producer]] = {}

    def forget_topic(self, topic: str) -> None:
        """Drop the state of a deleted topic."""
        for key in [k for k in self._partitions if k[0] == topic]:
            del self._partitions[key]

    def _producers(self, partition: Partition) -> dict[int, _Producer]:
        key = (partition.topic, partition.index)
        producers = self._partitions.get(key)
        if producers is None:
            producers = self._partitions[key] = {}
            for header in _headers(partition):
                if header.producer_id >= 0:
                    self._record(producers, header, header.base_offset, header.last_offset)
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
        self._record(self._producers(partition), header, base, last)

    @staticmethod
    def _record(producers: dict[int, _Producer], header: BatchHeader, base: int, last: int) -> None:
        state = producers.get(header.producer_id)
        if state is None or header.producer_epoch > state.epoch:
            state = producers[header.producer_id] = _Producer(header.producer_epoch)
        state.batches.append(_Entry(header.base_sequence, _last_sequence(header), base, last))


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
