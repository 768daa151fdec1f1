"""One file the ``file`` source reads: its descriptor, its offsets, the lines read ahead.

A :class:`TrackedFile` reads its file in big chunks (``os.pread`` in a worker thread, at an
explicit offset) and keeps the complete lines of each as one block of bytes until they are
handed out; a chunk is sized to hold about one batch of lines, so a block is seldom split.
What it has handed out ends at :attr:`TrackedFile.offset`, the start of the next line, which
is what the source's position holds; the end of a chunk that is not a whole line yet
(``partial``) waits for the rest of its line.

Its state changes only on the event loop, after a read returned: a read cancelled while it
waits changes nothing, and the same bytes are read again next time.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

from millstream.core import Event, Rejection

from .formats import LineParser

__all__ = ["CHUNK_BYTES", "TrackedFile"]

CHUNK_BYTES = 1024 * 1024
"""The most one read takes from a file (more only when a line is longer)."""
MIN_CHUNK_BYTES = 16 * 1024
"""The least one read takes."""
_HEAD_BYTES = 64
"""How much of a file's start tells it apart from another at the same inode number."""


class TrackedFile:
    """A file being read: ``offset`` (bytes handed out), ``line`` (number of the next line).

    ``rotated_at`` is set (a ``time.monotonic()``) once the file is no longer at a path the
    glob matches (rotated away or deleted): it is read first, to its end, and dropped once it
    has had nothing new for the source's ``rotate_wait`` (a writer may still add its last
    lines before it reopens its log), its last line then even without a newline.
    ``dirty`` says it may have more to read than was seen last time.
    """

    def __init__(
        self,
        path: str,
        fd: int,
        inode: int,
        parser: LineParser,
        *,
        offset: int = 0,
        line: int = 1,
        skipping: bool = False,
    ) -> None:
        self.path = path
        self.fd = fd
        self.inode = inode
        self.parser = parser
        self.offset = offset
        self.line = line
        self.skipping = skipping
        """Inside a line longer than ``max_line_bytes``: its rest is dropped up to its end."""
        self.read_at = offset
        self.block: bytes | None = None
        """Complete lines read and not handed out, joined by ``\\n`` (no newline at its end)."""
        self.partial = b""
        self.read_size = CHUNK_BYTES
        self.rotated_at: float | None = None
        self.dirty = True
        self.done = False
        self.idle_since: float | None = None
        """When a read last found nothing new (``time.monotonic()``); None after new data."""
        self._head = b""
        """The file's first bytes when it was suspended: a file deleted meanwhile may leave its
        inode number to a new one, which these tell apart."""

    @classmethod
    def open(
        cls,
        path: str,
        parser: LineParser,
        *,
        offset: int = 0,
        line: int = 1,
        skipping: bool = False,
    ) -> TrackedFile:
        """Open ``path`` to read from ``offset``; from 0 when the file is shorter than that
        (it was truncated). OSError when it cannot be opened."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            st = os.fstat(fd)
            if st.st_size < offset:
                offset, line, skipping = 0, 1, False
            tracked = cls(path, fd, st.st_ino, parser, offset=offset, line=line, skipping=skipping)
            tracked._read_header()
        except BaseException:
            os.close(fd)
            raise
        return tracked

    @property
    def rotated(self) -> bool:
        """True once the file was rotated away (see ``rotated_at``)."""
        return self.rotated_at is not None

    def size(self) -> int:
        """The file's size now."""
        return os.fstat(self.fd).st_size

    def position(self) -> dict[str, Any]:
        """Where this file stands, as the source's position holds it."""
        here: dict[str, Any] = {
            "path": self.path,
            "inode": self.inode,
            "offset": self.offset,
            "line": self.line,
        }
        if self.skipping:
            here["skip"] = True
        return here

    def rename(self, path: str) -> None:
        """The file is now at ``path`` (renamed within what the glob matches)."""
        if path != self.path:
            self.path = path
            self.parser.rename(path)

    async def fill(self, lines: int) -> int:
        """Read the next chunk, about ``lines`` lines; the bytes read (0: the end)."""
        at = self.read_at
        size = max(self.read_size, 2 * len(self.partial))
        data = await asyncio.to_thread(os.pread, self.fd, size, at)
        if not data:
            if self.idle_since is None:
                self.idle_since = time.monotonic()
        else:
            self.idle_since = None
        if self.read_at == at:  # nothing else moved this file on meanwhile
            self._feed(data)
            block = self.block
            if block is not None and len(block) > MIN_CHUNK_BYTES:
                per_line = len(block) / (block.count(b"\n") + 1)
                wanted = int(per_line * lines * 0.97)
                self.read_size = min(CHUNK_BYTES, max(MIN_CHUNK_BYTES, wanted))
        return len(data)

    def truncated(self) -> bool:
        """True when the file is now shorter than what was read (copy-truncate)."""
        return self.size() < self.read_at

    def restart(self) -> None:
        """Read again from the start (after a truncation); the unfinished line is dropped."""
        self.offset = self.read_at = 0
        self.line = 1
        self.block, self.partial, self.skipping = None, b"", False
        self.parser.restart()

    def take(self, limit: int, *, at_end: bool) -> tuple[list[Event], list[Rejection]] | None:
        """Hand out up to ``limit`` lines as events and rejections; None when there is no
        complete line. ``at_end``: the file will not grow, so a last line without a newline
        is a line too."""
        block = self.block
        if block is not None:
            count = block.count(b"\n") + 1
            if count > limit:
                rest = block.split(b"\n", limit)[-1]
                block, self.block = block[: len(block) - len(rest) - 1], rest
                count = limit
            else:
                self.block = None
            first = self.line
            self.offset += len(block) + 1
            self.line += count
            return self.parser.parse(block, first)
        partial = self.partial
        if len(partial) > self.parser.max_line_bytes:
            self.offset += len(partial)
            self.partial, self.skipping = b"", True
            return [], [self.parser.too_long(partial, self.line)]
        if at_end and self.skipping:
            self.skipping = False  # the over-long line ends with the file
            self.line += 1
            return None
        if at_end and partial:
            first = self.line
            self.offset += len(partial)
            self.line += 1
            self.partial = b""
            return self.parser.parse(partial, first)
        return None

    def skip_to_end(self) -> None:
        """Start after the file's last complete line (counting the lines before it)."""
        at, lines, last_end = 0, 0, 0
        while chunk := os.pread(self.fd, CHUNK_BYTES, at):
            newlines = chunk.count(b"\n")
            if newlines:
                lines += newlines
                last_end = at + chunk.rfind(b"\n") + 1
            at += len(chunk)
        self.offset = self.read_at = last_end
        self.line = lines + 1

    @property
    def suspended(self) -> bool:
        """True while the descriptor is given back (see :meth:`suspend`)."""
        return self.fd < 0 and not self.done

    def suspend(self) -> bool:
        """Give the descriptor back, when nothing read ahead would be lost: the file was
        read to a line's end. True when it was closed. :meth:`reopen` takes it again. Blocks
        (a small read and a close): call it in a worker thread."""
        if self.fd < 0 or self.block is not None or self.partial or self.skipping:
            return False
        fd = self.fd
        self._head = os.pread(fd, min(_HEAD_BYTES, self.offset), 0)
        self.fd = -1
        os.close(fd)
        return True

    async def reopen(self) -> bool:
        """Open the file at ``path`` again after :meth:`suspend` (in a worker thread). False
        when that is no longer this file (another inode, or none): a rescan decides."""

        head = self._head

        def take() -> tuple[int, bool]:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
            if os.fstat(fd).st_ino != self.inode:
                os.close(fd)
                return -1, False
            return fd, os.pread(fd, len(head), 0) != head

        try:
            fd, replaced = await asyncio.to_thread(take)
        except FileNotFoundError:
            return False
        if fd < 0:
            return False
        self.fd = fd
        if replaced:  # a new file under the old inode number: read it from its start
            self.restart()
        return True

    def close(self) -> None:
        """Close the file (idempotent)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def _feed(self, data: bytes) -> None:
        self.read_at += len(data)
        if self.skipping:
            end = data.find(b"\n")
            if end < 0:
                self.offset += len(data)
                return
            self.offset += end + 1
            self.line += 1
            self.skipping = False
            data = data[end + 1 :]
        if self.partial:
            data = self.partial + data
        cut = data.rfind(b"\n")
        if cut < 0:
            self.partial = data
            return
        block = data[:cut]
        self.block = block if self.block is None else self.block + b"\n" + block
        self.partial = data[cut + 1 :]

    def _read_header(self) -> None:
        """Resuming a csv file after its header row: read the columns from its first line."""
        if not getattr(self.parser, "needs_header", False) or self.offset == 0:
            return
        head = os.pread(self.fd, self.parser.max_line_bytes + 1, 0)
        end = head.find(b"\n")
        if end >= 0:
            self.parser.take_header(head[:end].removesuffix(b"\r"))  # type: ignore[attr-defined]
