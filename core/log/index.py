"""The two sparse indexes kept beside each segment, in Kafka's entry formats.

``NNN.index`` maps an offset to the file position of the batch that starts there: entries of
8 bytes, ``relativeOffset:int32 position:int32``, one every ``index.interval.bytes`` of log.

``NNN.timeindex`` maps time to offsets: entries of 12 bytes, ``timestamp:int64
relativeOffset:int32``, where the timestamp is the largest seen so far in the segment and the
offset the last one of the batch that raised it. Timestamps in the file only ever grow.

Both are derived data. They live in memory (two sorted lists each) and are appended to their
file as entries are added; a file that is missing, torn or points past the log is rebuilt from the
log itself when the segment is opened. Lookups are binary searches.
"""

from __future__ import annotations

import bisect
import os
import struct
from array import array
from pathlib import Path

__all__ = ["OffsetIndex", "TimeIndex"]

_OFFSET_ENTRY = struct.Struct(">ii")
_TIME_ENTRY = struct.Struct(">qi")


class OffsetIndex:
    """A segment's offset index: sorted ``(offset, position)`` pairs."""

    def __init__(self, path: Path, base_offset: int, *, writable: bool) -> None:
        self.path = path
        self.base_offset = base_offset
        self.writable = writable
        self.offsets = array("q")
        self.positions = array("q")
        self._pending = bytearray()

    def load(self) -> bool:
        """Read the file; return False when it is missing or torn (the caller rebuilds)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return False
        whole = len(raw) - len(raw) % _OFFSET_ENTRY.size
        last_offset, last_pos = -1, -1
        for rel, pos in _OFFSET_ENTRY.iter_unpack(raw[:whole]):
            offset = self.base_offset + rel
            if offset <= last_offset or pos <= last_pos:
                return False
            self.offsets.append(offset)
            self.positions.append(pos)
            last_offset, last_pos = offset, pos
        return whole == len(raw)

    def append(self, offset: int, position: int) -> None:
        """Add an entry (ignored unless both offset and position grow)."""
        if self.offsets and (offset <= self.offsets[-1] or position <= self.positions[-1]):
            return
        self.offsets.append(offset)
        self.positions.append(position)
        if self.writable:
            self._pending += _OFFSET_ENTRY.pack(offset - self.base_offset, position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """The last entry at or before ``offset``, or ``(base_offset, 0)``."""
        i = bisect.bisect_right(self.offsets, offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.offsets[i], self.positions[i]

    def truncate_after(self, position: int) -> None:
        """Drop entries pointing at or past ``position`` (the log was cut there)."""
        i = bisect.bisect_left(self.positions, position)
        del self.offsets[i:]
        del self.positions[i:]
        self._pending.clear()
        if self.writable:
            self.rewrite()

    def clear(self) -> None:
        del self.offsets[:]
        del self.positions[:]
        self._pending.clear()

    def write_pending(self) -> None:
        """Append entries added since the last call to the file."""
        if self._pending and self.writable:
            with open(self.path, "ab") as f:
                f.write(self._pending)
            self._pending.clear()

    def rewrite(self) -> None:
        """Write the whole index anew (after a rebuild or a truncation)."""
        data = b"".join(
            _OFFSET_ENTRY.pack(o - self.base_offset, p)
            for o, p in zip(self.offsets, self.positions, strict=True)
        )
        _atomic_write(self.path, data)
        self._pending.clear()


class TimeIndex:
    """A segment's time index: ``(max timestamp so far, offset)`` pairs, timestamps growing."""

    def __init__(self, path: Path, base_offset: int, *, writable: bool) -> None:
        self.path = path
        self.base_offset = base_offset
        self.writable = writable
        self.timestamps = array("q")
        self.offsets = array("q")
        self._pending = bytearray()

    def load(self) -> bool:
        """Read the file; return False when it is missing or torn (the caller rebuilds)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return False
        whole = len(raw) - len(raw) % _TIME_ENTRY.size
        last_ts = None
        for ts, rel in _TIME_ENTRY.iter_unpack(raw[:whole]):
            if last_ts is not None and ts <= last_ts:
                return False
            self.timestamps.append(ts)
            self.offsets.append(self.base_offset + rel)
            last_ts = ts
        return whole == len(raw)

    @property
    def max_timestamp(self) -> int:
        return self.timestamps[-1] if self.timestamps else -1

    def append(self, timestamp: int, offset: int) -> None:
        """Add an entry when ``timestamp`` is later than every one before."""
        if self.timestamps and timestamp <= self.timestamps[-1]:
            return
        self.timestamps.append(timestamp)
        self.offsets.append(offset)
        if self.writable:
            self._pending += _TIME_ENTRY.pack(timestamp, offset - self.base_offset)

    def start_offset_for(self, timestamp: int) -> int:
        """An offset from which a scan finds the first record at or after ``timestamp``.

        Every record at or before the offset of an entry whose timestamp is below the target is
        itself below the target, so the scan starts after the last such entry.
        """
        i = bisect.bisect_left(self.timestamps, timestamp) - 1
        if i < 0:
            return self.base_offset
        return self.offsets[i] + 1

    def truncate_after(self, offset: int) -> None:
        """Drop entries for offsets at or past ``offset``."""
        keep = [(t, o) for t, o in zip(self.timestamps, self.offsets, strict=True) if o < offset]
        self.clear()
        for t, o in keep:
            self.timestamps.append(t)
            self.offsets.append(o)
        if self.writable:
            self.rewrite()

    def clear(self) -> None:
        del self.timestamps[:]
        del self.offsets[:]
        self._pending.clear()

    def write_pending(self) -> None:
        if self._pending and self.writable:
            with open(self.path, "ab") as f:
                f.write(self._pending)
            self._pending.clear()

    def rewrite(self) -> None:
        data = b"".join(
            _TIME_ENTRY.pack(t, o - self.base_offset)
            for t, o in zip(self.timestamps, self.offsets, strict=True)
        )
        _atomic_write(self.path, data)
        self._pending.clear()


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)
