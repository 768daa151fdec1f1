"""The store: a data directory of topics, each a set of partition folders.

::

    <data>/
      millstream.json            format version, and every topic: partitions, configs, id
      .lock                      held (flock) by the one process that writes the store
      .clean-shutdown            present only while no writer has the store open
      readings-0/                a partition: 00000000000000000000.log/.index/.timeindex, ...
      readings-1/
      __consumer_offsets-0/

One process owns a data directory for writing: :meth:`LogStore.open` takes an exclusive
``flock`` on ``.lock`` and refuses, naming the owner, when another process holds it. Other
processes may open the store read-only at the same time and see what the owner has written.

``millstream.json`` is replaced atomically (write, fsync, rename, fsync the directory). A topic is
created by recording it there first and making its folders after; it is deleted by renaming its
folders aside, recording the deletion, and then removing them, so a crash at any step leaves a
store that opens cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import os
import re
import resource
import shutil
import socket
import time
import uuid
from collections.abc import Mapping
from pathlib import Path

from ..errors import (
    ForeignFileError,
    InvalidPartitionsError,
    ReadOnlyStoreError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
    StoreWriteError,
    TopicExistsError,
    UnknownTopicError,
)
from .commit import GroupCommit
from .compaction import compact_partition
from .config import TopicConfig
from .names import is_internal, validate_topic_name
from .partition import Partition

__all__ = ["MAX_PARTITIONS", "LogStore", "Topic"]

MAX_PARTITIONS = 10_000
"""The most partitions one topic may have."""

_META = "millstream.json"
_LOCK = ".lock"
_CLEAN = ".clean-shutdown"
_FORMAT = 1
_DELETED = re.compile(r"\.deleted-[0-9a-f]{32}")
"""A partition folder renamed aside by a topic deletion that had not finished."""


class Topic:
    """A topic: its name, config, and partitions."""

    def __init__(self, name: str, config: TopicConfig, topic_id: str) -> None:
        self.name = name
        self.config = config
        self.id = topic_id
        self.partitions: list[Partition] = []
        self.declared_partitions = 0  # what millstream.json records
        # Once compacted, a topic's offsets may have gaps for good, whatever its policy later.
        self.gaps = config.compact

    @property
    def internal(self) -> bool:
        return is_internal(self.name)

    def partition(self, index: int) -> Partition:
        """Partition ``index``; InvalidPartitionsError names the valid range."""
        if not 0 <= index < len(self.partitions):
            raise InvalidPartitionsError(
                f"partition {index} does not exist in topic {self.name!r}; "
                f"valid partitions are 0 to {len(self.partitions) - 1}"
            )
        return self.partitions[index]

    def __repr__(self) -> str:
        return f"Topic({self.name!r}, partitions={len(self.partitions)})"


class LogStore:
    """The event log of one data directory."""

    def __init__(self, path: Path, *, read_only: bool) -> None:
        self.path = path
        self.read_only = read_only
        self.committer = GroupCommit()
        self._topics: dict[str, Topic] = {}
        self._lock_fd: int | None = None
        self._meta_mtime = 0.0
        self._closed = False

    # --- opening --------------------------------------------------------------------------

    @classmethod
    def open(
        cls, path: str | os.PathLike[str], *, read_only: bool = False, create: bool = True
    ) -> LogStore:
        """Open the store in directory ``path``; when writable and ``create``, make it first if
        it does not exist yet.

        Raises StoreLockedError when another process owns it, StoreError when ``path`` is not a
        store (a file, a folder with other things in it, or nothing when ``create`` is False),
        ForeignFileError for a file the store did not write.
        """
        store = cls(Path(path), read_only=read_only)
        store._open(create=create and not read_only)
        return store

    def _open(self, *, create: bool) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise StoreError(f"data directory {str(path)!r} is a file; give a directory path")
        meta = path / _META
        if not meta.exists() and not create:
            raise StoreError(
                f"no millstream store at {str(path)!r}: the directory does not exist or "
                "holds no millstream.json; create one with `millstream topics create`"
            )
        if not self.read_only:
            if path.exists() and not meta.exists():
                strangers = [n for n in os.listdir(path) if n not in (_LOCK,)]
                if strangers:
                    raise StoreError(
                        f"directory {str(path)!r} is not a millstream store (it holds "
                        f"{strangers[0]!r} and no millstream.json); use an empty or new directory"
                    )
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create data directory {str(path)!r}: {exc}") from exc
            self._lock()
            _raise_open_file_limit()
        try:
            clean = (path / _CLEAN).exists()
            if not meta.exists():
                self._write_meta()
                clean = True
            self._load(clean_shutdown=clean)
            if not self.read_only:
                (path / _CLEAN).unlink(missing_ok=True)
                _fsync_dir(path)
        except BaseException:
            self._unlock()
            raise

    def _lock(self) -> None:
        lock_path = self.path / _LOCK
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            os.close(fd)
            raise StoreLockedError(
                f"data directory {str(self.path)!r} is in use by {owner}; one process writes a "
                "store at a time: stop it, or run `millstream broker` to share the store"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on {socket.gethostname()}".encode(), 0)
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _read_meta(self) -> dict:
        meta_path = self.path / _META
        try:
            meta = json.loads(meta_path.read_text())
            self._meta_mtime = meta_path.stat().st_mtime
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {str(meta_path)!r}: {exc}") from exc
        if meta.get("format") != _FORMAT:
            raise StoreError(
                f"{str(meta_path)!r} has format {meta.get('format')!r}; this version reads "
                f"format {_FORMAT}"
            )
        return meta

    def _load(self, *, clean_shutdown: bool) -> None:
        meta = self._read_meta()
        topics = meta.get("topics", {})
        expected = {_META, _LOCK, _CLEAN}
        for name, info in topics.items():
            for p in range(info["partitions"]):
                expected.add(f"{name}-{p}")
        for entry in os.listdir(self.path):
            if entry in expected:
                continue
            if _DELETED.fullmatch(entry) or entry == _META + ".tmp":
                if not self.read_only:
                    _remove(self.path / entry)
                continue
            if self.read_only and "-" in entry:
                continue  # a topic the owner created after our metadata read
            raise ForeignFileError(
                f"foreign file {str(self.path / entry)!r} in the data directory: a store holds "
                "only millstream.json and topic partition folders; move it elsewhere"
            )
        for name, info in sorted(topics.items()):
            topic = Topic(name, TopicConfig(info.get("config", {})), info.get("id", ""))
            topic.declared_partitions = info["partitions"]
            topic.gaps = bool(info.get("gaps", topic.gaps))
            for p in range(info["partitions"]):
                topic.partitions.append(self._open_partition(topic, p, clean_shutdown))
            self._topics[name] = topic

    def _open_partition(self, topic: Topic, index: int, clean_shutdown: bool) -> Partition:
        partition = Partition(
            topic.name,
            index,
            self.path / f"{topic.name}-{index}",
            lambda: topic.config,
            self.committer,
            writable=not self.read_only,
            gaps=lambda: topic.gaps,
        )
        partition.open(clean_shutdown=clean_shutdown)
        return partition

    def _write_meta(self) -> None:
        topics = {
            t.name: {
                "partitions": t.declared_partitions,
                "config": dict(t.config.overrides),
                "id": t.id,
                "gaps": t.gaps,
            }
            for t in self._topics.values()
        }
        data = json.dumps({"format": _FORMAT, "topics": topics}, indent=1, sort_keys=True)
        tmp = self.path / (_META + ".tmp")
        with open(tmp, "w") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path / _META)
        _fsync_dir(self.path)

    # --- topics ---------------------------------------------------------------------------

    def topic_names(self) -> list[str]:
        """Every topic's name, internal ones included, sorted."""
        return sorted(self._topics)

    def has_topic(self, name: str) -> bool:
        return name in self._topics

    def topic(self, name: str) -> Topic:
        """The topic called ``name``; UnknownTopicError when there is none."""
        topic = self._topics.get(name)
        if topic is None:
            validate_topic_name(name)
            if self.read_only:
                self.refresh()
                topic = self._topics.get(name)
            if topic is None:
                raise UnknownTopicError.named(name)
        return topic

    def create_topic(
        self, name: str, partitions: int = 1, config: Mapping[str, object] | None = None
    ) -> Topic:
        """Create a topic with ``partitions`` partitions and the given config overrides."""
        self._check_writable()
        validate_topic_name(name)
        if name in self._topics:
            raise TopicExistsError(f"topic {name!r} already exists")
        _check_partition_count(partitions)
        topic_config = TopicConfig.parse(config)
        topic = Topic(name, topic_config, uuid.uuid4().hex)
        topic.declared_partitions = partitions
        self._topics[name] = topic
        try:
            self._write_meta()
        except OSError as exc:
            del self._topics[name]
            raise StoreError(f"cannot record topic {name!r}: {exc}") from exc
        try:
            for p in range(partitions):
                topic.partitions.append(self._open_partition(topic, p, True))
            _fsync_dir(self.path)
        except (OSError, StoreError) as exc:
            self._abandon(topic)
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            if getattr(exc, "errno", None) == errno.EMFILE or "Too many open files" in reason:
                reason = "too many open files: raise the limit (ulimit -n) or use fewer partitions"
            raise StoreWriteError(
                f"cannot create topic {name!r} with {partitions} partitions: {reason}; "
                "nothing was created"
            ) from exc
        return topic

    def _abandon(self, topic: Topic) -> None:
        """Undo a topic creation that failed half way (best effort)."""
        for partition in topic.partitions:
            with contextlib.suppress(Exception):
                partition.delete_files()
        self._topics.pop(topic.name, None)
        for p in range(topic.declared_partitions):
            _remove(self.path / f"{topic.name}-{p}")
        with contextlib.suppress(OSError):
            self._write_meta()

    def delete_topic(self, name: str) -> None:
        """Delete a topic and all its data."""
        for path in self._set_aside(name):
            _remove(path)

    async def adelete_topic(self, name: str) -> None:
        """:meth:`delete_topic` for a server: the topic is gone when this returns, and its
        files are removed in a worker thread, so the event loop is not held while they go."""
        for path in self._set_aside(name):
            await asyncio.to_thread(_remove, path)

    def _set_aside(self, name: str) -> list[Path]:
        """Forget topic ``name``: close its partitions without syncing them (their data is
        going), move their directories aside and record the change; the directories to
        remove (a crash before they are removed leaves ``.deleted-*`` folders, which the next
        open removes)."""
        self._check_writable()
        topic = self.topic(name)
        doomed = []
        for partition in topic.partitions:
            partition.discard()
            aside = self.path / f".deleted-{uuid.uuid4().hex}"
            if partition.directory.exists():
                os.rename(partition.directory, aside)
                doomed.append(aside)
        del self._topics[name]
        self._write_meta()
        return doomed

    def alter_topic(
        self,
        name: str,
        partitions: int | None = None,
        config: Mapping[str, object] | None = None,
    ) -> Topic:
        """Grow a topic's partition count and/or change its configs (None resets a key)."""
        self._check_writable()
        topic = self.topic(name)
        new_config = TopicConfig.parse(config, base=topic.config) if config else topic.config
        if partitions is not None:
            _check_partition_count(partitions)
            if partitions < len(topic.partitions):
                raise InvalidPartitionsError(
                    f"topic {name!r} has {len(topic.partitions)} partitions; partitions can only "
                    f"grow, so {partitions} is not valid"
                )
        old_count = len(topic.partitions)
        old_config, old_gaps = topic.config, topic.gaps
        topic.config = new_config
        topic.gaps = topic.gaps or new_config.compact
        target = partitions if partitions is not None else old_count
        topic.declared_partitions = target
        try:
            self._write_meta()
        except OSError as exc:
            topic.config, topic.gaps = old_config, old_gaps
            topic.declared_partitions = old_count
            raise StoreError(f"cannot alter topic {name!r}: {exc}") from exc
        try:
            for p in range(old_count, target):
                topic.partitions.append(self._open_partition(topic, p, True))
        except OSError as exc:
            raise StoreError(f"cannot alter topic {name!r}: {exc}") from exc
        return topic

    def refresh(self) -> None:
        """Read-only: pick up topics, segments and appends the owning process wrote since."""
        if not self.read_only:
            return
        try:
            mtime = (self.path / _META).stat().st_mtime
        except OSError:
            mtime = self._meta_mtime
        if mtime != self._meta_mtime:
            meta = self._read_meta()
            topics = meta.get("topics", {})
            for name in list(self._topics):
                if name not in topics:
                    for partition in self._topics.pop(name).partitions:
                        partition.close()
            for name, info in topics.items():
                topic = self._topics.get(name)
                if topic is None:
                    topic = Topic(name, TopicConfig(info.get("config", {})), info.get("id", ""))
                    self._topics[name] = topic
                topic.declared_partitions = info["partitions"]
                topic.config = TopicConfig(info.get("config", {}))
                topic.gaps = bool(info.get("gaps", topic.gaps))
                for p in range(len(topic.partitions), info["partitions"]):
                    topic.partitions.append(self._open_partition(topic, p, True))
        for topic in self._topics.values():
            for partition in topic.partitions:
                partition.refresh()

    # --- upkeep ---------------------------------------------------------------------------

    def run_maintenance(self, now_ms: int | None = None) -> dict[str, int]:
        """Apply retention and compaction to every partition; return what was done."""
        if self.read_only or self._closed:
            return {"segments_deleted": 0, "records_compacted": 0}
        now = int(time.time() * 1000) if now_ms is None else now_ms
        deleted = compacted = 0
        for topic in list(self._topics.values()):
            for partition in topic.partitions:
                deleted += partition.enforce_retention(now)
                if topic.config.compact:
                    compacted += compact_partition(partition, now)
        return {"segments_deleted": deleted, "records_compacted": compacted}

    def _check_writable(self) -> None:
        if self._closed:
            raise StoreClosedError(f"the store at {str(self.path)!r} is closed")
        if self.read_only:
            raise ReadOnlyStoreError.during(self.path, "change topics")

    async def close(self) -> None:
        """Sync everything, mark a clean shutdown, release the lock. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await self.committer.close()
        errors = []
        for topic in self._topics.values():
            for partition in topic.partitions:
                try:
                    partition.close()
                except StoreError as exc:
                    errors.append(exc)
        if not self.read_only:
            if not errors:
                (self.path / _CLEAN).touch()
                _fsync_dir(self.path)
            self._unlock()
        if errors:
            raise errors[0]

    @property
    def closed(self) -> bool:
        return self._closed


def _raise_open_file_limit() -> None:
    """Lift the soft limit of open files to the hard one: a store keeps a descriptor per active
    segment, one per partition, and the usual soft limit (1024) is lower than many stores
    need. (Kafka's operations guide asks the same of its brokers.)"""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = hard if hard != resource.RLIM_INFINITY else 1 << 20
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def _check_partition_count(partitions: int) -> None:
    if not isinstance(partitions, int) or not 1 <= partitions <= MAX_PARTITIONS:
        raise InvalidPartitionsError(
            f"a topic needs 1 to {MAX_PARTITIONS} partitions, not {partitions!r}"
        )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)
