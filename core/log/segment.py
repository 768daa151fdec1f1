"""One segment of a partition: ``NNN.log`` with its ``NNN.index`` and ``NNN.timeindex``.

``NNN`` is the base offset, zero-padded to 20 digits, as in Kafka. The log file holds whole
RecordBatch v2 batches back to back. Appends go straight to the OS with ``os.write``; reads use
``os.pread`` on the same descriptor, so a reader never disturbs the writer.

Recovery (:meth:`Segment.recover`) walks batches from a trusted position, checks each one's
length, magic and CRC, and cuts the file at the first that fails: a torn or corrupt tail is
never served. A read-only segment (another process owns the store) is never cut; its valid end
is simply where the walk stops.
"""

from __future__ import annotations

import contextlib
import errno
import os
import time
from collections.abc import Iterator
from pathlib import Path

from ..errors import CorruptBatchError, StoreClosedError, StoreWriteError
from .batch import (
    BATCH_OVERHEAD,
    HEADER_SIZE,
    BatchHeader,
    decode_records,
    read_header,
    validate_batch,
)
from .index import OffsetIndex, TimeIndex

__all__ = ["Segment", "segment_file_name"]

_SCAN_CHUNK = 1 << 20


def segment_file_name(base_offset: int, suffix: str) -> str:
    """``00000000000000000042.log`` for base offset 42 and suffix ``.log``."""
    return f"{base_offset:020d}{suffix}"


class Segment:
    """A log file plus its two indexes.

    ``size`` is the number of valid bytes; ``next_offset`` the offset after its last batch
    (``base_offset`` when empty); ``max_timestamp`` the largest batch timestamp (-1 when empty).
    """

    def __init__(self, directory: Path, base_offset: int, *, writable: bool) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.writable = writable
        self.path = directory / segment_file_name(base_offset, ".log")
        self.index = OffsetIndex(
            directory / segment_file_name(base_offset, ".index"), base_offset, writable=writable
        )
        self.time_index = TimeIndex(
            directory / segment_file_name(base_offset, ".timeindex"),
            base_offset,
            writable=writable,
        )
        self._fd = -1
        self.inode = -1
        if writable:
            self._open_fd()  # creates the file now, so a new segment exists on disk at once
        self.size = 0
        self.next_offset = base_offset
        self.max_timestamp = -1
        self.created_ms = int(time.time() * 1000)
        self.index_interval = 4096
        self.contiguous = True  # False for compacted logs, whose offsets may have gaps
        self.synced_size = 0
        self._bytes_since_index = 0
        self._closed = False

    # --- the file descriptor ----------------------------------------------------------------

    @property
    def fd(self) -> int:
        """The log file's descriptor, opened on first use (see :meth:`release`)."""
        if self._fd < 0:
            if self._closed:
                raise StoreClosedError(f"segment {self.path} is closed")
            self._open_fd()
        return self._fd

    def _open_fd(self) -> None:
        flags = os.O_RDWR | os.O_CREAT if self.writable else os.O_RDONLY
        try:
            self._fd = os.open(self.path, flags | getattr(os, "O_CLOEXEC", 0), 0o644)
            inode = os.fstat(self._fd).st_ino
        except OSError as exc:
            raise StoreWriteError(
                f"cannot open {self.path}: {exc.strerror or exc}"
                + (
                    "; too many open files: raise the limit (ulimit -n) or use fewer partitions"
                    if exc.errno == errno.EMFILE
                    else ""
                )
            ) from exc
        if self.inode not in (-1, inode):
            os.close(self._fd)
            self._fd = -1
            raise StoreClosedError(f"segment {self.path} was replaced; reopen the partition")
        self.inode = inode

    def release(self) -> None:
        """Close the descriptor of an inactive, synced segment; the next read reopens it.

        A store of many partitions keeps one descriptor per active segment, not one per file.
        """
        if self._fd >= 0 and self.synced_size >= self.size:
            os.close(self._fd)
            self._fd = -1

    # --- opening --------------------------------------------------------------------------

    def open_existing(self, *, full_scan: bool) -> None:
        """Load the indexes and find the valid end of the file.

        With ``full_scan`` (an unclean shutdown, or a missing/torn index) the whole file is
        walked and the indexes rebuilt; otherwise the walk starts at the last index entry.
        """
        st = os.fstat(self.fd)
        ok = self.index.load() and self.time_index.load()
        if not ok or full_scan:
            self.index.clear()
            self.time_index.clear()
            self.recover(0, self.base_offset, rebuild=True)
        else:
            offset, position = self.index.lookup(1 << 62)
            if position >= st.st_size:
                self.index.clear()
                self.time_index.clear()
                self.recover(0, self.base_offset, rebuild=True)
            elif self.recover(position, offset, rebuild=False):
                # A torn tail behind a clean shutdown means the file was damaged after it was
                # closed: trust none of it and walk it all.
                self.index.clear()
                self.time_index.clear()
                self.recover(0, self.base_offset, rebuild=True)

    def recover(self, position: int, offset: int, *, rebuild: bool) -> int:
        """Walk batches from ``position``; cut (when writable) at the first invalid one.

        Returns the number of bytes cut off.
        """
        file_size = os.fstat(self.fd).st_size
        pos = position
        next_offset = offset
        max_ts = self.time_index.max_timestamp
        since_index = 0
        interval = self.index_interval
        buf = b""
        buf_start = pos
        while pos < file_size:
            rel = pos - buf_start
            if len(buf) - rel < HEADER_SIZE:
                buf = os.pread(self.fd, max(_SCAN_CHUNK, HEADER_SIZE), pos)
                buf_start = pos
                rel = 0
                if len(buf) < HEADER_SIZE:
                    break
            header = read_header(buf, rel)
            size = header.batch_length + BATCH_OVERHEAD
            if header.batch_length < HEADER_SIZE - BATCH_OVERHEAD or pos + size > file_size:
                break
            if rel + size > len(buf):
                buf = os.pread(self.fd, max(_SCAN_CHUNK, size), pos)
                buf_start = pos
                rel = 0
                if len(buf) < size:
                    break
            try:
                header = validate_batch(buf, rel, rel + size)
            except Exception:
                break
            if pos > 0 and (
                header.base_offset < next_offset
                or (self.contiguous and header.base_offset != next_offset)
            ):
                break  # offsets grow (without gaps unless compacted): else not a log we wrote
            if rebuild and (pos == 0 or since_index >= interval):
                self.index.append(header.base_offset, pos)
                since_index = 0
            if header.max_timestamp > max_ts:
                max_ts = header.max_timestamp
                if rebuild:
                    self.time_index.append(max_ts, header.last_offset)
            since_index += size
            pos += size
            next_offset = header.next_offset
        self.size = pos
        self.next_offset = max(next_offset, self.base_offset)
        self.max_timestamp = max_ts
        self._bytes_since_index = since_index
        if pos >= HEADER_SIZE:
            self.created_ms = read_header(os.pread(self.fd, HEADER_SIZE, 0)).base_timestamp
        cut = file_size - pos
        if self.writable:
            if cut:
                os.ftruncate(self.fd, pos)
                self.index.truncate_after(pos)
                self.time_index.truncate_after(self.next_offset)
            if rebuild:
                self.index.rewrite()
                self.time_index.rewrite()
        return cut

    # --- writing --------------------------------------------------------------------------

    def append(self, batch: bytes | bytearray, header: BatchHeader) -> int:
        """Write one batch (its baseOffset already assigned) at the end; return its position.

        A failed or short write is undone (the file is cut back) and raised as
        :class:`StoreWriteError`, so the segment is as it was before the call.
        """
        position = self.size
        if position == 0:
            self.created_ms = int(time.time() * 1000)
        try:
            view = memoryview(batch)
            done = 0
            while done < len(view):  # a short write is retried; the OS then says why it stopped
                written = os.pwrite(self.fd, view[done:], position + done)
                if written <= 0:
                    raise OSError(errno.EIO, "the disk accepted no bytes")
                done += written
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, position)
            raise StoreWriteError(
                f"cannot append to {self.path}: {exc.strerror or exc}; nothing was written"
            ) from exc
        self.size = position + len(batch)
        self.next_offset = header.next_offset
        if position == 0 or self._bytes_since_index >= self.index_interval:
            self.index.append(header.base_offset, position)
            self._bytes_since_index = 0
        self._bytes_since_index += len(batch)
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.time_index.append(header.max_timestamp, header.last_offset)
        return position

    def sync(self) -> None:
        """fsync the log file, then write new index entries (which only point at synced data)."""
        os.fsync(self.fd)
        self.synced_size = self.size
        self.index.write_pending()
        self.time_index.write_pending()

    # --- reading --------------------------------------------------------------------------

    def find_position(self, offset: int, limit: int | None = None) -> int:
        """The position of the batch that holds ``offset``, or of the first batch after it,
        or ``limit`` (default: the segment's size) when no batch does.

        The walk starts at the index entry before ``offset`` and checks every header on its
        way: a batch whose length or base offset is not what the log before it implies raises
        :class:`CorruptBatchError` (the bytes were damaged after they were written).
        """
        end = self.size if limit is None else limit
        expected, start = self.index.lookup(offset)
        for pos, header in self.iter_headers(start, end, expected):
            if header.next_offset > offset:
                return pos
        return end

    def read(self, position: int, max_bytes: int, end: int, offset: int) -> list[bytes]:
        """Whole batches from ``position`` (where the batch holding ``offset`` starts) to at most
        ``end``: at least one batch, then as many as fit in ``max_bytes``.

        Every batch's CRC and offsets are checked on the way out, so bytes damaged on disk after
        they were written are reported as :class:`CorruptBatchError`, never served.
        """
        data, stops = self._read_checked(position, max_bytes, end, offset)
        if len(stops) == 1 and stops[0] == len(data):
            return [data]
        batches: list[bytes] = []
        start = 0
        for stop in stops:
            batches.append(data[start:stop])
            start = stop
        return batches

    def read_span(self, position: int, max_bytes: int, end: int, offset: int) -> memoryview:
        """The batches :meth:`read` returns, as one buffer (no copy per batch)."""
        data, stops = self._read_checked(position, max_bytes, end, offset)
        view = memoryview(data)
        return view[: stops[-1]] if stops else view[:0]

    def _read_checked(
        self, position: int, max_bytes: int, end: int, offset: int
    ) -> tuple[bytes, list[int]]:
        """The bytes read for :meth:`read` and where each whole, checked batch in them ends."""
        if position >= end:
            return b"", []
        first = read_header(os.pread(self.fd, HEADER_SIZE, position))
        want = max(first.batch_length + BATCH_OVERHEAD, min(max_bytes, end - position))
        data = os.pread(self.fd, min(want, end - position), position)
        view = memoryview(data)
        stops: list[int] = []
        pos = 0
        expected = offset
        while pos + HEADER_SIZE <= len(data):
            try:
                header = validate_batch(view, pos, len(data))
            except CorruptBatchError as exc:
                if stops:
                    break  # did not fit in max_bytes, or is damaged: the next read tells
                raise CorruptBatchError(
                    f"{self.path} at position {position + pos}: {exc}; the data on disk was "
                    "damaged after it was written"
                ) from None
            if not stops:
                in_place = header.base_offset <= offset < header.next_offset or (
                    not self.contiguous and header.base_offset > offset
                )
            else:
                in_place = header.base_offset == expected or (
                    not self.contiguous and header.base_offset > expected
                )
            if not in_place:
                if stops:
                    break
                raise CorruptBatchError(
                    f"{self.path} at position {position + pos}: batch offsets "
                    f"{header.base_offset}-{header.last_offset} are not where the log expects "
                    "them; the data on disk was damaged after it was written"
                )
            expected = header.next_offset
            pos += header.batch_length + BATCH_OVERHEAD
            stops.append(pos)
        return data, stops

    def iter_headers(
        self, position: int = 0, end: int | None = None, expected: int | None = None
    ) -> Iterator[tuple[int, BatchHeader]]:
        """Yield ``(position, header)`` of each batch from ``position`` (CRCs unchecked).

        Each header's length must keep the batch inside the segment, and its base offset must
        follow the batch before (``expected`` is the first one's, default the segment's base);
        a header that breaks either raises :class:`CorruptBatchError`.
        """
        stop = self.size if end is None else end
        pos = position
        want = self.base_offset if expected is None else expected
        while pos < stop:
            header = read_header(os.pread(self.fd, HEADER_SIZE, pos))
            size = header.batch_length + BATCH_OVERHEAD
            misplaced = header.base_offset < want or (
                self.contiguous and header.base_offset != want
            )
            if size < HEADER_SIZE or pos + size > stop or misplaced:
                raise CorruptBatchError(
                    f"{self.path} at position {pos}: the batch there is not where the log "
                    f"expects one (offset {want}); the data on disk was damaged after it was "
                    "written"
                )
            yield pos, header
            want = header.next_offset
            pos += size

    def read_batch(self, position: int, header: BatchHeader) -> bytes:
        return os.pread(self.fd, header.batch_length + BATCH_OVERHEAD, position)

    def offset_for_timestamp(self, timestamp: int, end: int | None = None) -> int | None:
        """The first offset whose record timestamp is at or after ``timestamp``, or None."""
        if self.max_timestamp < timestamp:
            return None
        start = self.time_index.start_offset_for(timestamp)
        expected, first = self.index.lookup(start)
        for pos, header in self.iter_headers(first, end, expected):
            if header.next_offset <= start:
                continue
            if header.max_timestamp < timestamp:
                continue
            for record in decode_records(self.read_batch(pos, header)):
                if record.timestamp >= timestamp and record.offset >= start:
                    return record.offset
        return None

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def dirty_bytes(self) -> int:
        """Bytes written but not yet fsynced."""
        return self.size - self.synced_size

    @property
    def empty(self) -> bool:
        return self.size == 0

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.writable:
            self.index.write_pending()
            self.time_index.write_pending()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._closed

    def delete(self) -> None:
        """Close and remove the segment's three files."""
        self.close()
        for path in (self.path, self.index.path, self.time_index.path):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
