"""The ``file`` source: the lines of files matching a path or glob, read once or followed.

``mode: once`` reads every matching file to its end (a last line without a newline included)
and ends. ``mode: tail`` follows the files like ``tail -F``: new lines as they are written,
files that start to match later, a file renamed away by log rotation (read to its end, then
the new file at the path from its start), a file truncated in place (read again from its
start). Changes are noticed through watchdog events (:mod:`.follow`), never by polling; in tail
mode a last line without its newline waits for it.

The position is ``{"files": [{"path", "inode", "offset", "line"}, ...]}``: for each file, the
byte offset just after the last line handed out. A restart reopens each file where it was;
a file whose inode is no longer at its path (rotated while the pipeline was down) is looked
for by inode among the other files of its folder and read to its end from there, and the file
now at the path starts from 0; a file shorter than its offset (truncated) starts again from 0.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import glob
import os
import stat
import time
from datetime import timedelta
from functools import partial
from typing import Any, ClassVar, Literal

from pydantic import Field, ValidationInfo, field_validator

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Duration,
    Source,
    SourceBatch,
)

from .follow import Changes, FolderWatch
from .formats import LineFormat, LineParser, check_delimiter, parser_for
from .tracked import TrackedFile

__all__ = ["FileSource", "FileSourceConfig"]

_Key = tuple[int, int]  # (st_dev, st_ino)


class FileSourceConfig(ConnectorConfig):
    path: str = Field(
        description="the file to read, or a glob (`*`, `?`, `[abc]`, `**` for any folders); "
        "relative to the pipeline file's folder",
        min_length=1,
    )
    mode: Literal["tail", "once"] = Field(
        "tail",
        description="tail: follow the files for new lines, rotation and new files, like "
        "tail -F (never ends); once: read each matching file to its end, then end",
    )
    format: LineFormat = Field(
        "lines",
        description="lines: each line as text; jsonl: each line a JSON document; csv: each "
        "row an object of column name to text",
    )
    columns: list[str] | None = Field(
        None,
        description="csv: the column names; when not given, the first row of each file names them",
    )
    delimiter: str = Field(",", description="csv: the field separator (one character)")
    encoding: str = Field(
        "utf-8",
        description="the files' text encoding (one where a newline is the byte `\\n`: utf-8, "
        "latin-1, cp1252…); a line that does not decode is rejected",
    )
    max_line_bytes: int = Field(
        1024 * 1024,
        ge=1,
        le=64 * 1024 * 1024,
        description="a longer line is rejected (dead-lettered with its start) and skipped",
    )
    batch_size: int = Field(5000, ge=1, le=100_000, description="the most lines in one batch")
    start_at: Literal["beginning", "end"] = Field(
        "beginning",
        description="tail, first run only: read the files already there from their beginning "
        "or only what is written from now on (after a restart the position decides; files "
        "that appear later are read from their beginning)",
    )
    rotate_wait: Duration = Field(
        "5s",  # validated into a timedelta
        validate_default=True,
        description="tail: how long a file rotated away is still followed for lines its writer "
        "adds before reopening its log (read first, ahead of the new file)",
    )
    idle_close: Duration = Field(
        "1m",
        gt=timedelta(0),
        validate_default=True,
        description="tail: a file with nothing new for this long gives its descriptor back "
        "(its position is kept); it is opened again when it is written to",
    )
    headers: list[Literal["file", "line"]] = Field(
        ["file"],
        description="the headers each event gets: `file` (its file's path), `line` (its line "
        "number); fewer headers, faster (dead letters always have both)",
    )

    @field_validator("rotate_wait")
    @classmethod
    def _rotate_wait(cls, value: timedelta) -> timedelta:
        if value < timedelta(0):
            raise ValueError("rotate_wait cannot be negative")
        return value

    @field_validator("columns")
    @classmethod
    def _columns(cls, value: list[str] | None, info: ValidationInfo) -> list[str] | None:
        if value is None:
            return None
        if info.data.get("format") != "csv":
            raise ValueError("columns are for format: csv")
        if not value:
            raise ValueError("give at least one column, or leave columns out to read the header")
        if len(set(value)) != len(value):
            raise ValueError(f"a column is named twice in {value}")
        return value

    @field_validator("delimiter")
    @classmethod
    def _delimiter(cls, value: str) -> str:
        return check_delimiter(value)

    @field_validator("encoding")
    @classmethod
    def _encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            raise ValueError(f"unknown encoding {value!r}; e.g. utf-8, latin-1, cp1252") from None
        if "\n".encode(value, "ignore") != b"\n":
            raise ValueError(
                f"encoding {value!r} does not write a newline as the byte \\n; "
                "use one that does (utf-8, latin-1, cp1252…)"
            )
        return value


class FileSource(Source):
    """Lines of files (a path or a glob) as events; follows them like tail -F, or reads once.

    Each event's value is the line's text (``lines``), its JSON document (``jsonl``) or its
    row as an object (``csv``), with a ``file`` header naming the file. Lines that cannot be
    read (not JSON, a csv row with the wrong number of fields, not in the encoding, longer
    than ``max_line_bytes``) are handed back as rejected input, naming file and line.
    """

    name = "file"
    Config: ClassVar[type[ConnectorConfig]] = FileSourceConfig
    resumable = True

    def __init__(self, config: FileSourceConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: FileSourceConfig = config
        self.pattern = str(context.resolve(config.path))
        self._files: dict[_Key, TrackedFile] = {}
        self._watch: FolderWatch | None = None
        self._last: str = ""  # the path of the file the last batch came from

    @property
    def bounded(self) -> bool:
        return self.config.mode == "once"

    def _where(self) -> str:
        return f"file source {self.context.name!r}"

    # -- life cycle ------------------------------------------------------------------------

    async def open(self, position: Any) -> None:
        if self.config.mode == "tail":
            watch = FolderWatch(self.pattern)
            if not watch.folder.is_dir():
                raise ConnectorError(
                    f"{self._where()}: folder {watch.folder} does not exist "
                    f"(path: {self.config.path}); create it or fix path"
                )
            try:
                watch.start()  # before matching: a change from now on is noticed
            except OSError as exc:
                raise ConnectorError(
                    f"{self._where()}: cannot watch {watch.folder}: {exc}"
                ) from exc
            self._watch = watch
        matches = await asyncio.to_thread(self._match)
        if isinstance(position, dict) and isinstance(position.get("last"), str):
            self._last = position["last"]
        for entry in _entries(position):
            await self._resume(entry, matches)
        if not matches and self.config.mode == "once":
            self.context.log.warning("%s: no file matches %s", self._where(), self.pattern)
        first_run = position is None
        for key, path in matches.items():
            if key in self._files:
                continue
            tracked = await self._track(key, path)
            start_at_end = (
                first_run and self.config.mode == "tail" and self.config.start_at == "end"
            )
            if tracked is not None and start_at_end:
                await asyncio.to_thread(tracked.skip_to_end)

    async def read(self) -> SourceBatch | None:
        while True:
            if self._watch is not None:
                changes = self._watch.take()
                if changes.renamed:
                    await self._rescan()
                self._mark_dirty(changes)
            for tracked in self._order():
                batch = await self._read_from(tracked)
                if batch is not None:
                    return batch
            if self._watch is None:
                return None  # once: every file read to its end
            self._watch.follow(t.path for t in self._files.values() if t.rotated)
            await self._close_idle()
            due = min(
                (d for d in (self._next_drop(), self._next_idle()) if d is not None),
                default=None,
            )
            if due is None:
                await self._watch.wait()
            else:  # a rotated file is due to be dropped, or a file to be closed, then
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._watch.wait(), max(0.0, due - time.monotonic()))

    async def close(self) -> None:
        if self._watch is not None:
            watch, self._watch = self._watch, None
            await asyncio.to_thread(watch.stop)  # joins the observer's thread
        for tracked in self._files.values():
            tracked.close()
        self._files.clear()

    # -- reading ---------------------------------------------------------------------------

    def _mark_dirty(self, changes: Changes) -> None:
        """Mark the files to read again: those written to (all after a rename, or a write to
        a path no file is known by)."""
        if not (changes.written or changes.renamed):
            return
        by_path = {os.path.normpath(t.path): t for t in self._files.values()}
        named = [by_path.get(path) for path in changes.paths]
        if changes.renamed or None in named:
            for tracked in self._files.values():
                tracked.dirty = True
            return
        for known in named:
            if known is not None:
                known.dirty = True

    async def _close_idle(self) -> None:
        """Give back the descriptors of files with nothing new for ``idle_close``."""
        wait = self.config.idle_close.total_seconds()
        now = time.monotonic()
        idle = [
            t
            for t in self._files.values()
            if t.idle_since is not None
            and now - t.idle_since >= wait
            and t.fd >= 0
            and not t.rotated
            and not t.dirty
        ]
        if idle:
            await asyncio.to_thread(lambda: [t.suspend() for t in idle])

    def _next_idle(self) -> float | None:
        """When the first open file's ``idle_close`` ends (None: none is idle)."""
        wait = self.config.idle_close.total_seconds()
        ends = [
            t.idle_since + wait
            for t in self._files.values()
            if t.idle_since is not None and t.fd >= 0 and not t.rotated and not t.done
        ]
        return min(ends) if ends else None

    def _next_drop(self) -> float | None:
        """When the first rotated file's ``rotate_wait`` ends (None: no rotated file)."""
        wait = self.config.rotate_wait.total_seconds()
        ends = [t.rotated_at + wait for t in self._files.values() if t.rotated_at is not None]
        return min(ends) if ends else None

    def _order(self) -> list[TrackedFile]:
        """Rotated files first (to their end); then, once, each file in path order to its end;
        in tail mode, the files in turn from the one after the last read (kept in the
        position, so a restart goes on in the same turn), so one busy file starves no other."""
        rotated = [t for t in self._files.values() if t.rotated and not t.done]
        live = sorted(
            (t for t in self._files.values() if not t.rotated and not t.done), key=lambda t: t.path
        )
        if self._watch is None:
            return rotated + live
        after = [t for t in live if t.path > self._last]
        return rotated + after + [t for t in live if t.path <= self._last]

    async def _read_from(self, tracked: TrackedFile) -> SourceBatch | None:
        """The next batch of ``tracked``, or None when it has nothing complete to give."""
        once = self._watch is None
        at_end = False
        while True:
            got = tracked.take(self.config.batch_size, at_end=at_end)
            if got is not None:
                self._last = tracked.path
                events, rejected = got
                return SourceBatch(events, self._position(), rejected)
            if at_end:
                self._finish(tracked)
                return None
            if not tracked.dirty and not once and not self._due(tracked):
                return None
            if tracked.suspended and not await tracked.reopen():
                if tracked.rotated:  # gone while closed: it had been read to its end
                    self._finish(tracked)
                tracked.dirty = False  # else another file is at its path: a rescan decides
                return None
            try:
                read = await tracked.fill(self.config.batch_size)
            except OSError as exc:
                raise ConnectorError(f"{self._where()}: cannot read {tracked.path}: {exc}") from exc
            if read:
                continue
            tracked.dirty = False
            if tracked.truncated():
                self.context.log.info(
                    "%s: %s was truncated; reading it again from its start",
                    self._where(),
                    tracked.path,
                )
                tracked.restart()
                tracked.dirty = True
                continue
            if once or self._due(tracked):
                at_end = True
                continue
            return None

    def _due(self, tracked: TrackedFile) -> bool:
        """True when ``tracked`` was rotated away longer than ``rotate_wait`` ago."""
        rotated_at = tracked.rotated_at
        wait = self.config.rotate_wait.total_seconds()
        return rotated_at is not None and time.monotonic() >= rotated_at + wait

    def _finish(self, tracked: TrackedFile) -> None:
        """``tracked`` was read to its end for good: in once mode it stays (its position
        says it is done); a rotated file is dropped."""
        tracked.done = True
        if tracked.rotated:
            tracked.close()
            for key, other in list(self._files.items()):
                if other is tracked:
                    del self._files[key]

    def _position(self) -> dict[str, Any]:
        return {"files": [t.position() for t in self._files.values()], "last": self._last}

    # -- finding files ---------------------------------------------------------------------

    def _match(self) -> dict[_Key, str]:
        """The regular files the glob matches now, by (device, inode)."""
        found: dict[_Key, str] = {}
        for path in sorted(glob.glob(self.pattern, recursive=True)):
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                found.setdefault((st.st_dev, st.st_ino), path)
        return found

    async def _rescan(self) -> None:
        """Match the glob again: files renamed, rotated away, or new (the folders are listed
        and the files opened in a worker thread, not on the event loop)."""
        matches = await asyncio.to_thread(self._match)
        for key, tracked in self._files.items():
            path = matches.get(key)
            if path is not None:
                tracked.rename(path)
            elif not tracked.rotated:
                tracked.rotated_at = time.monotonic()
                tracked.dirty = True
                moved = await asyncio.to_thread(_sibling, tracked.path, tracked.inode)
                if moved is not None:
                    tracked.rename(moved[1])
        for key, path in matches.items():
            if key not in self._files:
                await self._track(key, path)

    def _parser(self, path: str) -> LineParser:
        c = self.config
        return parser_for(
            c.format,
            path,
            encoding=c.encoding,
            max_line_bytes=c.max_line_bytes,
            line_header="line" in c.headers,
            file_header="file" in c.headers,
            columns=c.columns,
            delimiter=c.delimiter,
        )

    async def _track(
        self, key: _Key, path: str, *, entry: dict[str, Any] | None = None
    ) -> TrackedFile | None:
        """Start reading ``path`` (None when it vanished meanwhile); it is opened (and a csv
        header read) in a worker thread."""
        offset, line, skipping = 0, 1, False
        if entry is not None:
            offset, line, skipping = entry["offset"], entry["line"], entry["skip"]
        try:
            tracked = await asyncio.to_thread(
                partial(
                    TrackedFile.open,
                    path,
                    self._parser(path),
                    offset=offset,
                    line=line,
                    skipping=skipping,
                )
            )
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ConnectorError(f"{self._where()}: cannot open {path}: {exc}") from exc
        if entry is not None and tracked.offset < offset:
            self.context.log.warning(
                "%s: %s is shorter than where it was left (%d bytes); reading it from its start",
                self._where(),
                path,
                offset,
            )
        self._files[key] = tracked
        return tracked

    async def _resume(self, entry: dict[str, Any], matches: dict[_Key, str]) -> None:
        """Reopen the file of a stored position entry, found by its inode."""
        inode = entry["inode"]
        for key, path in matches.items():
            if key[1] == inode and key not in self._files:
                await self._track(key, path, entry=entry)
                return
        found = await asyncio.to_thread(_sibling, entry["path"], inode)
        if found is None:
            self.context.log.warning(
                "%s: %s (inode %d) is gone; what was written to it after offset %d was not read",
                self._where(),
                entry["path"],
                inode,
                entry["offset"],
            )
            return
        key, path = found
        tracked = await self._track(key, path, entry=entry)
        if tracked is not None:
            tracked.rotated_at = time.monotonic()  # rotated while the pipeline was down


def _entries(position: Any) -> list[dict[str, Any]]:
    """The file entries of a stored position (malformed ones left out)."""
    if not isinstance(position, dict) or not isinstance(position.get("files"), list):
        return []
    out = []
    for entry in position["files"]:
        if not isinstance(entry, dict):
            continue
        try:
            out.append(
                {
                    "path": str(entry["path"]),
                    "inode": int(entry["inode"]),
                    "offset": max(0, int(entry["offset"])),
                    "line": int(entry.get("line", 1)),
                    "skip": bool(entry.get("skip", False)),
                }
            )
        except (KeyError, TypeError, ValueError):
            continue
    return out


def _sibling(path: str, inode: int) -> tuple[_Key, str] | None:
    """A regular file with ``inode`` in the folder of ``path`` (where rotation puts it)."""
    folder = os.path.dirname(path) or "."
    try:
        with os.scandir(folder) as entries:
            for item in entries:
                try:
                    if item.inode() == inode and item.is_file(follow_symlinks=False):
                        st = item.stat(follow_symlinks=False)
                        return (st.st_dev, st.st_ino), item.path
                except OSError:
                    continue
    except OSError:
        return None
    return None
