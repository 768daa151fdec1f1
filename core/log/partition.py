"""A partition: an ordered list of segments, its offsets, and its durability.

Offsets:

- ``log_start_offset``: the first offset still kept (retention moves it forward);
- ``log_end_offset``: the offset the next appended record gets;
- ``high_watermark``: the end of what is acknowledged, i.e. durable as the topic's
  ``flush.policy`` says. Readers see only records below it, so nothing a consumer reads can be
  lost by a crash the policy protects against.

``append`` is synchronous: the batch is checked, numbered and handed to the OS before it returns.
``durable(next_offset)`` is the asynchronous half: a future that resolves when the high watermark
reaches ``next_offset`` (see :mod:`.commit`).

A partition opened read-only (another process owns the store) never writes or cuts a file; its
high watermark is the end of the valid batches on disk, and :meth:`Partition.refresh` follows
what the owner appends.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from crc32c import crc32c

from ..errors import (
    ForeignFileError,
    InvalidOffsetError,
    ReadOnlyStoreError,
    RecordTooLargeError,
    StoreClosedError,
    StoreWriteError,
)
from ..record import StoredRecord
from .batch import BatchHeader, decode_records, read_header, set_base_offset, validate_batch
from .commit import GroupCommit
from .config import TopicConfig
from .segment import Segment, segment_file_name

__all__ = ["AppendResult", "Partition"]

_SEGMENT_FILE = re.compile(r"(\d{20})\.(log|index|timeindex)")
_LEFTOVER_FILE = re.compile(r"\d{20}\.(log|index|timeindex)\.(tmp|cleaned)")
_MAX_RELATIVE_OFFSET = (1 << 31) - 1


class AppendResult(NamedTuple):
    """Where an appended batch landed: its first and last offsets, and the append time
    (the broker's clock in ms when the topic uses LogAppendTime, else -1)."""

    base_offset: int
    last_offset: int
    log_append_time: int


@dataclass
class _SyncTarget:
    """What one group-commit round makes durable for one partition."""

    fds: list[int]
    sizes: list[tuple[Segment, int]]
    end_offset: int
    hw_segment: Segment
    hw_position: int
    directory: Path
    sync_directory: bool


class Partition:
    """One partition of a topic: segments on disk, offsets, appends, reads and durability."""

    def __init__(
        self,
        topic: str,
        index: int,
        directory: Path,
        config: Callable[[], TopicConfig],
        committer: GroupCommit,
        *,
        writable: bool,
        gaps: Callable[[], bool] = lambda: False,
    ) -> None:
        self.topic = topic
        self.index = index
        self.directory = directory
        self.writable = writable
        self._config = config
        self._gaps = gaps  # offsets may have gaps (the topic is or was compacted)
        self._committer = committer
        self._failure: StoreWriteError | None = None
        # the active segment's base offset at the last compaction pass that needs no follow-up
        # (-1: none yet); see compaction.compact_partition
        self.compacted_through = -1
        self.segments: list[Segment] = []
        self._bases: list[int] = []
        self._log_end = 0
        self._hw = 0
        self._hw_segment: Segment | None = None
        self._hw_position = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._data_waiters: list[asyncio.Future[None]] = []
        self._sync_pending = False
        self._new_segment = False
        self._interval_timer: asyncio.TimerHandle | None = None
        self._closed = False

    @property
    def name(self) -> str:
        return f"{self.topic}-{self.index}"

    @property
    def config(self) -> TopicConfig:
        return self._config()

    @property
    def closed(self) -> bool:
        """True once closed (the store closed or the topic was deleted)."""
        return self._closed

    # --- opening --------------------------------------------------------------------------

    def open(self, *, clean_shutdown: bool) -> None:
        """Open the segments on disk (creating the first when writable and there is none).

        After an unclean shutdown the active segment is walked in full and its indexes rebuilt;
        otherwise only its tail after the last index entry is checked.
        """
        if self.writable:
            self.directory.mkdir(parents=True, exist_ok=True)
        bases = self._scan_directory()
        interval = self.config.index_interval_bytes
        for i, base in enumerate(bases):
            segment = Segment(self.directory, base, writable=self.writable)
            segment.index_interval = interval
            segment.contiguous = not self._gaps()
            last = i == len(bases) - 1
            segment.open_existing(full_scan=last and not clean_shutdown)
            segment.synced_size = segment.size
            if not last:
                segment.release()
            self.segments.append(segment)
            self._bases.append(base)
        if not self.segments and self.writable:
            self._add_segment(0)
        if self.segments:
            active = self.segments[-1]
            self._log_end = active.next_offset
            self._set_hw(self._log_end, active, active.size)

    def _scan_directory(self) -> list[int]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        bases: set[int] = set()
        others: set[int] = set()
        for name in names:
            match = _SEGMENT_FILE.fullmatch(name)
            if match:
                (bases if match.group(2) == "log" else others).add(int(match.group(1)))
            elif _LEFTOVER_FILE.fullmatch(name):
                if self.writable:
                    os.unlink(self.directory / name)
            else:
                raise ForeignFileError(
                    f"foreign file {str(self.directory / name)!r} in partition {self.name}: "
                    "a partition folder holds only NNN.log, NNN.index and NNN.timeindex files; "
                    "move it out of the data directory"
                )
        if self.writable:
            for base in others - bases:  # indexes whose log is gone
                for suffix in (".index", ".timeindex"):
                    path = self.directory / f"{base:020d}{suffix}"
                    if path.exists():
                        path.unlink()
        return sorted(bases)

    def _add_segment(self, base: int) -> Segment:
        segment = Segment(self.directory, base, writable=True)
        segment.index_interval = self.config.index_interval_bytes
        segment.contiguous = not self._gaps()
        segment.synced_size = 0
        self.segments.append(segment)
        self._bases.append(base)
        self._new_segment = True
        return segment

    # --- offsets --------------------------------------------------------------------------

    @property
    def log_start_offset(self) -> int:
        return self.segments[0].base_offset if self.segments else 0

    @property
    def log_end_offset(self) -> int:
        return self._log_end

    @property
    def high_watermark(self) -> int:
        return self._hw

    @property
    def size_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def segment_count(self) -> int:
        return len(self.segments)

    # --- appending ------------------------------------------------------------------------

    def append(
        self,
        batch: bytes | bytearray,
        *,
        now_ms: int | None = None,
        checked: BatchHeader | None = None,
    ) -> AppendResult:
        """Check, number and write one batch; return where it landed.

        ``checked`` is the header :func:`~.batch.validate_batch` returned for this very batch
        when the caller checked it already (its framing and CRC are then not checked again).
        Raises RecordTooLargeError (over ``max.message.bytes``), CorruptBatchError (bad framing),
        StoreWriteError (the disk refused; nothing was appended) or ReadOnlyStoreError.
        """
        self._check_writable()
        if self._failure is not None:
            raise self._failure
        config = self.config
        size = len(batch)
        if size > config.max_message_bytes:
            raise RecordTooLargeError(
                f"batch of {size} bytes for {self.name} exceeds max.message.bytes="
                f"{config.max_message_bytes}; send smaller batches or raise the topic config"
            )
        header = validate_batch(batch) if checked is None else checked
        if not isinstance(batch, bytearray):
            batch = bytearray(batch)
        base = self._log_end
        set_base_offset(batch, base)
        append_time = -1
        if config.log_append_time:
            append_time = int(time.time() * 1000) if now_ms is None else now_ms
            _stamp_log_append_time(batch, append_time)
            header = header._replace(attributes=header.attributes | 0x08, max_timestamp=append_time)
        header = header._replace(base_offset=base)
        try:
            segment = self._segment_for_append(size, header.last_offset_delta, now_ms)
            segment.append(batch, header)
        except OSError as exc:  # StoreWriteError is one; anything else is made one
            if isinstance(exc, StoreWriteError):
                raise
            raise StoreWriteError(
                f"cannot append to {self.name}: {exc.strerror or exc}; nothing was written"
            ) from exc
        self._log_end = header.next_offset
        policy = config.flush_policy
        if policy == "never":
            self._set_hw(self._log_end, segment, segment.size)
        elif policy == "commit":
            self._request_sync()
        elif self._interval_timer is None:
            loop = asyncio.get_running_loop()
            self._interval_timer = loop.call_later(config.flush_ms / 1000, self._interval_due)
        return AppendResult(base, header.last_offset, append_time)

    def _segment_for_append(self, size: int, last_delta: int, now_ms: int | None) -> Segment:
        active = self.segments[-1]
        if active.empty:
            return active
        config = self.config
        now = int(time.time() * 1000) if now_ms is None else now_ms
        if (
            active.size + size > config.segment_bytes
            or now - active.created_ms >= config.segment_ms
            or self._log_end + last_delta - active.base_offset > _MAX_RELATIVE_OFFSET
        ):
            return self.roll()
        return active

    def roll(self) -> Segment:
        """Start a new active segment at the log end (the old one is synced by the next round)."""
        self._check_writable()
        active = self.segments[-1]
        if active.empty:
            return active
        active.index.write_pending()
        active.time_index.write_pending()
        segment = self._add_segment(self._log_end)
        if active.dirty_bytes:
            self._request_sync()
        return segment

    def _check_writable(self) -> None:
        if self._closed:
            raise StoreClosedError(f"partition {self.name} is closed")
        if not self.writable:
            raise ReadOnlyStoreError.during(self.directory.parent, f"write to {self.name}")

    # --- durability -----------------------------------------------------------------------

    def durable(self, next_offset: int) -> asyncio.Future[None]:
        """A future that resolves once every offset below ``next_offset`` is acknowledged.

        It fails with StoreWriteError when the sync that should cover it fails.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        if next_offset <= self._hw:
            future.set_result(None)
        else:
            self._waiters.append((next_offset, future))
        return future

    def _request_sync(self) -> None:
        if not self._sync_pending:
            self._sync_pending = True
            self._committer.request(self)

    def _interval_due(self) -> None:
        self._interval_timer = None
        if self._log_end > self._hw and not self._closed:
            self._request_sync()

    def begin_sync(self) -> _SyncTarget:
        """Snapshot what the coming sync round covers (called by GroupCommit)."""
        self._sync_pending = False
        dirty = [s for s in self.segments if s.size > s.synced_size]
        active = self.segments[-1]
        target = _SyncTarget(
            fds=[s.fd for s in dirty],
            sizes=[(s, s.size) for s in dirty],
            end_offset=self._log_end,
            hw_segment=active,
            hw_position=active.size,
            directory=self.directory,
            sync_directory=self._new_segment,
        )
        self._new_segment = False
        return target

    def end_sync(self, target: _SyncTarget) -> None:
        """The round covering ``target`` succeeded: move the high watermark (GroupCommit)."""
        if self._failure is not None:
            return  # an earlier round failed: nothing more is acknowledged
        active = self.segments[-1] if self.segments else None
        for segment, size in target.sizes:
            segment.synced_size = max(segment.synced_size, size)
            if not segment.closed:
                segment.index.write_pending()
                segment.time_index.write_pending()
                if segment is not active:
                    segment.release()
        self._set_hw(target.end_offset, target.hw_segment, target.hw_position)

    def fail_sync(self, error: StoreWriteError) -> None:
        """The sync round covering this partition failed: it stops taking writes.

        After a failed fsync the OS may have dropped the unsynced pages, and a later fsync
        that succeeds proves nothing about them; so nothing written since the last good sync is
        ever acknowledged or served, and appends are refused until the store is reopened (which
        walks the log and keeps only whole batches).
        """
        self._failure = StoreWriteError(
            f"{self.name} refuses writes after a failed disk sync ({error}); reopen the store "
            "once the disk is healthy"
        )
        while self._waiters:
            _, future = self._waiters.popleft()
            if not future.done():
                future.set_exception(error)

    def _set_hw(self, offset: int, segment: Segment, position: int) -> None:
        if offset < self._hw:
            return
        self._hw = offset
        self._hw_segment = segment
        self._hw_position = position
        waiters = self._waiters
        while waiters and waiters[0][0] <= offset:
            _, future = waiters.popleft()
            if not future.done():
                future.set_result(None)
        if self._data_waiters:
            for future in self._data_waiters:
                if not future.done():
                    future.set_result(None)
            self._data_waiters.clear()

    # --- reading --------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(
                f"partition {self.name} is closed: its topic was deleted or the store closed"
            )

    def _check_offset(self, offset: int) -> None:
        if offset < self.log_start_offset or offset > self._log_end:
            raise InvalidOffsetError(
                f"offset {offset} is out of range for {self.name}: valid offsets are "
                f"{self.log_start_offset} to {self._log_end}"
            )

    def read(self, offset: int, max_bytes: int = 1 << 20) -> list[bytes]:
        """Whole batches below the high watermark, the first holding ``offset`` (or the first
        after it); at least one batch however large, then what fits in ``max_bytes``; ``[]`` at
        the high watermark."""
        found = self._locate(offset)
        if found is None:
            return []
        segment, position, limit, offset = found
        return segment.read(position, max_bytes, limit, offset)

    def read_span(self, offset: int, max_bytes: int = 1 << 20) -> memoryview:
        """The batches :meth:`read` returns, as one buffer (empty at the high watermark): what
        a server sends as it is, with no copy per batch."""
        found = self._locate(offset)
        if found is None:
            return memoryview(b"")
        segment, position, limit, offset = found
        return segment.read_span(position, max_bytes, limit, offset)

    def _locate(self, offset: int) -> tuple[Segment, int, int, int] | None:
        """Where a read from ``offset`` starts: the segment, the position of the batch there,
        the readable end of that segment and the offset to look for; None when there is
        nothing below the high watermark."""
        self._check_open()
        self._check_offset(offset)
        if offset >= self._hw or not self.segments:
            return None
        i = max(0, bisect.bisect_right(self._bases, offset) - 1)
        hw_segment = self._hw_segment
        while i < len(self.segments):
            segment = self.segments[i]
            limit = self._hw_position if segment is hw_segment else segment.size
            position = segment.find_position(offset, limit)
            if position < limit:
                return segment, position, limit, offset
            if segment is hw_segment:
                return None
            i += 1
            if i < len(self.segments):
                offset = self.segments[i].base_offset
        return None

    def read_records(
        self, offset: int, max_records: int | None = None, max_bytes: int = 1 << 20
    ) -> list[StoredRecord]:
        """Decoded records from ``offset`` on (at most one read's worth)."""
        out: list[StoredRecord] = []
        for batch in self.read(offset, max_bytes):
            out.extend(decode_records(batch, self.topic, self.index, min_offset=offset))
        if max_records is not None:
            del out[max_records:]
        return out

    def iter_records(self, offset: int) -> Iterator[StoredRecord]:
        """Every acknowledged record from ``offset`` (or the log start, if later) to the high
        watermark, read and decoded a read at a time; for loading a whole topic."""
        offset = max(offset, self.log_start_offset)
        while offset < self._hw:
            batches = self.read(offset)
            if not batches:
                return
            for raw in batches:
                yield from decode_records(raw, self.topic, self.index, min_offset=offset)
            offset = max(offset, read_header(batches[-1]).next_offset)

    def offset_for_timestamp(self, timestamp_ms: int) -> int | None:
        """The first offset whose record's timestamp is at or after ``timestamp_ms``, among
        acknowledged records; None when there is none."""
        self._check_open()
        for segment in self.segments:
            if segment.max_timestamp < timestamp_ms:
                continue
            limit = self._hw_position if segment is self._hw_segment else None
            found = segment.offset_for_timestamp(timestamp_ms, limit)
            if found is not None and found < self._hw:
                return found
        return None

    async def wait_for_data(self, offset: int, timeout_s: float) -> bool:
        """Wait until a record at or after ``offset`` is readable; False on timeout."""
        self._check_open()
        if self._hw > offset:
            return True
        if not self.writable:
            deadline = time.monotonic() + timeout_s
            while True:
                self.refresh()
                if self._hw > offset:
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                await asyncio.sleep(min(0.05, remaining))
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._data_waiters.append(future)
        try:
            await asyncio.wait_for(future, timeout_s)
        except TimeoutError:
            return self._hw > offset
        finally:
            if not future.done() or future.cancelled():  # timed out or cancelled: forget it
                with contextlib.suppress(ValueError):
                    self._data_waiters.remove(future)
        return True

    def refresh(self) -> None:
        """Read-only: follow new segments and appends written by the owning process.

        Every segment whose file grew, shrank or was replaced (compaction) since the last look
        is walked again, not only the last one: the owner may have filled a segment and rolled
        to the next one in between.
        """
        if self.writable:
            return
        on_disk = self._scan_directory()
        known = {s.base_offset: s for s in self.segments}
        kept = []
        for base in on_disk:
            segment = known.pop(base, None)
            path = self.directory / segment_file_name(base, ".log")
            try:
                st = os.stat(path)
            except FileNotFoundError:
                continue
            if segment is not None and segment.inode != st.st_ino:
                segment.close()  # rewritten by compaction: read the new file
                segment = None
            if segment is None:
                segment = Segment(self.directory, base, writable=False)
                segment.contiguous = not self._gaps()
                segment.open_existing(full_scan=True)
            elif st.st_size < segment.size:
                segment.index.clear()
                segment.time_index.clear()
                segment.recover(0, segment.base_offset, rebuild=True)
            elif st.st_size > segment.size:
                segment.recover(segment.size, segment.next_offset, rebuild=True)
            kept.append(segment)
        for gone in known.values():  # deleted by retention
            gone.close()
        self.segments = kept
        self._bases = [s.base_offset for s in kept]
        if not kept:
            return
        active = kept[-1]
        self._log_end = active.next_offset
        self._hw = -1
        self._set_hw(self._log_end, active, active.size)

    # --- retention ------------------------------------------------------------------------

    def enforce_retention(self, now_ms: int | None = None) -> int:
        """Delete the oldest segments past ``retention.ms`` or over ``retention.bytes``.

        Only whole, acknowledged, synced segments go; the active one is first rolled when it has
        expired too. Returns the number of segments deleted.
        """
        if not self.writable or not self.config.delete:
            return 0
        now = int(time.time() * 1000) if now_ms is None else now_ms
        config = self.config
        retention_ms, retention_bytes = config.retention_ms, config.retention_bytes
        active = self.segments[-1]
        if (
            retention_ms >= 0
            and not active.empty
            and active.max_timestamp < now - retention_ms
            and self._hw == self._log_end
        ):
            self.roll()
        total = self.size_bytes
        deleted = 0
        while len(self.segments) > 1:
            oldest = self.segments[0]
            if oldest.size > oldest.synced_size:
                break
            expired = retention_ms >= 0 and oldest.max_timestamp < now - retention_ms
            oversize = retention_bytes >= 0 and total - oldest.size >= retention_bytes
            if not (expired or oversize):
                break
            total -= oldest.size
            self.segments.pop(0)
            self._bases.pop(0)
            oldest.delete()
            deleted += 1
        return deleted

    def replace_segment(self, old: Segment, new: Segment) -> None:
        """Swap a rewritten (compacted) segment in for ``old``."""
        i = self.segments.index(old)
        self.segments[i] = new
        if self._hw_segment is old:
            self._hw_segment = new
            self._hw_position = new.size

    # --- closing --------------------------------------------------------------------------

    def sync_now(self) -> None:
        """fsync everything now, in this thread, and acknowledge it (used on close)."""
        if not self.writable or not self.segments:
            return
        for segment in self.segments:
            if segment.dirty_bytes:
                segment.sync()
        active = self.segments[-1]
        self._set_hw(self._log_end, active, active.size)

    def close(self) -> None:
        if self._closed:
            return
        if self._interval_timer is not None:
            self._interval_timer.cancel()
        try:
            self.sync_now()
        except OSError as exc:
            raise StoreWriteError(f"cannot sync {self.name} on close: {exc}") from exc
        finally:
            self._release("closed")

    def discard(self) -> None:
        """Close without syncing anything (its topic is being deleted): writes not yet durable
        fail with StoreClosedError, the files are left for the caller to remove."""
        if self._closed:
            return
        if self._interval_timer is not None:
            self._interval_timer.cancel()
        self._release("was deleted")

    def _release(self, why: str) -> None:
        """Mark closed, fail the writes still waiting to be durable, close the segments."""
        self._closed = True
        error = StoreClosedError(f"partition {self.name} {why} before the write was durable")
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(error)
        self._waiters.clear()
        for segment in self.segments:
            segment.close()

    def delete_files(self) -> None:
        """Close and remove every segment file (topic deletion)."""
        self._closed = True
        for segment in self.segments:
            segment.delete()


def _stamp_log_append_time(batch: bytearray, now_ms: int) -> None:
    """Mark a batch's timestamps as the broker's append time (attributes bit 3, maxTimestamp)
    and recompute its CRC, as Kafka does for LogAppendTime topics."""
    attributes = int.from_bytes(batch[21:23], "big") | 0x08
    batch[21:23] = attributes.to_bytes(2, "big")
    batch[35:43] = now_ms.to_bytes(8, "big", signed=True)
    batch[17:21] = crc32c(memoryview(batch)[21:]).to_bytes(4, "big")
