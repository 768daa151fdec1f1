"""Group commit: many appends, one fsync.

A partition that has batches waiting to become durable asks :class:`GroupCommit` for a sync.
One round at a time runs in a worker thread: it fsyncs every waiting partition's dirty segments
(and the directory when a segment was created), then moves each partition's high watermark to
the offset it had reached when the round began. Appends that arrive while a round is running
wait for the next one, so under load one fsync covers the batches of every producer that wrote
meanwhile, and when idle a lone append is synced at once.

``flush.policy`` decides when a partition joins a round:

- ``commit``: as soon as it has something waiting (acknowledged after its fsync);
- ``interval``: ``flush.ms`` after its first unsynced append (acknowledged after that fsync);
- ``never``: never; the partition acknowledges on write and leaves syncing to the OS.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..errors import StoreWriteError

if TYPE_CHECKING:
    from .partition import Partition

__all__ = ["GroupCommit"]


class GroupCommit:
    """Runs sync rounds for the partitions of one store, on one event loop."""

    def __init__(self) -> None:
        self._waiting: dict[Partition, None] = {}
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self._executor: ThreadPoolExecutor | None = None
        self.rounds = 0

    def request(self, partition: Partition) -> None:
        """Put ``partition`` in the next round (starting the round runner when needed)."""
        self._waiting[partition] = None
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._loop is not loop:
            self._loop = loop
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), name="millstream-group-commit")
        assert self._wake is not None
        self._wake.set()

    async def _run(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            if not self._waiting:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = list(self._waiting)
            self._waiting.clear()
            if self._executor is None:
                # A thread of its own: syncs never queue behind other work in the loop's
                # default executor.
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="millstream-sync")
            try:
                targets = [p.begin_sync() for p in batch]
                await loop.run_in_executor(self._executor, _sync_all, targets)
            except Exception as exc:  # a round must end by answering every waiter it covered
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
                error = StoreWriteError(
                    f"cannot make writes durable: fsync failed: {reason}; "
                    "the records were not acknowledged"
                )
                for partition in batch:
                    partition.fail_sync(error)
            else:
                self.rounds += 1
                for partition, target in zip(batch, targets, strict=True):
                    partition.end_sync(target)

    async def close(self) -> None:
        """Finish what is waiting, then stop the round runner."""
        self._closing = True
        if self._task is not None and not self._task.done():
            assert self._wake is not None
            self._wake.set()
            await self._task
        if self._executor is not None:
            self._executor.shutdown(wait=False)
            self._executor = None


def _sync_all(targets: list) -> None:
    for target in targets:
        for fd in target.fds:
            os.fsync(fd)
        if target.sync_directory:
            dir_fd = os.open(target.directory, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
