"""Running one worker of a route: consume its inputs, run its steps, write its outputs.

A batch's outputs and dead letters are acknowledged by the log before the batch's offsets are
committed (at-least-once). An error raised by the steps themselves (not an event they
rejected) is retried with the route's ``retry``; when it persists, the whole batch is dead
letters, or the pipeline stops (``on_error: stop``).
"""

from __future__ import annotations

import orjson

from millstream.core.client import BatchDelivery
from millstream.core.errors import CodecError, PipelineError
from millstream.core.record import Record, StoredRecord

from ..plan import RoutePlan
from .backoff import Exhausted, retrying
from .consuming import ConsumingWorker, failure_of
from .context import RunContext, RuntimeStepContext
from .deadletter import Failure
from .stats import PartStats

__all__ = ["RouteWorker"]


class RouteWorker(ConsumingWorker):
    """One consumer of a route's group, with its own instances of the route's steps."""

    def __init__(self, ctx: RunContext, plan: RoutePlan, stats: PartStats, worker: int) -> None:
        super().__init__(
            ctx,
            part=f"routes.{plan.name}",
            group=plan.group,
            inputs=plan.inputs,
            start=plan.start,
            dead_letter=plan.dead_letter,
            stats=stats,
            worker=worker,
        )
        from ..route import RouteProcessor

        self.plan = plan
        self.processor = RouteProcessor(
            plan, RuntimeStepContext(ctx.name, plan.name, ctx.pipeline.base_dir)
        )

    async def close(self) -> None:
        await self.processor.close()

    async def handle(self, records: list[StoredRecord]) -> list[BatchDelivery]:
        plan = self.plan
        failures: list[Failure] = []
        events = self.decode(records, failures)

        def failed(error: BaseException, attempt: int) -> None:
            self.stats.errors += 1
            self.ctx.log.warning("%s: steps failed (attempt %d): %s", self.part, attempt, error)

        try:
            result = await retrying(lambda: self.processor.process(events), plan.retry, failed)
        except Exhausted as exc:
            if plan.on_error == "stop":
                raise PipelineError(f"{self.part}: {exc}") from exc.error
            failures += [
                failure_of(r, "steps", f"{type(exc.error).__name__}: {exc}", exc.attempts)
                for r in records
            ]
            return self.send_failures(failures, plan.on_error)
        if result.dead:
            originals = {(r.topic, r.partition, r.offset): r for r in records}
            for dead in result.dead:
                e = dead.event
                original = originals.get((e.topic, e.partition, e.offset))
                if original is not None:
                    failures.append(failure_of(original, dead.step, dead.reason))
                else:
                    raw = _raw(e.value)
                    failures.append(
                        Failure(e.key, raw, e.headers, e.timestamp, dead.step, dead.reason)
                    )
        deliveries: list[BatchDelivery] = []
        written = 0
        for topic, out in result.outputs.items():
            if not out:
                continue
            codec = self.ctx.codecs[topic]
            try:
                raws = codec.encode_many([e.value for e in out])
                batch = [
                    Record(e.key, raw, e.headers, e.timestamp)
                    for e, raw in zip(out, raws, strict=True)
                ]
            except CodecError:
                batch = []
                for e in out:
                    try:
                        raw = codec.encode(e.value)
                    except CodecError as err:
                        failures.append(
                            Failure(
                                e.key,
                                _raw(e.value),
                                e.headers,
                                e.timestamp,
                                "encode",
                                f"{topic}: {err}",
                                e.topic,
                                e.partition,
                                e.offset,
                            )
                        )
                        continue
                    batch.append(Record(e.key, raw, e.headers, e.timestamp))
            if batch:
                deliveries.append(self.ctx.producer.send_batch(topic, batch))
                written += len(batch)
        deliveries += self.send_failures(failures, plan.on_error)
        self.stats.events_out += written
        return deliveries


def _raw(value: object) -> bytes | None:
    if value is None or isinstance(value, bytes):
        return value
    try:
        return orjson.dumps(value, default=str)
    except TypeError:
        return repr(value).encode()
