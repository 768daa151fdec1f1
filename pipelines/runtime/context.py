"""What every runner of one pipeline shares: the plan, the store, the codecs, the counters."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from millstream.core.client import Connection, Producer
from millstream.core.codecs import Codec
from millstream.core.connector import ConnectorContext
from millstream.core.step import Expression

from ..plan import Pipeline
from .stats import Stats

__all__ = ["RunContext", "RuntimeStepContext"]

log = logging.getLogger("millstream.pipelines")


@dataclass
class RunContext:
    """One pipeline being run: ``codecs`` maps every topic it declares to its codec."""

    pipeline: Pipeline
    connection: Connection
    producer: Producer
    codecs: dict[str, Codec]
    stats: Stats
    log: logging.Logger = field(default=log)

    @property
    def name(self) -> str:
        return self.pipeline.name

    def connector_context(self, name: str, topics: tuple[str, ...]) -> ConnectorContext:
        return ConnectorContext(
            pipeline=self.name,
            name=name,
            base_dir=self.pipeline.base_dir,
            codecs={t: self.codecs[t] for t in topics if t in self.codecs},
            log=logging.getLogger(f"millstream.connector.{self.name}.{name}"),
        )

    def dead_letter_topic(self, own: str | None) -> str | None:
        return own if own is not None else self.pipeline.dead_letter


@dataclass
class RuntimeStepContext:
    """The StepContext a route's steps are built with at run time."""

    pipeline: str
    route: str
    base_dir: Path

    def expression(self, text: str, path: str = "") -> Expression:
        from ..expr import compile_expression

        return compile_expression(text)
