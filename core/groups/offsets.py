"""Committed consumer offsets, kept in the internal compacted topic ``__consumer_offsets``.

:class:`OffsetStore` holds every group's committed offsets in memory and writes each commit to
the log as Kafka does (records laid out by :mod:`._codec`), so the offsets survive a restart and
compaction keeps only the newest per group and partition. A group's records go to partition
``abs(javaHashCode(group)) % partitions`` of the topic, which is where Kafka would put them; the
embedded store creates the topic with one partition.

Contracts:

- :meth:`OffsetStore.open` loads the whole topic. A store opened read-only follows what the
  owning process commits by calling :meth:`OffsetStore.refresh`.
- :meth:`OffsetStore.commit` returns once the commit is durable (the topic's ``flush.policy``),
  and only then do :meth:`committed` and :meth:`offsets` show it.
- Offsets never expire; they go when a group or topic is deleted (a tombstone per partition).
- A record of the topic that is not an offset this store can read (written by something else, or
  damaged) is skipped with a logged warning; it never makes the offsets unusable.
- Nothing here checks who may commit; that is :class:`~.coordinator.GroupCoordinator`'s job.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from ..errors import CorruptBatchError, InvalidOffsetError, ReadOnlyStoreError
from ..log.encoder import encode_batch
from ..record import Record, StoredRecord, TopicPartition
from ._codec import OffsetAndMetadata, decode_key, decode_value, encode_key, encode_value

if TYPE_CHECKING:
    from ..log.partition import Partition
    from ..log.store import LogStore

__all__ = [
    "OFFSETS_TOPIC",
    "OFFSETS_TOPIC_CONFIG",
    "OffsetStore",
    "offsets_partition",
]

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
"""The internal compacted topic that holds committed offsets."""

OFFSETS_TOPIC_CONFIG: Mapping[str, str] = MappingProxyType(
    {"cleanup.policy": "compact", "segment.bytes": "104857600"}
)
"""The configs ``__consumer_offsets`` is created with: compacted, in segments of 100 MiB (Kafka's
``offsets.topic.segment.bytes``) so that compaction soon has closed segments to work on."""

_RECORDS_PER_BATCH = 2000


def _java_hash(text: str) -> int:
    """Java's ``String.hashCode`` (over UTF-16 code units), as a signed 32-bit int."""
    h = 0
    raw = text.encode("utf-16-be")
    for i in range(0, len(raw), 2):
        h = (31 * h + ((raw[i] << 8) | raw[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h >= 1 << 31 else h


def offsets_partition(group: str, partitions: int) -> int:
    """The partition of ``__consumer_offsets`` that holds ``group``'s offsets, as in Kafka."""
    h = _java_hash(group)
    return (0 if h == -(1 << 31) else abs(h)) % partitions


class OffsetStore:
    """Every group's committed offsets: in memory, and durable in ``__consumer_offsets``."""

    def __init__(self, store: LogStore) -> None:
        self._store = store
        self._groups: dict[str, dict[TopicPartition, OffsetAndMetadata]] = {}
        self._loaded: dict[int, int] = {}  # partition index -> next offset to load

    @classmethod
    def open(cls, store: LogStore) -> OffsetStore:
        """Load the committed offsets of ``store``, creating the topic when it is missing
        (and the store writable).

        A writable store whose topic was made before it had a segment size of its own gets
        the one of :data:`OFFSETS_TOPIC_CONFIG`, so that compaction can keep it small.
        """
        if not store.read_only:
            if not store.has_topic(OFFSETS_TOPIC):
                store.create_topic(OFFSETS_TOPIC, 1, OFFSETS_TOPIC_CONFIG)
            elif "segment.bytes" not in store.topic(OFFSETS_TOPIC).config.overrides:
                segment_bytes = OFFSETS_TOPIC_CONFIG["segment.bytes"]
                store.alter_topic(OFFSETS_TOPIC, config={"segment.bytes": segment_bytes})
        offsets = cls(store)
        offsets.refresh()
        return offsets

    # --- reading ---------------------------------------------------------------------------

    def _partitions(self) -> list[Partition]:
        if not self._store.has_topic(OFFSETS_TOPIC):
            return []
        return list(self._store.topic(OFFSETS_TOPIC).partitions)

    def refresh(self) -> None:
        """Load the offset records written since the last load (a read-only store sees what
        its owner has made durable; the owner's own commits are applied as they are made)."""
        for partition in self._partitions():
            partition.refresh()  # read-only: follow the owner's appends (no-op when writable)
            start = self._loaded.get(partition.index, 0)
            if start < partition.log_start_offset or start > partition.log_end_offset:
                start = partition.log_start_offset
            offset = start
            for record in partition.iter_records(start):
                offset = record.offset + 1
                self._load(record)
            self._loaded[partition.index] = offset

    def _load(self, record: StoredRecord) -> None:
        """Apply one record of the topic; skip it, with a warning, when it cannot be read."""
        try:
            if record.key is None:
                raise CorruptBatchError("it has no key")
            self._apply(record.key, record.value)
        except CorruptBatchError as exc:
            log.warning(
                "skipped the record at offset %d of %s-%d: it is not a committed offset (%s)",
                record.offset,
                record.topic,
                record.partition,
                exc,
            )

    def _apply(self, key: bytes, value: bytes | None) -> None:
        place = decode_key(key)
        if place is None:
            return
        group, tp = place
        if value is None:
            offsets = self._groups.get(group)
            if offsets is not None:
                offsets.pop(tp, None)
                if not offsets:
                    del self._groups[group]
        else:
            self._groups.setdefault(group, {})[tp] = decode_value(value)

    def committed(self, group: str, tp: TopicPartition) -> OffsetAndMetadata | None:
        """The offset ``group`` committed for ``tp``, or None."""
        offsets = self._groups.get(group)
        return offsets.get(tp) if offsets else None

    def offsets(self, group: str) -> dict[TopicPartition, OffsetAndMetadata]:
        """Every offset ``group`` has committed, by partition (sorted)."""
        return dict(sorted(self._groups.get(group, {}).items()))

    def groups(self) -> list[str]:
        """The groups that have committed offsets, sorted."""
        return sorted(self._groups)

    # --- writing ---------------------------------------------------------------------------

    async def commit(
        self,
        group: str,
        offsets: Mapping[TopicPartition, int | OffsetAndMetadata],
    ) -> None:
        """Store ``group``'s offsets durably, then make them visible."""
        now = int(time.time() * 1000)
        entries: dict[TopicPartition, OffsetAndMetadata | None] = {}
        for tp, given in offsets.items():
            committed = given if isinstance(given, OffsetAndMetadata) else OffsetAndMetadata(given)
            if committed.offset < 0:
                raise InvalidOffsetError(
                    f"cannot commit offset {committed.offset} for {tp} in group {group!r}: "
                    "an offset is >= 0"
                )
            if committed.commit_timestamp < 0:
                committed = committed._replace(commit_timestamp=now)
            entries[tp] = committed
        await self._write(group, entries, action=f"commit offsets for group {group!r}")

    async def delete(self, group: str, partitions: Iterable[TopicPartition] | None = None) -> None:
        """Forget ``group``'s offsets in ``partitions`` (all of them when None)."""
        known = self._groups.get(group, {})
        chosen = list(known) if partitions is None else [tp for tp in partitions if tp in known]
        if chosen:
            await self._write(
                group, dict.fromkeys(chosen), action=f"delete offsets of group {group!r}"
            )

    async def forget_topic(self, topic: str) -> None:
        """Forget every group's offsets in ``topic`` (the topic was deleted)."""
        for group in self.groups():
            doomed = [tp for tp in self._groups.get(group, {}) if tp.topic == topic]
            if doomed:
                await self.delete(group, doomed)

    async def _write(
        self, group: str, entries: Mapping[TopicPartition, OffsetAndMetadata | None], action: str
    ) -> None:
        if self._store.read_only:
            raise ReadOnlyStoreError.during(self._store.path, action)
        if not entries:
            return
        partitions = self._partitions()
        if not partitions:  # deleted behind our back: make it again
            self._store.create_topic(OFFSETS_TOPIC, 1, OFFSETS_TOPIC_CONFIG)
            partitions = self._partitions()
        partition = partitions[offsets_partition(group, len(partitions))]
        records = [
            Record(encode_key(group, tp), None if value is None else encode_value(value))
            for tp, value in entries.items()
        ]
        last = -1
        for start in range(0, len(records), _RECORDS_PER_BATCH):
            result = partition.append(encode_batch(records[start : start + _RECORDS_PER_BATCH]))
            last = result.last_offset
        await partition.durable(last + 1)
        for tp, value in entries.items():
            if value is None:
                known = self._groups.get(group)
                if known is not None:
                    known.pop(tp, None)
                    if not known:
                        del self._groups[group]
            else:
                self._groups.setdefault(group, {})[tp] = value
        self._loaded[partition.index] = max(self._loaded.get(partition.index, 0), last + 1)
