"""Noticing changes to followed files: a watchdog observer that wakes the event loop.

The ``file`` source in ``tail`` mode never polls. A :class:`FolderWatch` runs a watchdog
observer (inotify on Linux, FSEvents on macOS, ReadDirectoryChangesW on Windows) on the
folders a glob can match in; each event about a path the glob matches is counted, in the
observer's thread, and wakes the source's ``read`` through ``loop.call_soon_threadsafe``. The
source then asks :meth:`FolderWatch.take` what happened: data may have been written (read the
files again) and, when a file was created, moved or deleted, the glob must be matched again
(rotation, new files).

Filesystems that send no change events (most network filesystems) are not followed: use
``mode: once`` there.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import translate
from pathlib import Path

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer

__all__ = ["Changes", "FolderWatch", "watched_folders"]

_STRUCTURAL = frozenset({"created", "deleted", "moved"})
_EVENTS = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileModifiedEvent,
    FileClosedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


def watched_folders(pattern: str) -> tuple[Path, bool]:
    """The folder to watch for the glob ``pattern`` (absolute), and whether recursively.

    It is the glob's longest folder without wildcards; recursively when a wildcard is in a
    folder part (``logs/*/app.log``, ``logs/**/*.log``)."""
    parts = Path(pattern).parts
    literal: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            return Path(*literal), True
        literal.append(part)
    return Path(*literal), False


@dataclass(frozen=True, slots=True)
class Changes:
    """What happened since the last :meth:`FolderWatch.take`."""

    written: bool
    """Some matching file may have new data (or may have been truncated)."""
    paths: frozenset[str]
    """The (normalised) paths those writes were to."""
    renamed: bool
    """A matching path was created, moved or deleted: match the glob again."""


class FolderWatch:
    """Watches the folder of a glob; :meth:`wait` returns once a matching path changed.

    :meth:`start` needs the running event loop (it is the one woken). Events are counted in
    the observer's thread; the loop reads the counts, so no change is ever lost between a
    :meth:`take` and the next :meth:`wait`.
    """

    def __init__(self, pattern: str) -> None:
        self.pattern = pattern
        self.folder, self.recursive = watched_folders(pattern)
        self._match = re.compile(translate(pattern)).match
        self._observer: Observer | None = None  # type: ignore[valid-type]
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken = asyncio.Event()
        self._signalled = False
        self._written = 0  # counts, written only by the observer's thread
        self._renamed = 0
        self._seen = (0, 0)
        self._also: frozenset[str] = frozenset()
        self._paths: set[str] = set()  # written to since the last take; under _lock
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start watching; OSError when the folder cannot be watched."""
        self._loop = asyncio.get_running_loop()
        observer = Observer()
        observer.daemon = True
        observer.schedule(
            _Handler(self), str(self.folder), recursive=self.recursive, event_filter=_EVENTS
        )
        observer.start()
        self._observer = observer

    def stop(self) -> None:
        """Stop watching (idempotent)."""
        observer, self._observer = self._observer, None
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)

    def take(self) -> Changes:
        """What changed since the last call; the next :meth:`wait` waits for more."""
        self._signalled = False
        self._woken.clear()
        with self._lock:
            written, renamed = self._written, self._renamed
            paths, self._paths = frozenset(self._paths), set()
        seen_written, seen_renamed = self._seen
        self._seen = (written, renamed)
        return Changes(
            written=written != seen_written, renamed=renamed != seen_renamed, paths=paths
        )

    async def wait(self) -> None:
        """Return once something changed after the last :meth:`take`."""
        if (self._written, self._renamed) != self._seen:
            return
        await self._woken.wait()

    def follow(self, paths: Iterable[str]) -> None:
        """Report changes to ``paths`` too (files rotated away, which the glob no longer
        matches, but which are still read)."""
        self._also = frozenset(paths)  # replaced whole: the observer's thread reads it

    def relevant(self, paths: Iterable[str]) -> bool:
        """True when one of ``paths`` matches the glob or is followed."""
        also = self._also
        return any(self._match(path) or path in also for path in paths)

    def notice(self, renamed: bool, paths: Iterable[str] = ()) -> None:
        """Count a change to ``paths`` (called in the observer's thread) and wake the loop."""
        with self._lock:
            if renamed:
                self._renamed += 1
            else:
                self._written += 1
                self._paths.update(os.path.normpath(path) for path in paths)
        if self._signalled or self._loop is None:
            return
        self._signalled = True
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
            self._loop.call_soon_threadsafe(self._woken.set)


class _Handler(FileSystemEventHandler):
    def __init__(self, watch: FolderWatch) -> None:
        self.watch = watch

    def on_any_event(self, event: FileSystemEvent) -> None:
        paths = [os.fsdecode(event.src_path)]
        if event.dest_path:
            paths.append(os.fsdecode(event.dest_path))
        renamed = event.event_type in _STRUCTURAL
        if event.is_directory:
            if renamed and self.watch.recursive:
                self.watch.notice(True)
            return
        if self.watch.relevant(paths):
            self.watch.notice(renamed, paths)
