"""The two sparse indexes kept beside each segment, in Kafka's entry formats.

``NNN.index`` maps an offset to the file position of the batch that starts there: entries of
8 bytes, ``relativeOffset:int32 position:int32``, one every ``index.interval.bytes`` of log.

``NNN.timeindex`` maps time to offsets: entries of 12 bytes, ``timestamp:int64
relativeOffset:int32``, where the timestamp is the largest seen so far in the segment and the
offset the last one of the batch that raised it. Timestamps in the file only ever grow.

Both are derived data. They live in memory (two sorted arrays each) and are appended to their
file as entries are added. Writing an index never fails an append: when the disk refuses it, the
file is removed, and the next open rebuilds it from the log, as it does for a file that is
missing, torn, or points past the log. Lookups are binary searches.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import struct
from array import array
from pathlib import Path

__all__ = ["OffsetIndex", "TimeIndex"]

log = logging.getLogger(__name__)


class _SparseIndex:
    """Sorted ``(key, value)`` pairs of one index file, both columns strictly growing.

    Subclasses say how an entry is laid out (``_ENTRY``) and which column holds the offset.
    """

    _ENTRY: struct.Struct

    def __init__(self, path: Path, base_offset: int, *, writable: bool) -> None:
        self.path = path
        self.base_offset = base_offset
        self.writable = writable
        self.keys = array("q")
        self.values = array("q")
        self._pending = bytearray()

    def _pack(self, key: int, value: int) -> bytes:
        raise NotImplementedError

    def _unpack(self, a: int, b: int) -> tuple[int, int]:
        raise NotImplementedError

    def load(self) -> bool:
        """Read the file; return False when it is missing, torn or out of order (the caller
        then rebuilds it from the log)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return False
        size = self._ENTRY.size
        whole = len(raw) - len(raw) % size
        for a, b in self._ENTRY.iter_unpack(raw[:whole]):
            key, value = self._unpack(a, b)
            if self.keys and (key <= self.keys[-1] or value <= self.values[-1]):
                self.clear()
                return False
            self.keys.append(key)
            self.values.append(value)
        return whole == len(raw)

    def add(self, key: int, value: int) -> None:
        """Add an entry (ignored unless both columns grow)."""
        if self.keys and (key <= self.keys[-1] or value <= self.values[-1]):
            return
        self.keys.append(key)
        self.values.append(value)
        if self.writable:
            self._pending += self._pack(key, value)

    def clear(self) -> None:
        del self.keys[:]
        del self.values[:]
        self._pending.clear()

    def write_pending(self) -> None:
        """Append the entries added since the last call to the file."""
        if not (self._pending and self.writable):
            return
        try:
            with open(self.path, "ab") as f:
                f.write(self._pending)
        except OSError as exc:
            self._give_up(exc)
        self._pending.clear()

    def rewrite(self) -> None:
        """Write the whole index anew (after a rebuild or a truncation)."""
        if not self.writable:
            return
        data = b"".join(self._pack(k, v) for k, v in zip(self.keys, self.values, strict=True))
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(data)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            self._give_up(exc)
        self._pending.clear()

    def _give_up(self, exc: OSError) -> None:
        # The in-memory entries stay right; the file goes, so the next open rebuilds it.
        log.warning("cannot write %s (%s); it will be rebuilt from the log", self.path, exc)
        with contextlib.suppress(OSError):
            self.path.unlink()


class OffsetIndex(_SparseIndex):
    """A segment's offset index: sorted ``(offset, position)`` pairs."""

    _ENTRY = struct.Struct(">ii")

    def _pack(self, key: int, value: int) -> bytes:
        return self._ENTRY.pack(key - self.base_offset, value)

    def _unpack(self, a: int, b: int) -> tuple[int, int]:
        return self.base_offset + a, b

    def append(self, offset: int, position: int) -> None:
        self.add(offset, position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """The last entry at or before ``offset``, or ``(base_offset, 0)``."""
        i = bisect.bisect_right(self.keys, offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.keys[i], self.values[i]

    def truncate_after(self, position: int) -> None:
        """Drop entries pointing at or past ``position`` (the log was cut there)."""
        i = bisect.bisect_left(self.values, position)
        del self.keys[i:]
        del self.values[i:]
        self.rewrite()


class TimeIndex(_SparseIndex):
    """A segment's time index: ``(max timestamp so far, offset)`` pairs, both growing."""

    _ENTRY = struct.Struct(">qi")

    def _pack(self, key: int, value: int) -> bytes:
        return self._ENTRY.pack(key, value - self.base_offset)

    def _unpack(self, a: int, b: int) -> tuple[int, int]:
        return a, self.base_offset + b

    @property
    def max_timestamp(self) -> int:
        return self.keys[-1] if self.keys else -1

    def append(self, timestamp: int, offset: int) -> None:
        self.add(timestamp, offset)

    def start_offset_for(self, timestamp: int) -> int:
        """An offset from which a scan finds the first record at or after ``timestamp``.

        Every record at or before the offset of an entry whose timestamp is below the target is
        itself below the target, so the scan starts after the last such entry.
        """
        i = bisect.bisect_left(self.keys, timestamp) - 1
        if i < 0:
            return self.base_offset
        return self.values[i] + 1

    def truncate_after(self, offset: int) -> None:
        """Drop entries for offsets at or past ``offset``."""
        i = bisect.bisect_left(self.values, offset)
        del self.keys[i:]
        del self.values[i:]
        self.rewrite()
