"""Running one worker of a route: consume its inputs, run its steps, write its outputs.

A batch's outputs and dead letters are acknowledged by the log before the batch's offsets are
committed (at-least-once). An error raised by the steps themselves (not an event they
rejected) is retried with the route's ``retry``; when it persists, the whole batch is dead
letters, or the pipeline stops (``on_error: stop``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import orjson

from millstream.core.client import BatchDelivery
from millstream.core.errors import CodecError, PipelineError
from millstream.core.event import Event
from millstream.core.record import Record, RecordBlock, StoredRecord

from ..plan import RoutePlan
from ..route import RouteProcessor, RouteResult
from .backoff import Exhausted, retrying
from .consuming import ConsumingWorker, failure_of
from .context import RunContext, RuntimeStepContext
from .deadletter import Failure, send_each
from .stats import PartStats

__all__ = ["RouteWorker"]


class RouteWorker(ConsumingWorker):
    """One consumer of a route's group, with its own instances of the route's steps."""

    reads_blocks = True

    def __init__(self, ctx: RunContext, plan: RoutePlan, stats: PartStats, worker: int) -> None:
        super().__init__(ctx, plan, stats, worker)
        self.plan = plan
        self.processor = self._processor()

    def _processor(self) -> RouteProcessor:
        context = RuntimeStepContext(self.ctx.name, self.plan.name, self.ctx.pipeline.base_dir)
        return RouteProcessor(self.plan, context)

    async def close(self) -> None:
        await self.processor.close()

    async def handle(self, records: list[StoredRecord]) -> list[BatchDelivery]:
        return await self._handle(lambda failures: self.decode(records, failures), lambda: records)

    async def handle_blocks(self, blocks: list[RecordBlock]) -> list[BatchDelivery]:
        return await self._handle(
            lambda failures: self.decode_blocks(blocks, failures),
            lambda: [r for block in blocks for r in block.records()],
        )

    async def _handle(
        self,
        decode: Callable[[list[Failure]], list[Event]],
        read: Callable[[], list[StoredRecord]],
    ) -> list[BatchDelivery]:
        """Run the steps on the events ``decode`` makes and write their outputs; ``read``
        gives the records as read, for dead letters that keep them as they were."""
        plan = self.plan
        failures: list[Failure] = []
        attempts = 0

        async def run_steps() -> RouteResult:
            # Steps change events in place and keep state (dedupe, throttle): a retry starts
            # from the records as read, with steps built anew, never from half-done work.
            nonlocal attempts
            attempts += 1
            if attempts > 1:
                with contextlib.suppress(Exception):
                    await self.processor.close()
                self.processor = self._processor()
            failures.clear()
            return await self.processor.process(decode(failures))

        def failed(error: BaseException, attempt: int) -> None:
            self.stats.errors += 1
            self.ctx.log.warning("%s: steps failed (attempt %d): %s", self.part, attempt, error)

        try:
            result = await retrying(run_steps, plan.retry, failed)
        except Exhausted as exc:
            if plan.on_error == "stop":
                raise PipelineError(f"{self.part}: {exc}") from exc.error
            decoded = {(f.topic, f.partition, f.offset) for f in failures}
            failures += [
                failure_of(r, "steps", f"{type(exc.error).__name__}: {exc}", exc.attempts)
                for r in read()
                if (r.topic, r.partition, r.offset) not in decoded
            ]
            return self.send_failures(failures, plan.on_error)
        if result.dead:
            originals = {(r.topic, r.partition, r.offset): r for r in read()}
            for dead in result.dead:
                e = dead.event
                original = originals.get((e.topic, e.partition, e.offset))
                if original is not None:
                    failures.append(failure_of(original, dead.step, dead.reason))
                else:
                    failures.append(_failure_of_event(e, dead.step, dead.reason))
        deliveries: list[BatchDelivery] = []
        written = 0
        for topic, out in result.outputs.items():
            if not out:
                continue
            codec = self.ctx.codecs[topic]
            try:
                raws = codec.encode_many([e.value for e in out])
            except CodecError:
                raws = []
                for e in out:
                    try:
                        raws.append(codec.encode(e.value))
                    except CodecError as err:
                        raws.append(None)
                        failures.append(_failure_of_event(e, "encode", f"{topic}: {err}"))
            batch = [
                Record(e.key, raw, e.headers, e.timestamp)
                for e, raw in zip(out, raws, strict=True)
                if raw is not None
            ]
            sent = [e for e, raw in zip(out, raws, strict=True) if raw is not None]

            def refused(
                index: int, error: Exception, topic: str = topic, sent: list[Event] = sent
            ) -> None:
                failures.append(_failure_of_event(sent[index], "write", f"{topic}: {error}"))

            before = len(failures)
            deliveries += send_each(self.ctx.producer, topic, batch, refused)
            written += len(batch) - (len(failures) - before)
        deliveries += self.send_failures(failures, plan.on_error)
        self.stats.events_out += written
        return deliveries


def _failure_of_event(e: Event, step: str, reason: str) -> Failure:
    return Failure(
        e.key, _raw(e.value), e.headers, e.timestamp, step, reason, e.topic, e.partition, e.offset
    )


def _raw(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        return repr(value).encode()
