"""Running pipelines: topics made, every part started, drained or stopped, all closed.

:class:`Runtime` runs one or many validated pipelines on one store connection. Each route and
sink is its own consumer group (``<pipeline>.<part>``), with ``workers`` consumers, so a slow
or failing sink never holds back its siblings; each source has its own runner. All share one
producer, so their writes share batches and disk syncs.

How a run ends:

- *Drained* (bounded pipelines: every source ends by itself): once every source has ended and
  been acknowledged, the run waits until every route and sink group has committed up to the
  end of each of its input partitions, and the ends have stopped moving; then it stops.
- *Stopped*: :meth:`Runtime.run`'s ``stop`` event is set (SIGINT/SIGTERM): sources stop
  reading, what they read is written and acknowledged, routes and sinks finish and commit the
  batch in hand, everything is closed.
- *Failed*: a part raised (``on_error: stop``, a source that keeps failing, a store error):
  the others are stopped as above and :class:`PipelineError` is raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Sequence
from typing import Any

from millstream.core.client import Admin, Connection
from millstream.core.errors import MillstreamError, PipelineError, TopicExistsError
from millstream.core.plugins import Registry
from millstream.core.record import TopicPartition

from ..plan import Pipeline
from .consuming import ConsumingWorker
from .context import RunContext
from .lease import ensure_lease_topic
from .route import RouteWorker
from .sink import SinkWorker
from .source import SourceRunner
from .stats import Stats

__all__ = ["Runtime", "tune_gc"]

log = logging.getLogger("millstream.pipelines")


def tune_gc() -> None:
    """Fit Python's cyclic garbage collector to a process that streams events.

    Everything made while starting up (modules, plans, connectors) is moved out of the
    collector's sight (:func:`gc.freeze`), and many more objects may be made between two young
    collections. Events are short-lived and seldom cyclic, so the default thresholds make the
    collector walk the young objects every few hundred events for nothing: about a tenth of a
    route's time. ``millstream run`` calls this once everything has started.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


class Runtime:
    """Runs ``pipelines`` on ``connection``; see the module docstring for how runs end."""

    drain_poll_s = 0.05
    stop_grace_s = 5.0
    """How long each side (sources, then routes and sinks) may take to stop cleanly."""

    def __init__(
        self,
        pipelines: Sequence[Pipeline],
        connection: Connection,
        registry: Registry,
        stats: Stats | None = None,
    ) -> None:
        self.pipelines = list(pipelines)
        self.connection = connection
        self.registry = registry
        self.stats = stats or Stats()
        self.sources: list[SourceRunner] = []
        self.workers: list[ConsumingWorker] = []
        self._lag_parts: dict[int, list[ConsumingWorker]] = {}

    @property
    def bounded(self) -> bool:
        """True when every source ends by itself (and there is at least one)."""
        return bool(self.sources) and all(s.bounded for s in self.sources)

    async def prepare(self) -> None:
        """Create the declared topics that do not exist yet, and build every part."""
        admin = self.connection.admin()
        existing = set(await admin.list_topics())
        single_copies: list[str] = []  # made now, with one replica because none was given
        for pipeline in self.pipelines:
            for topic in pipeline.topics.values():
                if topic.name in existing:
                    described = await admin.describe_topic(topic.name)
                    if len(described.partitions) < topic.partitions:
                        log.warning(
                            "topic %r has %d partitions, the pipeline declares %d; grow it with "
                            "`millstream topics alter %s --partitions %d`",
                            topic.name,
                            len(described.partitions),
                            topic.partitions,
                            topic.name,
                            topic.partitions,
                        )
                    continue
                config = dict(topic.config)
                if await admin.keeps_config("codec"):
                    config.setdefault("codec", topic.codec)
                with contextlib.suppress(TopicExistsError):  # another worker made it first
                    made = await admin.create_topic(
                        topic.name, topic.partitions, topic.replication, config
                    )
                    if topic.replication is None and made.replication_factor == 1:
                        single_copies.append(topic.name)
                existing.add(topic.name)
        if single_copies:
            await _warn_of_single_copies(admin, single_copies)
        if self.connection.shared and any(p.sources for p in self.pipelines):
            await ensure_lease_topic(self.connection)
        self.producer = self.connection.producer()
        for pipeline in self.pipelines:
            codecs = {t.name: self.registry.codec(t.codec) for t in pipeline.topics.values()}
            ctx = RunContext(pipeline, self.connection, self.producer, codecs, self.stats)
            for source in pipeline.sources.values():
                self.sources.append(SourceRunner(ctx, source))
            for route in pipeline.routes.values():
                stats = self.stats.add(pipeline.name, "route", route.name)
                routes = [RouteWorker(ctx, route, stats, i) for i in range(route.workers)]
                self._lag_parts[id(stats)] = list(routes)
                self.workers += routes
            for sink in pipeline.sinks.values():
                stats = self.stats.add(pipeline.name, "sink", sink.name)
                sinks = [SinkWorker(ctx, sink, stats, i) for i in range(sink.workers)]
                self._lag_parts[id(stats)] = list(sinks)
                self.workers += sinks

    async def refresh_lag(self) -> None:
        """Update every route's and sink's lag counter."""
        for part in self.stats.parts:
            workers = self._lag_parts.get(id(part))
            if workers:
                with contextlib.suppress(MillstreamError):
                    part.lag = sum([await w.lag() for w in workers])

    async def run(self, stop: asyncio.Event) -> str:
        """Run until drained (bounded pipelines) or ``stop`` is set; returns ``"drained"`` or
        ``"stopped"``. Raises PipelineError when a part fails, also while stopping."""
        # every worker joins its group at once: over a network each join waits for its group
        await asyncio.gather(*(worker.start() for worker in self.workers))
        for part in self.stats.parts:
            part.state = "running"
        worker_tasks = [asyncio.create_task(w.run(), name=f"{w.part} worker") for w in self.workers]
        source_tasks = [asyncio.create_task(s.run(), name=s.part) for s in self.sources]
        seen: set[asyncio.Task[Any]] = set()  # finished tasks whose outcome was taken
        try:
            ending = await self._watch(stop, source_tasks, worker_tasks, seen)
        except BaseException:
            await self._shutdown(source_tasks, worker_tasks, seen)
            self._settle_states("failed")
            raise
        errors = await self._shutdown(source_tasks, worker_tasks, seen)
        self._settle_states("done" if ending == "drained" else "stopped")
        if errors:
            raise PipelineError(f"while stopping: {errors[0]}") from errors[0]
        return ending

    def _settle_states(self, state: str) -> None:
        for part in self.stats.parts:
            if part.state == "running":
                part.state = state

    async def _watch(
        self,
        stop: asyncio.Event,
        source_tasks: list[asyncio.Task[None]],
        worker_tasks: list[asyncio.Task[None]],
        seen: set[asyncio.Task[Any]],
    ) -> str:
        """Wait for the stop signal, the drain, or a part that fails (which raises)."""
        stopper = asyncio.create_task(stop.wait(), name="stop signal")
        drainer: asyncio.Task[None] | None = None
        watched: set[asyncio.Task[Any]] = {stopper, *worker_tasks, *source_tasks}
        sources_left = set(source_tasks)
        if self.bounded and not sources_left:
            drainer = asyncio.create_task(self._drain(), name="drain")
            watched.add(drainer)
        try:
            while True:
                done, _ = await asyncio.wait(watched, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    watched.discard(task)
                    seen.add(task)
                    if task is stopper:
                        return "stopped"
                    task.result()  # a part (or the drain) that failed raises here
                    if task is drainer:
                        return "drained"
                    if task in sources_left:
                        sources_left.discard(task)
                        if self.bounded and not sources_left:
                            drainer = asyncio.create_task(self._drain(), name="drain")
                            watched.add(drainer)
                    elif task in worker_tasks:
                        raise PipelineError(f"{task.get_name()} ended by itself")
        finally:
            stopper.cancel()
            if drainer is not None:
                drainer.cancel()

    async def _shutdown(
        self,
        sources: list[asyncio.Task[None]],
        workers: list[asyncio.Task[None]],
        seen: set[asyncio.Task[Any]],
    ) -> list[BaseException]:
        """Stop sources and let them acknowledge; then stop routes and sinks after the batch
        in hand. Each side gets ``stop_grace_s``; a part still busy then (a sink that hangs, a
        throttle asleep) is cancelled without committing, and its events are read again next
        time. Returns the failures met (not those in ``seen``, raised already)."""
        for runner in self.sources:
            runner.stop()
        errors = await _settle([t for t in sources if t not in seen], self.stop_grace_s)
        for worker in self.workers:
            worker.stop()
        errors += await _settle([t for t in workers if t not in seen], self.stop_grace_s)
        try:
            await self.producer.close()
        except MillstreamError as exc:
            errors.append(exc)
        for error in errors:
            log.error("while stopping: %s", error)
        return errors

    async def _drain(self) -> None:
        """Return once every group has consumed its inputs to their ends, and the ends held."""
        groups = [(w.group, w.inputs) for w in self.workers]
        unique = list(dict.fromkeys((g, tuple(i)) for g, i in groups))
        while True:
            before = await self._ends(unique)
            if await self._caught_up(unique, before) and before == await self._ends(unique):
                return
            await asyncio.sleep(self.drain_poll_s)

    async def _ends(
        self, groups: list[tuple[str, tuple[str, ...]]]
    ) -> dict[TopicPartition, tuple[int, int]]:
        """(earliest, latest) offsets of every input partition."""
        admin = self.connection.admin()
        ends: dict[TopicPartition, tuple[int, int]] = {}
        for _, inputs in groups:
            for topic in inputs:
                described = await admin.describe_topic(topic)
                for p in described.partitions:
                    ends[TopicPartition(topic, p.partition)] = (p.earliest_offset, p.latest_offset)
        return ends

    async def _caught_up(
        self,
        groups: list[tuple[str, tuple[str, ...]]],
        ends: dict[TopicPartition, tuple[int, int]],
    ) -> bool:
        admin = self.connection.admin()
        for group, inputs in groups:
            described = await admin.describe_group(group)
            committed = {(o.topic, o.partition): o.committed for o in described.offsets}
            for tp, (earliest, latest) in ends.items():
                if tp.topic not in inputs:
                    continue
                done = committed.get((tp.topic, tp.partition))
                if latest > earliest and (done is None or done < latest):
                    return False
        return True


async def _warn_of_single_copies(admin: Admin, topics: list[str]) -> None:
    """Say so when topics took one replica from the store's default on a cluster that could
    keep more: Apache Kafka's own default.replication.factor is 1, so a pipeline moved to a
    cluster without ``replication:`` would otherwise lose a partition's events with one
    broker, silently."""
    nodes = await admin.node_count()
    if nodes < 2:
        return
    named = ", ".join(repr(t) for t in topics)
    log.warning(
        "topic%s %s %s made with 1 replica (the store's default) on a cluster of %d brokers: "
        "losing the broker that holds a partition loses its events; give %s `replication: %d` "
        "in the pipeline file, or raise the cluster's default.replication.factor (which "
        "__source_positions and __source_leases take too)",
        "s" if len(topics) > 1 else "",
        named,
        "were" if len(topics) > 1 else "was",
        nodes,
        "them" if len(topics) > 1 else "it",
        min(3, nodes),
    )


async def _settle(tasks: list[asyncio.Task[None]], grace_s: float) -> list[BaseException]:
    """Wait up to ``grace_s`` for ``tasks``, then cancel those still running; their failures
    (not cancellations). A cancellation of the caller itself is not swallowed."""
    if not tasks:
        return []
    _, late = await asyncio.wait(tasks, timeout=grace_s)
    for task in late:
        log.warning("%s did not stop within %.0f s; cancelled", task.get_name(), grace_s)
        task.cancel()
    if late:
        await asyncio.wait(late)
    errors: list[BaseException] = []
    for task in tasks:
        if not task.cancelled() and task.exception() is not None:
            errors.append(task.exception())  # type: ignore[arg-type]
    return errors
