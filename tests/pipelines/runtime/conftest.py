"""Small real connectors for runtime tests, and a helper that builds plans without YAML."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from millstream.core import ConnectorConfig, Event, Sink, Source, SourceBatch
from millstream.core.plugins import get_registry
from millstream.pipelines.plan import Pipeline, Retry, SinkPlan, SourcePlan, TopicPlan

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
        chunk = items[self.next : self.next + self.config.batch]
        self.next += len(chunk)
        return SourceBatch([Event(item) for item in chunk], self.next)


class CollectSink(Sink):
    """Keeps events in SINKS[name] once flushed; fails ``fail_times`` attempts first, and
    always fails an event whose value equals ``poison``."""

    name = "collect"

    class Config(ConnectorConfig):
        name: str = "default"
        fail_times: int = 0
        poison: Any = None

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

    async def flush(self) -> None:
        SINKS[self.config.name].extend(self.buffer)
        self.buffer.clear()


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
                ListSource.Config(items=items, forever=forever),
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
    return SINKS


@pytest.fixture
def make_plan():
    return plan


@pytest.fixture
def registry():
    return get_registry()
