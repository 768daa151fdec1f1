"""Small real connectors for runtime tests, and a helper that builds plans without YAML."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from millstream.core import (
    ConnectorConfig,
    Event,
    EventsRejected,
    Rejection,
    Sink,
    Source,
    SourceBatch,
    Step,
)
from millstream.core.plugins import get_registry
from millstream.pipelines.plan import (
    Output,
    Pipeline,
    Retry,
    RoutePlan,
    SinkPlan,
    SourcePlan,
    StepPlan,
    TopicPlan,
)

SINKS: dict[str, list[Event]] = defaultdict(list)
"""What each CollectSink (by its ``name`` setting) has flushed."""


class ListSource(Source):
    """Emits ``items`` in batches; resumable (position = items emitted); bounded unless
    ``forever`` (then it waits for more after the list, forever)."""

    name = "list"
    resumable = True

    class Config(ConnectorConfig):
        items: list[Any] = []
        batch: int = 10
        forever: bool = False
        pause: float = 0.0  # seconds before each batch
        malformed: list[Any] = []  # items handed back as rejected input, not as events

    async def open(self, position: Any) -> None:
        self.next = position or 0

    @property
    def bounded(self) -> bool:
        return not self.config.forever

    async def read(self) -> SourceBatch | None:
        items = self.config.items
        if self.next >= len(items):
            if self.config.forever:
                await asyncio.Event().wait()
            return None
        if self.config.pause:
            await asyncio.sleep(self.config.pause)
        chunk = items[self.next : self.next + self.config.batch]
        self.next += len(chunk)
        bad = self.config.malformed
        return SourceBatch(
            [Event(item) for item in chunk if item not in bad],
            self.next,
            [
                Rejection(Event(str(item).encode()), f"malformed: {item}")
                for item in chunk
                if item in bad
            ],
        )


class CollectSink(Sink):
    """Keeps events in SINKS[name] once flushed; fails ``fail_times`` attempts first, always
    fails an event whose value equals ``poison``, and refuses for good (EventsRejected, after
    keeping the others) an event whose value equals ``refuse``."""

    name = "collect"

    class Config(ConnectorConfig):
        name: str = "default"
        fail_times: int = 0
        poison: Any = None
        refuse: Any = None
        fail_open: bool = False  # open() fails after taking something close() must release
        foreign: bool = False  # refuse an event of its own making instead of the one given

    def __init__(self, config: Any, context: Any) -> None:
        super().__init__(config, context)
        self.buffer: list[Event] = []
        self.failures = 0

    async def write(self, events: Sequence[Event]) -> None:
        if self.failures < self.config.fail_times:
            self.failures += 1
            raise ConnectionError(f"sink down (attempt {self.failures})")
        for event in events:
            if self.config.poison is not None and event.value == self.config.poison:
                raise ValueError(f"cannot store {event.value!r}")
        self.buffer.extend(events)

    async def open(self) -> None:
        if self.config.fail_open:
            WRITES["half-open"] += 1
            raise ConnectionError("database refused the login")

    async def close(self) -> None:
        WRITES["closed"] += 1

    async def flush(self) -> None:
        refused = [
            e
            for e in self.buffer
            if self.config.refuse is not None and e.value == self.config.refuse
        ]
        SINKS[self.config.name].extend(e for e in self.buffer if e not in refused)
        self.buffer.clear()
        if refused and self.config.foreign:
            raise EventsRejected([Rejection(Event(e.value), "made up") for e in refused])
        if refused:
            WRITES["refused"] += 1
            raise EventsRejected([Rejection(e, f"HTTP 422: no {e.value}") for e in refused])


WRITES: dict[str, int] = defaultdict(int)


FAST = Retry(max_attempts=3, initial_s=0.001, max_s=0.01)


def plan(
    tmp_path: Path,
    *,
    items: list[Any],
    sink: dict[str, Any] | None = None,
    dead_letter: str | None = "dead",
    codec: str = "json",
    on_error: str = "dead_letter",
    start: str = "earliest",
    workers: int = 1,
    forever: bool = False,
    name: str = "p",
    malformed: list[Any] | None = None,
) -> Pipeline:
    """A pipeline: list source → topic ``events`` → collect sink (no route)."""
    topics = {
        "events": TopicPlan("events", partitions=2, codec=codec),
        "dead": TopicPlan("dead", partitions=1),
    }
    return Pipeline(
        name=name,
        file=tmp_path / "pipeline.yaml",
        store=None,
        dead_letter=dead_letter,
        topics=topics,
        sources={
            "src": SourcePlan(
                "src",
                ListSource,
                ListSource.Config(items=items, forever=forever, malformed=malformed or []),
                ("events",),
            )
        },
        routes={},
        sinks={
            "out": SinkPlan(
                "out",
                f"{name}.out",
                CollectSink,
                CollectSink.Config(**(sink or {})),
                ("events",),
                retry=FAST,
                on_error=on_error,  # type: ignore[arg-type]
                start=start,  # type: ignore[arg-type]
                workers=workers,
            )
        },
    )


@pytest.fixture
def sinks() -> dict[str, list[Event]]:
    """What each collect sink flushed, by name (empty at the start of each test)."""
    SINKS.clear()
    WRITES.clear()
    return SINKS


@pytest.fixture
def refusals() -> dict[str, int]:
    """How many times collect sinks raised EventsRejected (reset by the ``sinks`` fixture)."""
    return WRITES


@pytest.fixture
def make_plan():
    return plan


@pytest.fixture
def registry():
    return get_registry()


class FlakyStep(Step):
    """Fails its first ``args`` calls, counted across instances in FLAKY (a retry builds the
    steps anew)."""

    name = "flaky"
    Args = int

    def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        FLAKY["calls"] += 1
        if FLAKY["calls"] <= self.args:
            raise ConnectionError(f"lookup service down (call {FLAKY['calls']})")
        return events


FLAKY: dict[str, int] = {"calls": 0}


class SlowSink(CollectSink):
    """A collect sink whose writes take ``delay`` seconds (``hang``: forever)."""

    name = "slow"

    class Config(CollectSink.Config):
        delay: float = 0.05
        hang: bool = False

    async def write(self, events: Sequence[Event]) -> None:
        await asyncio.sleep(3600 if self.config.hang else self.config.delay)
        await super().write(events)


def route_plan(
    tmp_path: Path,
    *,
    items: list[Any],
    steps: list[tuple[str | type[Step], Any]],
    out_config: dict[str, str] | None = None,
    sink: type[Sink] = CollectSink,
    sink_config: dict[str, Any] | None = None,
    to: tuple[str, ...] = ("events",),
    codecs: dict[str, str] | None = None,
    pause: float = 0.0,
) -> Pipeline:
    """list source → ``to`` topics → route ``r`` (``steps``) → topic ``out`` → a sink."""
    registry = get_registry()
    codecs = codecs or {}
    topics = {
        name: TopicPlan(name, partitions=2, codec=codecs.get(name, "json"))
        for name in ("events", "raw", "dead")
    }
    topics["out"] = TopicPlan("out", partitions=1, config=out_config or {})
    classes = [registry.step(s) if isinstance(s, str) else s for s, _ in steps]
    step_plans = tuple(
        StepPlan(cls, TypeAdapter(cls.Args).validate_python(args), f"routes.r.steps[{i}]")
        for i, (cls, (_, args)) in enumerate(zip(classes, steps, strict=True))
    )
    route = RoutePlan("r", "p.r", ("events",), step_plans, (Output("out"),), retry=FAST)
    return Pipeline(
        name="p",
        file=tmp_path / "pipeline.yaml",
        store=None,
        dead_letter="dead",
        topics=topics,
        sources={
            "src": SourcePlan("src", ListSource, ListSource.Config(items=items, pause=pause), to)
        },
        routes={"r": route},
        sinks={
            "out": SinkPlan(
                "out", "p.out", sink, sink.Config(**(sink_config or {})), ("out",), retry=FAST
            )
        },
    )


@pytest.fixture
def make_route_plan():
    FLAKY["calls"] = 0
    return route_plan


@pytest.fixture
def flaky_step() -> type[Step]:
    return FlakyStep


@pytest.fixture
def slow_sink() -> type[Sink]:
    return SlowSink
