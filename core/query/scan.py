"""Reading a topic for a query: only the partitions, segments and batches its bounds can match.

A :class:`ScanBounds` says which records a query can need (partitions, an offset range, a time
range; see :mod:`.pushdown`). :class:`TopicScan` turns it into reads:

- partitions outside the bounds are not opened;
- an offset range picks segments by their base offsets and finds the first batch through the
  segment's offset index;
- a lower time bound skips every segment whose largest timestamp is older, and starts inside a
  segment where its time index says the first newer record can be;
- within the segments left, each batch header is read (61 bytes) and the batch is read only if
  its offsets and timestamps can meet the bounds: its ``maxTimestamp`` is its newest record's
  time and its ``baseTimestamp`` its oldest (millstream's producers write the earliest timestamp
  of a batch as its base, as Kafka's clients write their first, normally earliest, one).

Bounds only choose what is read: batches at the edges hold records outside them, and the query
applies its own ``WHERE`` to every row, so a bound that is wider than the ``WHERE`` is never
wrong. :class:`ScanStats` counts what was read, which ``--stats`` and ``EXPLAIN`` show.

A scan is an Arrow stream (``__arrow_c_stream__``): each call starts a new pass, so DuckDB may
read a topic twice in one query (a self-join) and both passes see the same snapshot.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from queue import Empty, Full, Queue
from typing import Any

import pyarrow as pa

from ..errors import CorruptBatchError
from ..log import Topic, validate_batch
from ..log.batch import HEADER_SIZE, BatchHeader, read_header
from ..log.segment import Segment
from .columns import COLUMNS, RAW_SCHEMA, BatchChunk, as_text, decode_chunk

__all__ = ["ScanBounds", "ScanStats", "TopicScan"]

_CHUNK_RECORDS = 65_536
_CHUNK_BYTES = 8 << 20
_READ_BYTES = 8 << 20


@dataclass(frozen=True)
class ScanBounds:
    """The records a query can need from one topic; None is "no bound".

    Offsets and timestamps (ms since the epoch) are inclusive.
    """

    partitions: frozenset[int] | None = None
    min_offset: int | None = None
    max_offset: int | None = None
    min_timestamp: int | None = None
    max_timestamp: int | None = None

    @property
    def empty(self) -> bool:
        """True when no record can match (e.g. ``offset > 5 AND offset < 3``)."""
        return (
            (self.partitions is not None and not self.partitions)
            or (
                self.min_offset is not None
                and self.max_offset is not None
                and self.min_offset > self.max_offset
            )
            or (
                self.min_timestamp is not None
                and self.max_timestamp is not None
                and self.min_timestamp > self.max_timestamp
            )
        )

    def describe(self) -> str:
        """The bounds as a person reads them (``all records`` when there are none)."""
        parts = []
        if self.partitions is not None:
            parts.append(f"partition in {sorted(self.partitions)}")
        if self.min_offset is not None or self.max_offset is not None:
            parts.append(f"offset {_range(self.min_offset, self.max_offset)}")
        if self.min_timestamp is not None or self.max_timestamp is not None:
            parts.append(f"timestamp ms {_range(self.min_timestamp, self.max_timestamp)}")
        return ", ".join(parts) or "all records"


def _range(low: int | None, high: int | None) -> str:
    return f"{'-∞' if low is None else low}..{'∞' if high is None else high}"


@dataclass
class ScanStats:
    """What scans of one topic read (summed over passes)."""

    topic: str
    bounds: str = "all records"
    partitions_total: int = 0
    partitions_read: int = 0
    segments_total: int = 0
    segments_read: int = 0
    batches_read: int = 0
    records_read: int = 0
    bytes_read: int = 0
    records_total: int = 0  # records the topic holds (below the high watermarks)
    passes: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "bounds": self.bounds,
            "partitions": f"{self.partitions_read}/{self.partitions_total}",
            "segments_read": self.segments_read,
            "segments_total": self.segments_total,
            "batches_read": self.batches_read,
            "records_read": self.records_read,
            "records_total": self.records_total,
            "bytes_read": self.bytes_read,
        }


@dataclass(frozen=True)
class _PartitionView:
    """A partition as it was when the scan began: its segments and its readable end."""

    index: int
    segments: tuple[Segment, ...]
    start: int  # first offset to read
    stop: int  # offset after the last to read (the high watermark at most)


class TopicScan:
    """The records of one topic within ``bounds``, as Arrow record batches of
    :data:`~.columns.RAW_SCHEMA`, with ``value`` as text when ``text_value``.

    ``start_offsets`` (partition → offset) makes each partition start there at the earliest:
    a live tail reads only what is new. ``on_records`` is called with the number of records of
    each chunk read (for a progress bar).
    """

    def __init__(
        self,
        topic: Topic,
        bounds: ScanBounds = ScanBounds(),
        *,
        wanted: Collection[str] = COLUMNS,
        text_value: bool = False,
        start_offsets: dict[int, int] | None = None,
        on_records: Callable[[int], None] | None = None,
    ) -> None:
        self.topic = topic
        self.bounds = bounds
        self.wanted = frozenset(wanted)
        self.text_value = text_value
        self.on_records = on_records
        self.stats = ScanStats(topic.name, bounds.describe())
        self.schema = RAW_SCHEMA.set(
            RAW_SCHEMA.get_field_index("value"),
            pa.field("value", pa.string() if text_value else pa.binary()),
        )
        self.views = self._snapshot(start_offsets or {})
        self.stats.partitions_total = len(topic.partitions)
        self.stats.segments_total = sum(len(p.segments) for p in topic.partitions)
        self.stats.records_total = sum(
            p.high_watermark - p.log_start_offset for p in topic.partitions
        )

    def _snapshot(self, start_offsets: dict[int, int]) -> list[_PartitionView]:
        bounds = self.bounds
        views = []
        for partition in self.topic.partitions:
            if bounds.partitions is not None and partition.index not in bounds.partitions:
                continue
            start = max(
                partition.log_start_offset,
                bounds.min_offset or 0,
                start_offsets.get(partition.index, 0),
            )
            stop = partition.high_watermark
            if bounds.max_offset is not None:
                stop = min(stop, bounds.max_offset + 1)
            views.append(_PartitionView(partition.index, tuple(partition.segments), start, stop))
        return views

    @property
    def records_to_read(self) -> int:
        """At most how many records the scan reads (before time bounds skip any)."""
        if self.bounds.empty:
            return 0
        return sum(max(0, v.stop - v.start) for v in self.views)

    def ends(self) -> dict[int, int]:
        """Partition → the offset after the last record this scan can read."""
        return {v.index: v.stop for v in self.views}

    # --- reading ----------------------------------------------------------------------------

    def batches(self) -> Iterator[pa.RecordBatch]:
        """One pass over the records, a chunk of batches at a time, decoded ahead by a thread
        of its own: DuckDB works on one chunk (without holding Python's lock) while the next
        is decoded."""
        return _ahead(self._pass(), _AHEAD)

    def _pass(self) -> Iterator[pa.RecordBatch]:
        with self.stats._lock:
            self.stats.passes += 1
        if self.bounds.empty:
            return
        for view in self.views:
            if view.start >= view.stop:
                continue
            counted = False
            chunk = BatchChunk(view.index, bytearray(), [], [], [], [], [])
            for raw in self._partition_batches(view):
                if not counted:
                    counted = True
                    with self.stats._lock:
                        self.stats.partitions_read += 1
                chunk.add(raw)
                if chunk.records >= _CHUNK_RECORDS or len(chunk.data) >= _CHUNK_BYTES:
                    yield self._decoded(chunk)
                    chunk = BatchChunk(view.index, bytearray(), [], [], [], [], [])
            if chunk.counts:
                yield self._decoded(chunk)

    def _decoded(self, chunk: BatchChunk) -> pa.RecordBatch:
        batch = decode_chunk(chunk, self.wanted)
        with self.stats._lock:
            self.stats.records_read += batch.num_rows
        if self.on_records is not None:
            self.on_records(batch.num_rows)
        if self.text_value:
            i = RAW_SCHEMA.get_field_index("value")
            value = batch.column(i)
            value = (
                as_text(value) if value.null_count < len(value) else pa.nulls(len(value), "string")
            )
            batch = batch.set_column(i, "value", value)
        return batch

    def _selected(self, view: _PartitionView) -> Iterator[tuple[int, list[_Run]]]:
        """Per segment of one partition: a file descriptor of the scan's own (open while the
        caller works on it; the log may close its own at any time) and the runs of batches
        that can hold records within the bounds (consecutive, each at most ``_READ_BYTES``)."""
        bounds = self.bounds
        low_ts, high_ts = bounds.min_timestamp, bounds.max_timestamp
        for segment in view.segments:
            if segment.next_offset <= view.start or segment.base_offset >= view.stop:
                continue
            if low_ts is not None and segment.max_timestamp < low_ts:
                continue
            first = view.start
            if low_ts is not None:
                first = max(first, segment.time_index.start_offset_for(low_ts))
            expected, position = segment.index.lookup(max(first, segment.base_offset))
            try:
                fd = os.open(segment.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            except FileNotFoundError:
                continue  # deleted by retention since the scan began
            try:
                runs: list[_Run] = []
                for pos, header in _headers(fd, segment, position, expected):
                    if header.base_offset >= view.stop:
                        break
                    if header.next_offset <= first:
                        continue
                    if low_ts is not None and header.max_timestamp < low_ts:
                        continue
                    if high_ts is not None and header.base_timestamp > high_ts:
                        continue
                    end = pos + header.size
                    last = runs[-1] if runs else None
                    if last and last.end == pos and end - last.start <= _READ_BYTES:
                        last.end = end
                        last.batches += 1
                        last.records += header.record_count
                    else:
                        runs.append(_Run(pos, end, 1, header.record_count))
                if runs:
                    yield fd, runs
            finally:
                os.close(fd)

    def _partition_batches(self, view: _PartitionView) -> Iterator[memoryview]:
        """The whole batches of one partition that can hold records within the bounds."""
        stats = self.stats
        for fd, runs in self._selected(view):
            with stats._lock:
                stats.segments_read += 1
            for run in runs:
                data = os.pread(fd, run.end - run.start, run.start)
                with stats._lock:
                    stats.bytes_read += len(data)
                whole = memoryview(data)
                pos = 0
                while pos < len(data):
                    size = validate_batch(whole, pos).size
                    with stats._lock:
                        stats.batches_read += 1
                    yield whole[pos : pos + size]
                    pos += size

    def plan(self) -> ScanStats:
        """What a pass would read, found from the indexes and batch headers alone."""
        planned = ScanStats(self.topic.name, self.stats.bounds)
        planned.partitions_total = self.stats.partitions_total
        planned.segments_total = self.stats.segments_total
        planned.records_total = self.stats.records_total
        if self.bounds.empty:
            return planned
        for view in self.views:
            if view.start >= view.stop:
                continue
            touched = False
            for _fd, runs in self._selected(view):
                touched = True
                planned.segments_read += 1
                for run in runs:
                    planned.bytes_read += run.end - run.start
                    planned.batches_read += run.batches
                    planned.records_read += run.records
            planned.partitions_read += touched
        return planned

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        """A new pass over the records as an Arrow C stream (DuckDB scans through this)."""
        reader = pa.RecordBatchReader.from_batches(self.schema, self.batches())
        return reader.__arrow_c_stream__(requested_schema)


_AHEAD = 3
_DONE = object()


def _ahead(items: Iterator[Any], depth: int) -> Iterator[Any]:
    """``items``, produced by a thread that stays at most ``depth`` items ahead. An error in
    the thread is raised here; when the consumer stops early, the thread stops too."""
    queue: Queue[Any] = Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        queue.put(item, timeout=0.1)
                        break
                    except Full:
                        continue
                if stop.is_set():
                    return
            queue.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            queue.put(exc)

    thread = threading.Thread(target=produce, name="millstream-query-scan", daemon=True)
    thread.start()
    try:
        while True:
            item = queue.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting to put
            try:
                queue.get_nowait()
            except Empty:
                thread.join(0.05)
        if hasattr(items, "close"):
            items.close()


@dataclass
class _Run:
    """Consecutive batches of a segment read with one ``pread``: bytes ``start:end``."""

    start: int
    end: int
    batches: int
    records: int


def _headers(
    fd: int, segment: Segment, position: int, expected: int
) -> Iterator[tuple[int, BatchHeader]]:
    """``(position, header)`` of each batch of ``segment`` from ``position`` (whose batch
    starts at offset ``expected``) to the segment's valid end, read through ``fd``; a header
    that is not where the log before it says raises CorruptBatchError (as the log's own walk
    does)."""
    stop = segment.size
    pos = position
    want = expected
    while pos < stop:
        header = read_header(os.pread(fd, HEADER_SIZE, pos))
        size = header.size
        misplaced = header.base_offset < want or (segment.contiguous and header.base_offset != want)
        if size < HEADER_SIZE or pos + size > stop or misplaced:
            raise CorruptBatchError(
                f"{segment.path} at position {pos}: the batch there is not where the log "
                f"expects one (offset {want}); the data on disk was damaged after it was written"
            )
        yield pos, header
        want = header.next_offset
        pos += size
