"""Running one worker of a sink: consume its inputs, write them, flush, then commit.

Offsets are committed only after :meth:`Sink.flush` returned (at-least-once). A failed write or
flush is retried with the sink's ``retry``; when the batch still fails, each of its events is
tried once on its own, so one bad event does not take its neighbours to the dead-letter topic;
those that still fail go there (or the pipeline stops, with ``on_error: stop``).
"""

from __future__ import annotations

from collections.abc import Sequence

from millstream.core.client import BatchDelivery
from millstream.core.connector import Sink
from millstream.core.errors import EventsRejected, PipelineError, PluginError
from millstream.core.event import Event
from millstream.core.record import StoredRecord
from millstream.core.step import Rejection

from ..plan import SinkPlan
from .backoff import Exhausted, retrying
from .consuming import ConsumingWorker, failure_of
from .context import RunContext
from .deadletter import Failure
from .stats import PartStats

__all__ = ["SinkWorker"]


class SinkWorker(ConsumingWorker):
    """One consumer of a sink's group, with its own instance of the sink."""

    def __init__(self, ctx: RunContext, plan: SinkPlan, stats: PartStats, worker: int) -> None:
        super().__init__(ctx, plan, stats, worker)
        self.plan = plan
        self.sink: Sink = plan.connector(plan.config, ctx.connector_context(plan.name, plan.inputs))
        self._opened = False

    async def open(self) -> None:
        self._opened = True  # close() is owed from here on, also when open fails partway
        await self.sink.open()

    async def close(self) -> None:
        if self._opened:
            await self.sink.close()

    async def _deliver(self, events: Sequence[Event]) -> list[Rejection]:
        """Write and flush ``events``; the ones the sink refused for good."""
        refused: list[Rejection] = []
        try:
            await self.sink.write(events)
        except EventsRejected as exc:
            refused += exc.rejections
        try:
            await self.sink.flush()
        except EventsRejected as exc:
            refused += exc.rejections
        return refused

    async def handle(self, records: list[StoredRecord]) -> list[BatchDelivery]:
        plan = self.plan
        failures: list[Failure] = []
        events = self.decode(records, failures)

        def failed(error: BaseException, attempt: int) -> None:
            self.stats.errors += 1
            self.ctx.log.warning("%s: write failed (attempt %d): %s", self.part, attempt, error)

        if events:
            try:
                refused = await retrying(lambda: self._deliver(events), plan.retry, failed)
                self.stats.events_out += len(events) - len(refused)
                self._refused(refused, records, failures)
            except Exhausted as exc:
                if plan.on_error == "stop":
                    raise PipelineError(f"{self.part}: {exc}") from exc.error
                await self._one_by_one(events, records, failures, exc.attempts)
        return self.send_failures(failures, plan.on_error)

    def _refused(
        self, refused: list[Rejection], records: list[StoredRecord], failures: list[Failure]
    ) -> None:
        """Dead letters for events the sink refused for good, kept as they were read."""
        if not refused:
            return
        self.stats.errors += len(refused)
        originals = {(r.topic, r.partition, r.offset): r for r in records}
        for rejection in refused:
            event = rejection.event
            record = originals.get((event.topic, event.partition, event.offset))
            if record is None:
                raise PluginError(
                    f"{self.part}: the {self.plan.connector.name!r} sink refused an event it was "
                    "not given; EventsRejected must name events passed to write()"
                )
            failures.append(failure_of(record, "write", rejection.reason))

    async def _one_by_one(
        self,
        events: list[Event],
        records: list[StoredRecord],
        failures: list[Failure],
        attempts: int,
    ) -> None:
        originals = {(r.topic, r.partition, r.offset): r for r in records}
        for event in events:
            try:
                refused = await self._deliver([event])
                self.stats.events_out += 1 - len(refused)
                self._refused(refused, records, failures)
            except Exception as exc:
                self.stats.errors += 1
                record = originals[(event.topic, event.partition, event.offset)]
                failures.append(
                    failure_of(record, "write", f"{type(exc).__name__}: {exc}", attempts + 1)
                )
