"""The ``stdin`` source: one event per line of standard input.

Each line becomes an event whose value is the line's bytes, without its ``\\n`` (a ``\\r``
stays part of the value, an empty line is an empty value, a last line without ``\\n`` is an
event too). The runtime decodes those bytes with the target topic's codec, so a line that is
not valid for it goes to the dead-letter topic. The source ends at the end of the input.

Standard input cannot be read again, so the source is not resumable: what was read but not
yet acknowledged when the process stops is lost (``validate`` reports best-effort).

Lines are read by a daemon thread, one chunk at a time and only when :meth:`read` needs more,
so a slow pipe or a terminal never blocks the event loop and at most one chunk is held beyond
what was handed out. The thread reads the file descriptor itself (``os.read``), never
``sys.stdin``'s buffered reader: a read that is still waiting when the process exits (stopped
by a signal while the input is open and idle) then holds no lock the interpreter's shutdown
needs, and the process exits normally.
"""

from __future__ import annotations

import asyncio
import io
import os
import queue
import sys
import threading
from typing import Any, ClassVar

from pydantic import Field

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    Source,
    SourceBatch,
)

__all__ = ["StdinConfig", "StdinSource"]

CHUNK_BYTES = 64 * 1024


class StdinConfig(ConnectorConfig):
    batch_size: int = Field(1000, ge=1, le=100_000, description="the most lines in one batch")


class StdinSource(Source):
    """Lines of standard input as events (their bytes); ends at the end of the input."""

    name = "stdin"
    Config: ClassVar[type[ConnectorConfig]] = StdinConfig
    resumable = False

    def __init__(self, config: StdinConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: StdinConfig = config
        self._reader: _ChunkReader | None = None
        self._pending: asyncio.Future[bytes] | None = None
        self._lines: list[bytes] = []
        self._next = 0  # the first line of _lines not handed out yet
        self._held: list[bytes] = []  # the start of a line whose end is not read yet
        self._ended = False

    @property
    def bounded(self) -> bool:
        return True

    async def open(self, position: Any) -> None:
        stream: Any = sys.stdin
        if stream is None:
            raise ConnectorError(f"stdin {self.context.name!r}: this process has no standard input")
        try:
            fd = stream.fileno()
        except (OSError, ValueError, io.UnsupportedOperation):
            raise ConnectorError(
                f"stdin {self.context.name!r}: standard input has no file descriptor to read "
                "(it is not a file, a pipe or a terminal)"
            ) from None
        self._reader = _ChunkReader(fd)

    async def read(self) -> SourceBatch | None:
        if self._reader is None:
            raise ConnectorError(f"stdin {self.context.name!r}: read before open")
        while self._next >= len(self._lines):
            if self._ended:
                return None
            if self._pending is None:
                self._pending = self._reader.request()
            # shielded: a read cancelled while it waits leaves the chunk to the next read
            chunk = await asyncio.shield(self._pending)
            self._pending = None
            self._take(chunk)
        end = min(len(self._lines), self._next + self.config.batch_size)
        events = [Event(line) for line in self._lines[self._next : end]]
        self._next = end
        return SourceBatch(events)

    def _take(self, chunk: bytes) -> None:
        """Split ``chunk`` into the lines it completes; hold its unfinished end."""
        self._lines, self._next = [], 0
        if not chunk:
            self._ended = True
            if self._held:
                self._lines.append(b"".join(self._held))
                self._held.clear()
            return
        if b"\n" not in chunk:
            self._held.append(chunk)
            return
        if self._held:
            self._held.append(chunk)
            chunk = b"".join(self._held)
            self._held.clear()
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if rest:
            self._held.append(rest)
        self._lines = lines

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.stop()
            self._reader = None


class _ChunkReader:
    """Reads a file descriptor in a daemon thread, one chunk per request.

    Only one request is outstanding at a time, so nothing is read ahead of need; the thread is
    a daemon so that a read blocked on a terminal never keeps the process alive, and it calls
    ``os.read`` (no Python-level lock is held while it waits) so that the interpreter can
    shut down around it.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._requests: queue.SimpleQueue[asyncio.Future[bytes] | None] = queue.SimpleQueue()
        threading.Thread(target=self._run, name="millstream-stdin", daemon=True).start()

    def request(self) -> asyncio.Future[bytes]:
        """A future that gets the next chunk (empty at the end of the input)."""
        future: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self._requests.put(future)
        return future

    def stop(self) -> None:
        """Let the thread end once its current read, if any, returns."""
        self._requests.put(None)

    def _run(self) -> None:
        while (future := self._requests.get()) is not None:
            try:
                outcome: bytes | BaseException = os.read(self._fd, CHUNK_BYTES)
            except Exception as exc:  # raised in the event loop, by read()
                outcome = exc
            try:
                future.get_loop().call_soon_threadsafe(_settle, future, outcome)
            except RuntimeError:  # the loop has closed: nobody waits any more
                return


def _settle(future: asyncio.Future[bytes], outcome: bytes | BaseException) -> None:
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(
            ConnectorError(f"cannot read standard input: {outcome}")
            if isinstance(outcome, OSError)
            else outcome
        )
    else:
        future.set_result(outcome)
