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

A pass has two halves, so that a server can run the long one off its event loop:
:func:`prepare_compaction` reads the log and writes the ``.cleaned`` files (it only reads the
partition, so it may run in a worker thread while the event loop appends and reads), and
:func:`finish_compaction` swaps them in (on the thread that owns the partition, between its
appends and reads).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..record import Record, StoredRecord
from .batch import decode_records
from .encoder import encode_batch
from .segment import Segment

if TYPE_CHECKING:
    from .partition import Partition

__all__ = ["CompactionPlan", "compact_partition", "finish_compaction", "prepare_compaction"]


@dataclass
class CompactionPlan:
    """What :func:`prepare_compaction` wrote: per rewritten segment its ``.cleaned`` file and
    how many records it dropped, and how far the partition is compacted once they are in."""

    rewrites: list[tuple[Segment, Path, int]] = field(default_factory=list)
    compacted_through: int = -1


def compact_partition(partition: Partition, now_ms: int) -> int:
    """Compact ``partition``'s inactive segments in this thread; return how many records were
    removed.

    A pass reads the whole log, so it is skipped when it cannot change anything: no segment
    was rolled since the last pass and that pass left no tombstone waiting to expire.
    """
    plan = prepare_compaction(partition, now_ms)
    return 0 if plan is None else finish_compaction(partition, plan)


def prepare_compaction(partition: Partition, now_ms: int) -> CompactionPlan | None:
    """The reading half of a pass: write a ``.cleaned`` file per inactive segment that loses
    records; None when the pass can change nothing. Safe in a worker thread while the
    partition is appended to and read (it reads acknowledged, synced segments only)."""
    segments = list(partition.segments)
    inactive = [s for s in segments[:-1] if s.dirty_bytes == 0]
    if not inactive:
        return None
    active_base = segments[-1].base_offset
    if partition.compacted_through == active_base:
        return None
    newest, tombstones = _newest_offsets(partition, segments)
    tombstone_horizon = now_ms - partition.config.delete_retention_ms
    plan = CompactionPlan()
    try:
        for segment in inactive:
            cleaned, removed = _rewrite(segment, newest, tombstone_horizon)
            if cleaned is not None:
                plan.rewrites.append((segment, cleaned, removed))
    except BaseException:
        _discard(plan)
        raise
    # Tombstones below the active segment expire with time alone: pass again until they have.
    waiting = any(offset < active_base for offset in tombstones.values())
    plan.compacted_through = -1 if waiting else active_base
    return plan


def finish_compaction(partition: Partition, plan: CompactionPlan) -> int:
    """The swapping half of a pass: put the ``.cleaned`` files of ``plan`` in place of their
    segments; how many records were removed. Run it where the partition's appends and reads
    run; a segment that is gone meanwhile (retention, a deleted topic) keeps its fate."""
    if partition.closed:
        _discard(plan)
        return 0
    removed = 0
    for segment, cleaned, count in plan.rewrites:
        if segment not in partition.segments or segment.closed:
            cleaned.unlink(missing_ok=True)
            continue
        _swap(partition, segment, cleaned)
        removed += count
    partition.compacted_through = plan.compacted_through
    return removed


def _discard(plan: CompactionPlan) -> None:
    for _, cleaned, _ in plan.rewrites:
        with contextlib.suppress(OSError):
            cleaned.unlink(missing_ok=True)


def _newest_offsets(
    partition: Partition, segments: list[Segment]
) -> tuple[dict[bytes, int], dict[bytes, int]]:
    """Each key's newest acknowledged offset, and those of the keys whose newest record is a
    tombstone."""
    newest: dict[bytes, int] = {}
    tombstones: dict[bytes, int] = {}
    hw = partition.high_watermark
    for segment in segments:
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
    segment: Segment, newest: dict[bytes, int], tombstone_horizon: int
) -> tuple[Path | None, int]:
    """Write ``segment``'s survivors to its ``.cleaned`` file, synced; (None, 0) when every
    record survives."""
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
        return None, 0
    cleaned = segment.path.with_name(segment.path.name + ".cleaned")
    with open(cleaned, "wb") as f:
        for batch in out:
            f.write(batch)
        f.flush()
        os.fsync(f.fileno())
    return cleaned, removed


def _swap(partition: Partition, segment: Segment, cleaned: Path) -> None:
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
