"""Records: the unit the event log stores.

A :class:`Record` is what a producer sends: key, value, headers and a timestamp, all bytes
except the header names. A :class:`StoredRecord` is what a consumer receives: the same fields plus
where the log put it (topic, partition, offset). A :class:`RecordBlock` is many stored records of
one partition laid out field by field, the batch-level way to read: it has no object per record
but the record's value (and key).

Both are plain slotted dataclasses (not frozen: a frozen dataclass costs five times as much to
build, and consumers build hundreds of thousands a second). Treat them as values all the same.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import chain

__all__ = ["Header", "Record", "RecordBlock", "StoredRecord", "TopicPartition"]

Header = tuple[str, bytes]
"""One record header: a name (text) and a value (bytes)."""


@dataclass(slots=True)
class Record:
    """A record to be written: ``timestamp`` is milliseconds since the epoch; 0 means "now"."""

    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
    timestamp: int = 0


@dataclass(slots=True)
class StoredRecord:
    """A record read back from the log, with the place the log gave it."""

    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = field(default=())


@dataclass(frozen=True, slots=True, order=True)
class TopicPartition:
    """One partition of one topic."""

    topic: str
    partition: int

    def __str__(self) -> str:
        return f"{self.topic}-{self.partition}"


@dataclass(slots=True)
class RecordBlock:
    """Stored records of one partition, in offset order, field by field.

    Record ``i`` is ``offsets[i]``, ``timestamps[i]``, ``keys[i]``, ``values[i]`` and
    ``headers[i]``. The columns share what records have in common: ``offsets`` is a ``range``
    when the offsets follow each other, and a timestamp, a null key or the empty headers shared
    by many records is one object. Treat the columns as read-only.
    """

    topic: str
    partition: int
    offsets: Sequence[int]
    timestamps: Sequence[int]
    keys: Sequence[bytes | None]
    values: Sequence[bytes | None]
    headers: Sequence[tuple[Header, ...]]

    def __len__(self) -> int:
        return len(self.values)

    def records(self) -> list[StoredRecord]:
        """The block's records as :class:`StoredRecord` objects."""
        topic, partition = self.topic, self.partition
        return [
            StoredRecord(topic, partition, o, t, k, v, h)
            for o, t, k, v, h in zip(
                self.offsets, self.timestamps, self.keys, self.values, self.headers, strict=True
            )
        ]

    def slice(self, start: int, stop: int) -> RecordBlock:
        """Records ``start`` to ``stop`` (list indices) as a block of their own."""
        return RecordBlock(
            self.topic,
            self.partition,
            self.offsets[start:stop],
            self.timestamps[start:stop],
            self.keys[start:stop],
            self.values[start:stop],
            self.headers[start:stop],
        )

    @classmethod
    def joined(cls, blocks: Sequence[RecordBlock]) -> RecordBlock:
        """Consecutive blocks of one partition as one (the first itself when it is alone)."""
        first = blocks[0]
        if len(blocks) == 1:
            return first
        return cls(
            first.topic,
            first.partition,
            list(chain.from_iterable(b.offsets for b in blocks)),
            list(chain.from_iterable(b.timestamps for b in blocks)),
            list(chain.from_iterable(b.keys for b in blocks)),
            list(chain.from_iterable(b.values for b in blocks)),
            list(chain.from_iterable(b.headers for b in blocks)),
        )

    @classmethod
    def of_records(cls, topic: str, partition: int, records: Sequence[StoredRecord]) -> RecordBlock:
        """A block of ``records`` (all of ``topic``/``partition``)."""
        return cls(
            topic,
            partition,
            [r.offset for r in records],
            [r.timestamp for r in records],
            [r.key for r in records],
            [r.value for r in records],
            [r.headers for r in records],
        )
