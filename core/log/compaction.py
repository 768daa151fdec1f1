"""Log compaction for ``cleanup.policy=compact``: the newest record per key survives.

A pass reads every acknowledged record's key to learn each key's newest offset, then rewrites
the inactive segments (never the active one), keeping a record when it is its key's newest, or
has no key. A tombstone (a newest record with a null value) is kept until its batch is older
than ``delete.retention.ms``, so consumers that are behind still see the deletion.

Offsets never change: a batch whose records all survive is kept byte for byte; the survivors of
any other batch are re-encoded in runs of consecutive offsets, each run a batch whose
``baseOffset`` is its first record's offset. The rewritten segment is written beside the old one
as ``NNN.log.cleaned``, synced, and renamed over it; a crash in between leaves the old segment
whole and a leftover that the next open removes.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..record import Record, StoredRecord
from .batch import decode_records
from .encoder import encode_batch
from .segment import Segment

if TYPE_CHECKING:
    from .partition import Partition

__all__ = ["compact_partition"]


def compact_partition(partition: Partition, now_ms: int) -> int:
    """Compact ``partition``'s inactive segments; return how many records were removed.

    A pass reads the whole log, so it is skipped when it cannot change anything: no segment
    was rolled since the last pass and that pass left no tombstone waiting to expire.
    """
    inactive = [s for s in partition.segments[:-1] if s.dirty_bytes == 0]
    if not inactive:
        return 0
    active_base = partition.segments[-1].base_offset
    if partition.compacted_through == active_base:
        return 0
    newest, tombstones = _newest_offsets(partition)
    tombstone_horizon = now_ms - partition.config.delete_retention_ms
    removed = 0
    for segment in inactive:
        removed += _rewrite(partition, segment, newest, tombstone_horizon)
    # Tombstones below the active segment expire with time alone: pass again until they have.
    waiting = any(offset < active_base for offset in tombstones.values())
    partition.compacted_through = -1 if waiting else active_base
    return removed


def _newest_offsets(partition: Partition) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """Each key's newest acknowledged offset, and those of the keys whose newest record is a
    tombstone."""
    newest: dict[bytes, int] = {}
    tombstones: dict[bytes, int] = {}
    hw = partition.high_watermark
    for segment in partition.segments:
        for pos, header in segment.iter_headers():
            if header.base_offset >= hw:
                break
            for record in decode_records(segment.read_batch(pos, header)):
                key = record.key
                if key is not None and record.offset < hw:
                    newest[key] = record.offset
                    if record.value is None:
                        tombstones[key] = record.offset
                    else:
                        tombstones.pop(key, None)
    return newest, tombstones


def _rewrite(
    partition: Partition, segment: Segment, newest: dict[bytes, int], tombstone_horizon: int
) -> int:
    out: list[bytes] = []
    removed = 0
    for pos, header in segment.iter_headers():
        batch = segment.read_batch(pos, header)
        if header.is_control:
            out.append(batch)
            continue
        records = decode_records(batch)
        expired = header.max_timestamp < tombstone_horizon
        keep = [r for r in records if _survives(r, newest, expired)]
        if len(keep) == len(records):
            out.append(batch)
            continue
        removed += len(records) - len(keep)
        for run in _consecutive_runs(keep):
            out.append(
                bytes(
                    encode_batch(
                        [Record(r.key, r.value, r.headers, r.timestamp) for r in run],
                        base_offset=run[0].offset,
                        compression=header.compression,
                    )
                )
            )
    if not removed:
        return 0
    cleaned = segment.path.with_name(segment.path.name + ".cleaned")
    with open(cleaned, "wb") as f:
        for batch in out:
            f.write(batch)
        f.flush()
        os.fsync(f.fileno())
    segment.close()
    for index_path in (segment.index.path, segment.time_index.path):
        index_path.unlink(missing_ok=True)
    os.replace(cleaned, segment.path)
    dir_fd = os.open(segment.directory, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    replacement = Segment(segment.directory, segment.base_offset, writable=True)
    replacement.index_interval = segment.index_interval
    replacement.contiguous = False
    replacement.open_existing(full_scan=True)
    replacement.synced_size = replacement.size
    partition.replace_segment(segment, replacement)
    return removed


def _survives(record: StoredRecord, newest: dict[bytes, int], tombstone_expired: bool) -> bool:
    if record.key is None:
        return True
    if newest.get(record.key, record.offset) != record.offset:
        return False
    return not (record.value is None and tombstone_expired)


def _consecutive_runs(records: list[StoredRecord]) -> list[list[StoredRecord]]:
    runs: list[list[StoredRecord]] = []
    for record in records:
        if runs and runs[-1][-1].offset + 1 == record.offset:
            runs[-1].append(record)
        else:
            runs.append([record])
    return runs
