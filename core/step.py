"""The processor-step contract: :class:`Step`.

A step is one entry of a route's ``steps:`` list in a pipeline file, such as
``- filter: value.temp > 20``. The key (``filter``) is the step's ``name``; the value is its
argument, validated against the step's ``Args`` type (any type pydantic can validate: ``str``,
a ``dict``, a model) before anything runs, so a bad argument is a config error with its
file:line:column.

Steps work a batch at a time. :meth:`Step.process` gets the events of one batch, in order, and
returns the events that go on (changed, fewer, more); an event it cannot handle is appended to
``rejected`` as a :class:`Rejection`, and the runtime sends it to the dead-letter topic with the
reason and the step's name. ``process`` may be a plain function or return an awaitable (a step
that does I/O); plain is faster.
"""

from __future__ import annotations

import abc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

from .event import Event

__all__ = ["Expression", "Rejection", "Step", "StepContext"]


@dataclass(slots=True)
class Rejection:
    """An event a step could not handle, and why (one line, for the dead-letter headers)."""

    event: Event
    reason: str


Expression = Callable[[Event], Any]
"""A compiled pipeline expression: called with an event, returns the expression's value."""


class StepContext(Protocol):
    """What a step knows about where it runs."""

    pipeline: str
    route: str
    base_dir: Path

    def expression(self, text: str, path: str = "") -> Expression:
        """Compile a pipeline expression (``value.temp > 20``); raises ConfigError, naming
        ``path`` (the YAML path under the step), when it is not a valid expression."""


class Step(abc.ABC):
    """One processing step of a route. Built once per route (per worker) from its argument."""

    name: ClassVar[str]
    """The key that names the step in a pipeline file."""
    Args: ClassVar[Any] = Any
    """The type the step's argument must validate against."""

    def __init__(self, args: Any, context: StepContext) -> None:
        self.args = args
        self.context = context

    @abc.abstractmethod
    def process(
        self, events: list[Event], rejected: list[Rejection]
    ) -> list[Event] | Awaitable[list[Event]]:
        """The events that go on; the ones this step cannot handle go to ``rejected``."""

    async def close(self) -> None:
        """Release what the step holds (called once when the route stops)."""
