"""Running one step the way a route does: its argument validated, built once, fed batches."""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import TypeAdapter

from millstream.core.event import Event
from millstream.core.step import Expression, Rejection, Step
from millstream.pipelines.expr import compile_expression
from millstream.pipelines.plan import Pipeline
from millstream.pipelines.spec import load_pipeline


@dataclass
class Context:
    """A StepContext for steps built outside a pipeline file."""

    base_dir: Path
    pipeline: str = "test"
    route: str = "route"

    def expression(self, text: str, path: str = "") -> Expression:
        return compile_expression(text)


class Harness:
    """Builds a step from a YAML-like argument and runs batches through it."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir

    def build(self, step: type[Step], argument: Any) -> Step:
        args = TypeAdapter(step.Args).validate_python(argument)
        return step(args, Context(self.base_dir))

    async def run(
        self, step: Step | tuple[type[Step], Any], values: list[Any] | list[Event]
    ) -> tuple[list[Event], list[Rejection]]:
        if isinstance(step, tuple):
            step = self.build(*step)
        events = [v if isinstance(v, Event) else Event(v) for v in values]
        rejected: list[Rejection] = []
        out = step.process(events, rejected)
        if inspect.isawaitable(out):
            out = await out
        return list(out), rejected

    async def values(self, step: Step | tuple[type[Step], Any], values: list[Any]) -> list[Any]:
        out, rejected = await self.run(step, values)
        assert not rejected, [r.reason for r in rejected]
        return [e.value for e in out]

    def pipeline(self, steps_yaml: str, name: str = "pipeline.yaml") -> Pipeline:
        """A pipeline file with one route ``r`` whose steps are ``steps_yaml``, loaded."""
        steps = textwrap.indent(textwrap.dedent(steps_yaml).strip(), " " * 6)
        text = (
            "pipeline: p\n"
            "topics:\n  a: {}\n  b: {}\n"
            "routes:\n  r:\n    from: a\n    to: b\n    steps:\n"
            f"{steps}\n"
        )
        path = self.base_dir / name
        path.write_text(text)
        return load_pipeline(path)


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    return Harness(tmp_path)
