"""Running one source: read batches, write them to the log, acknowledge in order.

The delivery contract (DESIGN.md §7): a batch's position is stored (in the store's
``__source_positions``) and handed to :meth:`Source.ack` only once the log has acknowledged every
event of the batch — dead letters included — and of every batch before it. A restart opens the
source at the last stored position, so nothing acknowledged is lost and nothing unacknowledged
is skipped.

At most ``max_in_flight`` batches are written but not yet acknowledged; ``read`` waits for room,
so a source never outruns the log.
"""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Any

import orjson

from millstream.core.client import BatchDelivery
from millstream.core.connector import Source, SourceBatch
from millstream.core.errors import CodecError, PipelineError
from millstream.core.event import Event, key_bytes
from millstream.core.record import Record

from ..plan import Retry, SourcePlan
from .backoff import Exhausted, retrying
from .context import RunContext
from .deadletter import DeadLetterWriter, Failure, send_each
from .lease import SourceLease

__all__ = ["SourceRunner", "position_key"]

READ_RETRY = Retry(max_attempts=5, initial_s=0.2, max_s=5.0)


def position_key(pipeline: str, source: str) -> str:
    """The key of a source's position in the store's position store."""
    return f"{pipeline}/{source}"


class SourceRunner:
    """Runs one :class:`Source` of a pipeline until it ends or :meth:`stop` is called."""

    max_in_flight = 8

    def __init__(self, ctx: RunContext, plan: SourcePlan) -> None:
        self.ctx = ctx
        self.plan = plan
        self.part = f"sources.{plan.name}"
        self.stats = ctx.stats.add(ctx.name, "source", plan.name)
        self.dead_letters = DeadLetterWriter(
            ctx.producer, ctx.name, self.part, ctx.dead_letter_topic(None)
        )
        self._positions = ctx.connection.positions()
        self._key = position_key(ctx.name, plan.name)
        self._stop = asyncio.Event()
        self._renew()
        self._lease: SourceLease | None = None
        if ctx.connection.shared:
            self._lease = SourceLease(ctx.connection, f"{ctx.name}.sources.{plan.name}")

    @property
    def bounded(self) -> bool:
        return self.source.bounded

    def stop(self) -> None:
        """Stop reading; what was read is still written and acknowledged."""
        self._stop.set()
        self._pause()

    def _pause(self) -> None:
        self._stopping = True
        if self._read is not None:
            self._read.cancel()

    async def run(self) -> None:
        """Run the source until it ends or :meth:`stop` is called.

        On a shared store (several workers of the pipeline), only while this worker holds the
        source's lease (see :mod:`.lease`): it waits as ``standby`` until it does, and hands
        the source over (everything read acknowledged, the source closed) if it loses it.
        """
        if self._lease is None:
            await self._run_source()
            return
        self._lease.join()
        try:
            while not self._stop.is_set():
                self.stats.state = "standby"
                if not await self._lease.acquired(self._stop):
                    self.stats.state = "stopped"
                    return
                watch = asyncio.create_task(self._lease.lost(), name=f"lease {self.part}")
                watch.add_done_callback(self._lost)
                try:
                    await self._run_source()
                finally:
                    watch.remove_done_callback(self._lost)
                    watch.cancel()
                if not self._handing_over:
                    return  # the source ended (bounded) or was stopped
                self.ctx.log.info("%s: another worker holds this source now", self.part)
                self._renew()
        finally:
            await self._lease.close()

    def _lost(self, watch: asyncio.Task[None]) -> None:
        if not watch.cancelled() and watch.exception() is None:
            self._handing_over = True
            self._pause()

    def _renew(self) -> None:
        """A fresh source and reading state: at the start, and to run again when the lease
        comes back after a hand-over."""
        plan = self.plan
        self.source: Source = plan.connector(
            plan.config, self.ctx.connector_context(plan.name, plan.to)
        )
        self._pending: deque[tuple[list[BatchDelivery], Any, int]] = deque()
        self._room = asyncio.Semaphore(self.max_in_flight)
        self._more = asyncio.Event()
        self._stopping = self._handing_over = False
        self._read: asyncio.Task[SourceBatch | None] | None = None

    async def _run_source(self) -> None:
        """Open, read until the end or a stop, acknowledge everything, close."""
        stored = await self._positions.get(self._key)
        position = orjson.loads(stored) if stored is not None else None
        self.stats.state = "opening"
        try:
            await self.source.open(position)
            self.stats.state = "running"
            reader = asyncio.create_task(self._read_all(), name=f"read {self.part}")
            acker = asyncio.create_task(self._acknowledge(), name=f"ack {self.part}")
            try:
                await asyncio.wait({reader, acker}, return_when=asyncio.FIRST_COMPLETED)
                if acker.done():  # it only ends early when an acknowledgement failed
                    reader.cancel()
                    await acker
                await reader
                self._pending.append(([], _END, 0))
                self._more.set()
                await acker
            finally:
                for task in (reader, acker):
                    task.cancel()
            self.stats.state = "stopped" if self._stopping else "done"
        except BaseException:
            self.stats.state = "failed"
            raise
        finally:
            try:
                await self.source.close()
            except Exception as exc:
                self.ctx.log.warning("%s: close failed: %s", self.part, exc)

    async def _read_all(self) -> None:
        while not self._stopping:
            await self._room.acquire()
            if self._stopping:
                self._room.release()
                return
            batch = await self._next_batch()
            if batch is None:
                self._room.release()
                return
            self._write(batch)

    async def _next_batch(self) -> SourceBatch | None:
        def failed(error: BaseException, attempt: int) -> None:
            self.stats.errors += 1
            self.ctx.log.warning("%s: read failed (attempt %d): %s", self.part, attempt, error)

        async def read() -> SourceBatch | None:
            if self._stopping:  # stopped while waiting to retry
                return None
            self._read = asyncio.ensure_future(self.source.read())
            try:
                return await self._read
            finally:
                self._read = None

        try:
            return await retrying(read, READ_RETRY, failed)
        except asyncio.CancelledError:
            if self._stopping:
                return None
            raise
        except Exhausted as exc:
            raise PipelineError(f"{self.part}: {exc}") from exc.error

    def _write(self, batch: SourceBatch) -> None:
        events = batch.events
        self.stats.events_in += len(events)
        deliveries: list[BatchDelivery] = []
        failures: list[Failure] = []
        failed: set[int] = set()  # indexes of events that failed for some topic
        for topic in self.plan.to:
            records, origins = self._records(events, topic, failures, failed)

            def refused(index: int, error: Exception, topic: str = topic, origins=origins) -> None:
                failed.add(origins[index])
                failures.append(self._failure(events[origins[index]], "write", f"{topic}: {error}"))

            deliveries += send_each(self.ctx.producer, topic, records, refused)
        failures += (self._failure(r.event, "read", r.reason) for r in batch.rejected)
        dead = self.dead_letters.write(failures)
        if dead is not None:
            deliveries.append(dead)
            self.stats.dead += len(failures)
        self._pending.append((deliveries, batch.position, len(events) - len(failed)))
        self._more.set()

    def _records(
        self, events: list[Event], topic: str, failures: list[Failure], failed: set[int]
    ) -> tuple[list[Record], list[int]]:
        """The records of ``events`` for ``topic`` (and the index of each one's event): values
        encoded with the topic's codec, or, when a source gave bytes, checked by decoding them;
        keys from the source's ``key`` expression, which sees the decoded value. The events are
        left as they are, for the next topic. Failures become dead letters."""
        codec = self.ctx.codecs[topic]
        check_bytes = codec.name != "bytes"
        key_of = self.plan.key
        out: list[Record] = []
        origins: list[int] = []
        for index, event in enumerate(events):
            value = event.value
            seen = event
            try:
                if type(value) is bytes:
                    raw = value
                    if check_bytes:
                        decoded = codec.decode(value)
                        if key_of is not None:
                            seen = Event(decoded, event.key, event.headers, event.timestamp)
                else:
                    raw = codec.encode(value)
            except CodecError as exc:
                failed.add(index)
                failures.append(self._failure(event, "decode", f"{topic}: {exc}"))
                continue
            key = event.key
            if key_of is not None:
                try:
                    key = key_bytes(key_of(seen))
                except Exception as exc:
                    failed.add(index)
                    failures.append(self._failure(event, "key", _error(exc)))
                    continue
            out.append(Record(key, raw, event.headers, event.timestamp))
            origins.append(index)
        return out, origins

    def _failure(self, event: Event, step: str, reason: str) -> Failure:
        value = event.value
        if type(value) is not bytes:
            try:
                value = orjson.dumps(value, default=str)
            except TypeError:
                value = repr(value).encode()
        key = event.key if type(event.key) is bytes or event.key is None else None
        return Failure(key, value, tuple(event.headers), event.timestamp, step, reason)

    async def _acknowledge(self) -> None:
        """Await each batch's deliveries in order; then store its position and ack it."""
        while True:
            while not self._pending:
                self._more.clear()
                await self._more.wait()
            deliveries, position, written = self._pending.popleft()
            if position is _END:
                return
            for delivery in deliveries:
                await delivery.confirmed()
            self.stats.events_out += written
            released = 1
            # acknowledge the newest of the batches already done, in one position write
            while self._pending and self._pending[0][1] is not _END:
                nxt = self._pending[0]
                if not all(d.done() for d in nxt[0]):
                    break
                self._pending.popleft()
                for delivery in nxt[0]:
                    await delivery.confirmed()
                self.stats.events_out += nxt[2]
                position = nxt[1] if nxt[1] is not None else position
                released += 1
            if position is not None:
                await self._positions.put(self._key, orjson.dumps(position))
                await self.source.ack(position)
            for _ in range(released):
                self._room.release()


_END: Any = object()


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
