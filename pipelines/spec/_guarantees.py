"""What delivery guarantee each part of a pipeline really has, and why.

The runtime is at-least-once end to end (see docs/pipelines.md): a source's position advances
only after the log acknowledged its events, a route commits its input offsets only after its
outputs are acknowledged, a sink only after ``flush()`` returned. Two things change that:

- a source that cannot resume (``resumable = False``) and whose other side does not hand out
  again what it did not acknowledge (``redelivers_for(config)`` false, as for stdin) may lose or
  repeat what it had read when it stopped, so it, and everything downstream of the topics it
  writes, is *best-effort*;
- a sink whose writes are idempotent (``idempotent = True``) keeps one copy of an event written
  twice, recognised by its content or key (an upsert by key), not by the offset it was read
  from: fed only by resumable sources, its *results* are *exactly-once*.

Routes stay at-least-once: a restart may write an event to their outputs again, and the copy is
read at a new offset. That is why a sink that only leaves out a record it was given twice (the
same topic, partition and offset) is not idempotent: it would keep that copy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..plan import Pipeline

__all__ = ["Guarantee", "guarantees"]

Level = Literal["at-least-once", "exactly-once", "best-effort"]


@dataclass(frozen=True)
class Guarantee:
    """The guarantee of one source, route or sink: ``level`` and a one-line ``why``."""

    kind: Literal["source", "route", "sink"]
    name: str
    level: Level
    why: str


def guarantees(pipeline: Pipeline) -> list[Guarantee]:
    """One :class:`Guarantee` per source, route and sink, in that order, each in file order."""
    taint: dict[str, str] = {}  # topic -> why what it holds is best-effort
    result: list[Guarantee] = []
    for name, source in pipeline.sources.items():
        connector = source.connector.name
        if source.connector.resumable_for(source.config):
            result.append(
                Guarantee(
                    "source",
                    name,
                    "at-least-once",
                    f"{connector!r} resumes just after the last position the log acknowledged",
                )
            )
            continue
        if source.connector.redelivers_for(source.config):
            result.append(
                Guarantee(
                    "source",
                    name,
                    "at-least-once",
                    f"{connector!r} acknowledges only what the log has, and what it did not "
                    "acknowledge is handed out again by the other side",
                )
            )
            continue
        result.append(
            Guarantee(
                "source",
                name,
                "best-effort",
                f"{connector!r} cannot resume: what it had read but the log had not yet "
                "acknowledged when it stopped is lost or read again",
            )
        )
        reason = f"source {name!r} ({connector}) cannot resume"
        for topic in (*source.to, pipeline.dead_letter):
            if topic is not None:
                taint.setdefault(topic, reason)

    route_levels: dict[str, Guarantee] = {}
    for _ in range(len(pipeline.routes) + 1):  # follow taint along chains of routes
        changed = False
        for name, route in pipeline.routes.items():
            tainted = next((t for t in route.inputs if t in taint), None)
            if tainted is None:
                level = Guarantee(
                    "route",
                    name,
                    "at-least-once",
                    "commits what it read only after its outputs are acknowledged; a restart "
                    "may write some events again",
                )
            else:
                level = Guarantee(
                    "route", name, "best-effort", f"reads {tainted!r}, and {taint[tainted]}"
                )
                outputs = [o.topic for o in route.outputs] + [route.unmatched, route.dead_letter]
                for topic in outputs:
                    if topic is not None and topic not in taint:
                        taint[topic] = taint[tainted]
                        changed = True
            route_levels[name] = level
        if not changed:
            break
    result.extend(route_levels[name] for name in pipeline.routes)

    for name, sink in pipeline.sinks.items():
        tainted = next((t for t in sink.inputs if t in taint), None)
        connector = sink.connector.name
        if tainted is not None:
            result.append(
                Guarantee("sink", name, "best-effort", f"reads {tainted!r}, and {taint[tainted]}")
            )
        elif sink.connector.idempotent_for(sink.config):
            result.append(
                Guarantee(
                    "sink",
                    name,
                    "exactly-once",
                    f"exactly-once results: {connector!r} keeps one copy of an event written "
                    "twice (by its content or key, so also one a route wrote again after a "
                    "restart), and everything it reads comes from sources that resume",
                )
            )
        else:
            result.append(
                Guarantee(
                    "sink",
                    name,
                    "at-least-once",
                    "commits what it read only after flush(); a restart may write some events "
                    "again",
                )
            )
    return result
