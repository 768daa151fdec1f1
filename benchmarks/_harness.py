"""Running benchmarks and writing their results into BENCHMARKS.md."""

from __future__ import annotations

import platform
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCHMARKS_MD = Path(__file__).resolve().parent.parent / "BENCHMARKS.md"


@dataclass
class Result:
    """One benchmark's medians, with its baseline and target."""

    name: str
    unit: str
    value: float
    target: str
    met: bool
    baseline: float | None = None
    baseline_label: str = ""
    runs: list[float] = field(default_factory=list)
    baseline_runs: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if not self.baseline:
            return None
        return self.value / self.baseline


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "–"
    if unit.endswith("/s"):
        return f"{value:,.0f} {unit}"
    return f"{value:,.2f} {unit}"


def render(suite: str, title: str, results: list[Result], runs: int, how: str) -> str:
    lines = [
        f"<!-- suite:{suite} -->",
        f"## {title}",
        "",
        f"Measured {time.strftime('%Y-%m-%d')} on {platform.node() or 'this machine'} "
        f"({platform.machine()}, Python {platform.python_version()}); medians of {runs} runs, "
        "each run measuring the subject and its baseline back to back.",
        "",
        "| benchmark | result | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for r in results:
        ratio = f"{r.ratio:.2f}×" if r.ratio is not None else "–"
        baseline = _fmt(r.baseline, r.unit)
        if r.baseline_label:
            baseline += f" ({r.baseline_label})"
        lines.append(
            f"| {r.name} | {_fmt(r.value, r.unit)} | {baseline} | {ratio} | {r.target} | "
            f"{'yes' if r.met else '**no**'} |"
        )
    notes = [f"- **{r.name}**: {r.note}" for r in results if r.note]
    if notes:
        lines += ["", *notes]
    lines += ["", f"Rerun: `{how}`.", f"<!-- /suite:{suite} -->"]
    return "\n".join(lines)


def write_section(suite: str, section: str) -> None:
    """Replace (or add) the suite's section of BENCHMARKS.md."""
    header = (
        "# Benchmarks\n\n"
        "Figures from `make bench`. Each is the median of several runs on a shared 2-core "
        "machine, next to a baseline measured in the same run; compare ratios rather than "
        "absolute times.\n"
    )
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else header
    pattern = re.compile(rf"<!-- suite:{suite} -->.*?<!-- /suite:{suite} -->", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: section, text)
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    BENCHMARKS_MD.write_text(text if text.endswith("\n") else text + "\n")
