"""The upkeep of a writable store: retention and compaction, now and then, off the event loop.

:class:`LogMaintenance` is what every process writing a store runs (the embedded connection and
``millstream broker``): one pass as the store opens (:meth:`LogMaintenance.run_now`, before
anything is served), then one every ``interval_s`` seconds in a task of the event loop
(:meth:`LogMaintenance.start`, :meth:`LogMaintenance.stop`).

In a pass, what touches a partition's list of segments (retention's rolling and deleting, the
swap of a compacted segment) runs on the event loop between its appends and reads, and is quick;
what reads the log and rewrites segments (compaction's reading of every key and writing of the
``.cleaned`` files) runs in a worker thread, so the loop keeps serving meanwhile. A failure is
logged, never raised: upkeep must not stop the process, and it is tried again next round.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from .compaction import finish_compaction, prepare_compaction
from .store import LogStore

__all__ = ["LogMaintenance"]

_log = logging.getLogger("millstream.log")


class LogMaintenance:
    """Retention and compaction of ``store`` every ``interval_s`` seconds."""

    def __init__(self, store: LogStore, interval_s: float = 60.0) -> None:
        self.store = store
        self.interval_s = interval_s
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._pass: asyncio.Future[dict[str, int]] | None = None

    def run_now(self) -> dict[str, int]:
        """One whole pass in this thread (as a store opens, before anything is served); what
        was done (``segments_deleted``, ``records_compacted``)."""
        try:
            return self.store.run_maintenance()
        except Exception:
            _log.exception("log maintenance of %s failed", self.store.path)
            return {"segments_deleted": 0, "records_compacted": 0}

    async def run_once(self, now_ms: int | None = None) -> dict[str, int]:
        """One pass, its long parts in a worker thread; what was done."""
        store = self.store
        deleted = compacted = 0
        if store.read_only or store.closed:
            return {"segments_deleted": 0, "records_compacted": 0}
        now = int(time.time() * 1000) if now_ms is None else now_ms
        for name in store.topic_names():
            if self._stopping or store.closed:
                break
            if not store.has_topic(name):
                continue
            topic = store.topic(name)
            for partition in list(topic.partitions):
                try:
                    if partition.closed:
                        continue
                    deleted += partition.enforce_retention(now)
                    if not topic.config.compact:
                        continue
                    plan = await asyncio.to_thread(prepare_compaction, partition, now)
                    if plan is not None:
                        compacted += finish_compaction(partition, plan)
                except Exception:
                    if partition.closed:
                        continue  # its topic was deleted or the store closed meanwhile
                    _log.exception("log maintenance of %s failed", partition.name)
        return {"segments_deleted": deleted, "records_compacted": compacted}

    def start(self) -> None:
        """Run a pass every ``interval_s`` seconds from now on, until :meth:`stop`."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="millstream-log-maintenance"
            )

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            self._pass = asyncio.ensure_future(self.run_once())
            await asyncio.shield(self._pass)

    async def stop(self) -> None:
        """Stop the passes. A pass under way stops after the partition it is at (a worker
        thread cannot be interrupted), so the store may be closed once this returns."""
        task, self._task = self._task, None
        if task is None:
            return
        self._stopping = True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._pass is not None:
            with contextlib.suppress(Exception):
                await self._pass
