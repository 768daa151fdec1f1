"""Live statistics of running pipelines, and how they are shown.

Every source, route and sink has a :class:`PartStats` its runner counts into (plain integer
adds on the hot path, nothing else). A :class:`StatsReporter` shows them on stderr: a table
redrawn in place on a terminal, a plain line per part every ``interval`` seconds otherwise,
nothing with ``--quiet``; and a summary when the run ends.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["PartStats", "Stats", "StatsReporter"]


@dataclass(slots=True)
class PartStats:
    """Counters of one source, route or sink."""

    pipeline: str
    kind: str  # "source", "route", "sink"
    name: str
    events_in: int = 0
    events_out: int = 0
    errors: int = 0  # failed attempts (retried or not)
    dead: int = 0  # events sent to the dead-letter topic
    lag: int | None = None  # records not yet consumed (routes and sinks)
    state: str = "starting"
    _last_in: int = 0
    _last_t: float = field(default_factory=time.monotonic)
    rate: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.pipeline}.{self.name}"

    def sample(self, now: float) -> None:
        """Update ``rate`` (events in per second since the last sample)."""
        elapsed = now - self._last_t
        if elapsed > 0:
            self.rate = (self.events_in - self._last_in) / elapsed
        self._last_in = self.events_in
        self._last_t = now

    def as_dict(self) -> dict[str, object]:
        return {
            "pipeline": self.pipeline,
            "kind": self.kind,
            "name": self.name,
            "in": self.events_in,
            "out": self.events_out,
            "errors": self.errors,
            "dead": self.dead,
            "lag": self.lag,
            "state": self.state,
        }


class Stats:
    """All parts' counters, in the order they were added."""

    def __init__(self) -> None:
        self.parts: list[PartStats] = []
        self.started = time.monotonic()

    def add(self, pipeline: str, kind: str, name: str) -> PartStats:
        part = PartStats(pipeline, kind, name)
        self.parts.append(part)
        return part

    def find(self, kind: str, name: str) -> PartStats | None:
        for part in self.parts:
            if part.kind == kind and part.name == name:
                return part
        return None


_COLUMNS = ("part", "kind", "in", "out", "rate/s", "errors", "dead", "lag", "state")


def _row(part: PartStats) -> tuple[str, ...]:
    return (
        part.label,
        part.kind,
        f"{part.events_in:,}",
        f"{part.events_out:,}",
        f"{part.rate:,.0f}",
        f"{part.errors:,}",
        f"{part.dead:,}",
        "-" if part.lag is None else f"{part.lag:,}",
        part.state,
    )


def render_table(parts: list[PartStats]) -> list[str]:
    """The parts as an aligned text table (header first)."""
    rows = [_COLUMNS, *(_row(p) for p in parts)]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = []
    for row in rows:
        cells = [
            cell.ljust(widths[i]) if i in (0, 1, 8) else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


class StatsReporter:
    """Shows :class:`Stats` on ``stream`` while a run lasts.

    ``mode`` is ``"table"`` (redrawn in place; the default on a terminal), ``"lines"`` (a line
    per part every ``interval`` seconds; the default otherwise) or ``"quiet"``.
    ``refresh`` is awaited before each report, to update lags.
    """

    def __init__(
        self,
        stats: Stats,
        *,
        mode: str | None = None,
        interval: float | None = None,
        stream: TextIO | None = None,
        refresh: Callable[[], object] | None = None,
    ) -> None:
        self.stats = stats
        self.stream = stream or sys.stderr
        if mode is None:
            mode = "table" if self.stream.isatty() else "lines"
        self.mode = mode
        self.interval = interval if interval is not None else (1.0 if mode == "table" else 10.0)
        self.refresh = refresh
        self._drawn = 0

    async def run(self) -> None:
        """Report every ``interval`` seconds until cancelled."""
        if self.mode == "quiet":
            return
        while True:
            await asyncio.sleep(self.interval)
            await self._refresh()
            self.report()

    async def _refresh(self) -> None:
        if self.refresh is not None:
            result = self.refresh()
            if asyncio.iscoroutine(result):
                await result

    def report(self) -> None:
        now = time.monotonic()
        for part in self.stats.parts:
            part.sample(now)
        if self.mode == "table":
            lines = render_table(self.stats.parts)
            up = f"\x1b[{self._drawn}F" if self._drawn else ""
            self.stream.write(up + "".join(f"\x1b[2K{line}\n" for line in lines))
            self._drawn = len(lines)
        elif self.mode == "lines":
            for part in self.stats.parts:
                lag = "" if part.lag is None else f" lag={part.lag}"
                self.stream.write(
                    f"millstream: {part.label} {part.kind} in={part.events_in} "
                    f"out={part.events_out} rate={part.rate:.0f}/s errors={part.errors} "
                    f"dead={part.dead}{lag} {part.state}\n"
                )
        self.stream.flush()

    def summary(self, status: str) -> None:
        """The final table, headed by how the run ended (shown unless quiet)."""
        if self.mode == "quiet":
            return
        elapsed = time.monotonic() - self.stats.started
        for part in self.stats.parts:
            part.rate = part.events_in / elapsed if elapsed > 0 else 0.0
        if self.mode == "table" and self._drawn:
            self.stream.write(f"\x1b[{self._drawn}F\x1b[J")
        self.stream.write(f"millstream: {status} after {elapsed:.1f}s\n")
        for line in render_table(self.stats.parts):
            self.stream.write(f"  {line}\n")
        self.stream.flush()
