"""The ``file`` sink: events as lines of files named by a template, rolled by size and age.

Each file is written under a hidden temporary name in its folder (``.part-3.jsonl.tmp``) and
renamed to its own name (``part-3.jsonl``) when it is closed: when it reaches ``max_bytes``,
when it is ``max_age`` old (a timer closes it even when no events come), and when the sink
closes. So a reader listing the folder never sees a file that is still being written, and
a renamed file is never written to again.

:meth:`FileSink.flush` writes what is buffered and fsyncs each file written to (and its folder
the first time), so flushed lines survive a crash; closing a file fsyncs it, renames it and
fsyncs the folder. A file being written holds an exclusive ``flock``: on :meth:`open`, a
temporary file of this template that nobody holds is what a crashed run left; it is finished
(cut after its last complete line, fsynced, renamed), since everything flushed into it was
acknowledged. The lines after the last flush may come again (at-least-once): the sink is not
idempotent.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import glob
import os
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field, field_validator

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Duration,
    Event,
    EventsRejected,
    Rejection,
    Sink,
)

from .formats import WriteFormat, check_delimiter, csv_header, line_writer
from .naming import PathTemplate, Slot, final_name, temp_name

__all__ = ["FileSink", "FileSinkConfig"]

_WRITE_AT = 1024 * 1024
"""Buffered bytes of one file that are written out without waiting for a flush."""
_HOUR_MS = 3_600_000


class FileSinkConfig(ConnectorConfig):
    path: str = Field(
        description="the file name template, relative to the pipeline file's folder: "
        "`{topic}`, `{partition}`, `{date}` (UTC YYYY-MM-DD) and `{hour}` (UTC HH) of each "
        "event's timestamp, and `{n}`, the file's number in its folder (in the file name; "
        "without it, `-{n}` goes before the extension), e.g. "
        "`out/{topic}/{date}/part-{n}.jsonl`",
        min_length=1,
    )
    format: WriteFormat = Field(
        "jsonl",
        description="jsonl: each value as one line of JSON; csv: the columns of object values, "
        "a header row first; lines: text values as they are (others in their topic's codec)",
    )
    max_bytes: int = Field(
        128 * 1024 * 1024,
        ge=1,
        description="a file is closed (renamed to its name) before it would grow past this",
    )
    max_age: Duration | None = Field(
        "1h",  # validated into a timedelta
        validate_default=True,
        description="a file is closed this long after it was opened, even with no new events "
        "(null: only by size and when the pipeline stops)",
    )
    columns: list[str] | None = Field(
        None,
        description="csv: the columns, in order; when not given, the keys of the first event",
    )
    delimiter: str = Field(",", description="csv: the field separator (one character)")
    header: bool = Field(True, description="csv: begin each file with a header row")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        PathTemplate(value)
        return value

    @field_validator("max_age")
    @classmethod
    def _max_age(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value <= timedelta(0):
            raise ValueError("max_age must be longer than 0 (or null for no age limit)")
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        return check_delimiter(value)


class _OpenFile:
    """A file being written: its temporary and final paths, what is on disk and buffered."""

    def __init__(self, slot: Slot, n: int, fd: int, opened: float) -> None:
        self.slot = slot
        self.final = slot.folder / slot.name(n)
        self.temp = slot.folder / temp_name(self.final.name)
        self.fd = fd
        self.opened = opened
        self.size = 0  # on disk and buffered
        self.lines = 0  # events in it
        self.written = 0  # on disk
        self.buffer = bytearray()
        self.synced_folder = False
        self.dirty = False  # written since the last fsync


class FileSink(Sink):
    """Events as lines of jsonl, csv or text files, named by a template and rolled by size
    and age; each file appears under its name only once complete."""

    name = "file"
    Config: ClassVar[type[ConnectorConfig]] = FileSinkConfig
    idempotent = False

    def __init__(self, config: FileSinkConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: FileSinkConfig = config
        self.template = PathTemplate(config.path)
        self._base = context.resolve(".")
        self._columns: tuple[str, ...] | None = tuple(config.columns) if config.columns else None
        self._writer = (
            line_writer(
                config.format,
                context.codec,
                columns=self._columns or (),
                delimiter=config.delimiter,
            )
            if config.format != "csv" or self._columns
            else None
        )
        self._slots: dict[tuple[Any, ...], Slot] = {}
        self._next_n: dict[Slot, int] = {}
        self._files: dict[Slot, _OpenFile] = {}
        self._lock = asyncio.Lock()
        self._opened = asyncio.Event()
        self._ager: asyncio.Task[None] | None = None

    def _where(self) -> str:
        return f"file sink {self.context.name!r}"

    # -- life cycle ------------------------------------------------------------------------

    async def open(self) -> None:
        pattern = self.template.temp_glob(self._base)
        try:
            finished = await asyncio.to_thread(_finish_leftovers, pattern)
        except OSError as exc:
            raise ConnectorError(f"{self._where()}: cannot finish leftover files: {exc}") from exc
        for path in finished:
            self.context.log.info("%s: finished %s, left by an earlier run", self._where(), path)
        if self.config.max_age is not None:
            self._ager = asyncio.create_task(self._close_aged(), name=f"{self._where()} ager")

    async def write(self, events: Sequence[Event]) -> None:
        if not events:
            return
        async with self._lock:
            rejected = await self._write(events)
        if rejected:
            raise EventsRejected(rejected)

    async def flush(self) -> None:
        async with self._lock:
            await self._roll_aged()
            files = [f for f in self._files.values() if f.buffer or f.dirty]
            if files:
                await self._run(_sync_all, files)

    async def close(self) -> None:
        if self._ager is not None:
            self._ager.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._ager
            self._ager = None
        async with self._lock:
            for f in list(self._files.values()):
                try:
                    await self._close_file(f)
                except ConnectorError as exc:
                    self.context.log.warning("%s: %s", self._where(), exc)

    # -- writing ---------------------------------------------------------------------------

    async def _write(self, events: Sequence[Event]) -> list[Rejection]:
        rejected: list[Rejection] = []
        writer = self._writer
        if writer is None:  # csv without columns: the first object's keys name them
            first = next((e.value for e in events if isinstance(e.value, dict)), None)
            if first is None:
                return [Rejection(e, "csv needs an object value") for e in events]
            self._columns = tuple(str(k) for k in first)
            writer = self._writer = line_writer(
                "csv", self.context.codec, columns=self._columns, delimiter=self.config.delimiter
            )
        max_bytes = self.config.max_bytes
        uses = self.template.uses
        timed = "date" in uses or "hour" in uses
        slots = self._slots
        current: _OpenFile | None = None
        current_key: tuple[Any, ...] | None = None
        for event in events:
            try:
                data = writer(event)
            except ValueError as exc:
                rejected.append(Rejection(event, str(exc)))
                continue
            hour = _hour_of(event.timestamp) if timed else 0
            key = (event.topic, event.partition, hour)
            if key != current_key or current is None:
                slot = slots.get(key)
                if slot is None:
                    slot = slots[key] = self._slot(event.topic, event.partition, hour)
                current = self._files.get(slot) or await self._new_file(slot)
                current_key = key
            if current.lines and current.size + len(data) > max_bytes:
                await self._close_file(current)
                current = await self._new_file(current.slot)
            current.buffer += data
            current.size += len(data)
            current.lines += 1
            if len(current.buffer) >= _WRITE_AT:
                await self._run(_write_out, current)
        return rejected

    def _slot(self, topic: str | None, partition: int | None, hour: int) -> Slot:
        date, hh = "", ""
        if hour:
            stamp = time.gmtime(hour * 3600)
            date, hh = time.strftime("%Y-%m-%d", stamp), f"{stamp.tm_hour:02d}"
        return self.template.slot(
            self._base, topic=topic or "none", partition=partition or 0, date=date, hour=hh
        )

    async def _new_file(self, slot: Slot) -> _OpenFile:
        n = self._next_n.get(slot)
        if n is None:
            n = await asyncio.to_thread(slot.next_n)
        fd, n = await self._run(_create, slot, n)
        self._next_n[slot] = n + 1
        f = _OpenFile(slot, n, fd, time.monotonic())
        if self.config.format == "csv" and self.config.header and self._columns is not None:
            head = csv_header(self._columns, self.config.delimiter)
            f.buffer += head
            f.size += len(head)
        self._files[slot] = f
        self._opened.set()
        return f

    async def _close_file(self, f: _OpenFile) -> None:
        """Write, fsync and rename ``f``; it is no longer open, even when that fails."""
        if self._files.get(f.slot) is f:
            del self._files[f.slot]
        await self._run(_finish, f)

    async def _roll_aged(self) -> None:
        max_age = self.config.max_age
        if max_age is None:
            return
        oldest = time.monotonic() - max_age.total_seconds()
        for f in list(self._files.values()):
            if f.opened <= oldest:
                await self._close_file(f)

    async def _close_aged(self) -> None:
        """Close files at their ``max_age``, also while no events come."""
        assert self.config.max_age is not None
        age = self.config.max_age.total_seconds()
        while True:
            if not self._files:
                self._opened.clear()
                await self._opened.wait()
                continue
            due = min(f.opened for f in self._files.values()) + age - time.monotonic()
            if due > 0:
                await asyncio.sleep(due)
                continue
            try:
                async with self._lock:
                    await self._roll_aged()
            except ConnectorError as exc:
                self.context.log.warning("%s: %s", self._where(), exc)
                await asyncio.sleep(min(age, 5.0))

    async def _run(self, fn: Any, *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except OSError as exc:
            raise ConnectorError(f"{self._where()}: {exc}") from exc


def _hour_of(timestamp: int) -> int:
    return (timestamp or int(time.time() * 1000)) // _HOUR_MS


# -- file operations (run in a worker thread) ------------------------------------------------


def _create(slot: Slot, n: int) -> tuple[int, int]:
    """Create and lock the temporary file of the first free number from ``n`` on."""
    _make_folders(slot.folder)
    while True:
        final = slot.folder / slot.name(n)
        temp = slot.folder / temp_name(final.name)
        if not final.exists():
            try:
                fd = os.open(
                    temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC, 0o644
                )
            except FileExistsError:
                pass
            else:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd, n
        n += 1


def _write_out(f: _OpenFile) -> None:
    """Write ``f``'s buffer; on failure, cut the file back to what was whole before."""
    if not f.buffer:
        return
    data = bytes(f.buffer)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(f.fd, view) :]
    except OSError:
        with contextlib.suppress(OSError):
            os.ftruncate(f.fd, f.written)
        f.size = f.written
        f.buffer.clear()
        raise
    f.buffer.clear()
    f.written += len(data)
    f.dirty = True


def _sync(f: _OpenFile) -> None:
    _write_out(f)
    if f.dirty:
        os.fsync(f.fd)
        f.dirty = False
    if not f.synced_folder:
        _fsync_folder(f.slot.folder)
        f.synced_folder = True


def _sync_all(files: list[_OpenFile]) -> None:
    for f in files:
        _sync(f)


def _finish(f: _OpenFile) -> None:
    """Make ``f`` durable and give it its name (renamed while still locked)."""
    try:
        _sync(f)
        os.rename(f.temp, f.final)
        _fsync_folder(f.slot.folder)
    finally:
        os.close(f.fd)


def _finish_leftovers(pattern: str) -> list[Path]:
    """Finish the temporary files matching ``pattern`` that no live writer holds: cut after
    the last complete line, fsync, rename (an empty one is removed). The paths finished."""
    done: list[Path] = []
    for path in sorted(glob.glob(pattern)):
        temp = Path(path)
        name = final_name(temp.name)
        if name is None:
            continue
        try:
            fd = os.open(temp, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live writer holds it
            if not temp.exists():
                continue  # renamed by its writer just before we locked it
            whole = _whole_lines(fd)
            final = temp.with_name(name)
            if whole == 0:
                os.unlink(temp)
            elif final.exists():
                continue  # never overwrite a finished file; leave it to be looked at
            else:
                os.ftruncate(fd, whole)
                os.fsync(fd)
                os.rename(temp, final)
                done.append(final)
            _fsync_folder(temp.parent)
        finally:
            os.close(fd)
    return done


def _whole_lines(fd: int) -> int:
    """The length of the file up to and including its last newline."""
    end = os.fstat(fd).st_size
    while end > 0:
        start = max(0, end - 64 * 1024)
        chunk = os.pread(fd, end - start, start)
        cut = chunk.rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        end = start
    return 0


def _make_folders(folder: Path) -> None:
    """Create ``folder`` and its missing parents, each made durable in its parent."""
    missing: list[Path] = []
    here = folder
    while not here.exists():
        missing.append(here)
        here = here.parent
    for path in reversed(missing):
        with contextlib.suppress(FileExistsError):
            path.mkdir()
        _fsync_folder(path.parent)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
