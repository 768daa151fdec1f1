"""Records: the unit the event log stores.

A :class:`Record` is what a producer sends: key, value, headers and a timestamp, all bytes
except the header names. A :class:`StoredRecord` is what a consumer receives: the same fields plus
where the log put it (topic, partition, offset).

Both are plain slotted dataclasses (not frozen: a frozen dataclass costs five times as much to
build, and consumers build hundreds of thousands a second). Treat them as values all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Header", "Record", "StoredRecord", "TopicPartition"]

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
