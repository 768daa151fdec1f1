"""The built-in processor steps, registered as a plugin like any other.

Each step is a :class:`~millstream.core.step.Step`: ``name`` is its key in a route's ``steps:``
list and ``Args`` the type its argument is validated against. docs/steps.md describes them.
"""

from __future__ import annotations

from millstream.core import Step, hookimpl

from .dedupe import DedupeStep
from .fields import DropStep, KeepStep, RenameStep, SetStep
from .filter import FilterStep
from .parse import ParseStep
from .python import PythonStep
from .record import KeyStep, TimestampStep
from .throttle import ThrottleStep
from .validate import ValidateStep

__all__ = [
    "BUILTIN_STEPS",
    "DedupeStep",
    "DropStep",
    "FilterStep",
    "KeepStep",
    "KeyStep",
    "ParseStep",
    "PythonStep",
    "RenameStep",
    "SetStep",
    "ThrottleStep",
    "TimestampStep",
    "ValidateStep",
]

BUILTIN_STEPS: tuple[type[Step], ...] = (
    FilterStep,
    SetStep,
    DropStep,
    KeepStep,
    RenameStep,
    ParseStep,
    KeyStep,
    TimestampStep,
    DedupeStep,
    ThrottleStep,
    ValidateStep,
    PythonStep,
)
"""Every built-in Step class, in the order docs/steps.md describes them."""


@hookimpl
def register_steps() -> tuple[type[Step], ...]:
    return BUILTIN_STEPS
