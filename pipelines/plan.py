"""A validated pipeline, ready to run: what the spec compiler makes of a pipeline file.

``millstream.pipelines.spec`` reads a file, checks everything that can be checked before a
single event flows (names, references, connector configs, step arguments, expressions, the
shape of the graph) and returns a :class:`Pipeline`. The runtime and ``millstream test`` work
from this plan alone; they never look at YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from millstream.core.connector import ConnectorConfig, Sink, Source
from millstream.core.step import Expression, Step

__all__ = [
    "OnError",
    "Output",
    "Pipeline",
    "Retry",
    "RoutePlan",
    "SinkPlan",
    "SourcePlan",
    "StepPlan",
    "TopicPlan",
]

OnError = Literal["dead_letter", "stop"]


@dataclass(frozen=True)
class Retry:
    """Exponential backoff with full jitter: attempt n waits up to
    ``min(max_s, initial_s * 2**n)``."""

    max_attempts: int = 3
    initial_s: float = 0.2
    max_s: float = 10.0


@dataclass(frozen=True)
class TopicPlan:
    """A topic the pipeline declares; ``config`` is in the store's terms (``retention.ms``…)."""

    name: str
    partitions: int = 1
    replication: int | None = None
    config: dict[str, str] = field(default_factory=dict)
    codec: str = "json"


@dataclass(frozen=True)
class SourcePlan:
    name: str
    connector: type[Source]
    config: ConnectorConfig
    to: tuple[str, ...]
    key: Expression | None = None
    key_text: str | None = None
    where: str = ""  # "file:line:col" of the source's entry, for messages


@dataclass(frozen=True)
class StepPlan:
    """One step: its class and validated argument; built into a Step per worker."""

    step: type[Step]
    args: Any
    path: str  # YAML path, e.g. "routes.clean.steps[0].filter"
    where: str = ""


@dataclass(frozen=True)
class Output:
    """One entry of a route's ``to``: the topic and, when given, the condition."""

    topic: str
    when: Expression | None = None
    when_text: str | None = None


@dataclass(frozen=True)
class RoutePlan:
    name: str
    group: str  # the consumer group: "<pipeline>.<route>"
    inputs: tuple[str, ...]
    steps: tuple[StepPlan, ...]
    outputs: tuple[Output, ...]
    switch: Literal["all", "first"] = "all"
    unmatched: str | None = None
    dead_letter: str | None = None
    start: Literal["earliest", "latest"] = "earliest"
    workers: int = 1
    retry: Retry = field(default_factory=Retry)
    on_error: OnError = "dead_letter"
    where: str = ""


@dataclass(frozen=True)
class SinkPlan:
    name: str
    group: str  # "<pipeline>.<sink>"
    connector: type[Sink]
    config: ConnectorConfig
    inputs: tuple[str, ...]
    dead_letter: str | None = None
    start: Literal["earliest", "latest"] = "earliest"
    workers: int = 1
    retry: Retry = field(default_factory=Retry)
    on_error: OnError = "dead_letter"
    where: str = ""


@dataclass(frozen=True)
class Pipeline:
    """A whole validated pipeline file."""

    name: str
    file: Path
    store: str | None  # as the file says, relative paths already resolved; None: not given
    dead_letter: str | None
    topics: dict[str, TopicPlan]
    sources: dict[str, SourcePlan]
    routes: dict[str, RoutePlan]
    sinks: dict[str, SinkPlan]
    tests: tuple[Any, ...] = ()  # the file's ``tests:`` entries, for ``millstream test``
    positions: Any = field(default=None, repr=False, compare=False)
    """Where each key and value of the file is (``millstream.pipelines.spec.Positions``), so
    that ``tests:`` entries can be validated with file:line:column; None for a plan not read
    from a file."""

    @property
    def base_dir(self) -> Path:
        return self.file.parent
