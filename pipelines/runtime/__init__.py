"""Running pipelines: sources, routes and sinks wired through the log, at-least-once.

:class:`Runtime` runs validated pipelines (:class:`~millstream.pipelines.plan.Pipeline`) on a
store connection; :class:`Stats` and :class:`StatsReporter` count and show what they do.
"""

from __future__ import annotations

from .backoff import Exhausted, delay, retrying
from .deadletter import DeadLetterWriter, Failure, strip_dead_letter_headers
from .runtime import Runtime, tune_gc
from .source import position_key
from .stats import PartStats, Stats, StatsReporter

__all__ = [
    "DeadLetterWriter",
    "Exhausted",
    "Failure",
    "PartStats",
    "Runtime",
    "Stats",
    "StatsReporter",
    "delay",
    "position_key",
    "retrying",
    "strip_dead_letter_headers",
    "tune_gc",
]
