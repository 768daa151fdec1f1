"""The built-in processor steps, registered as a plugin like any other."""

from __future__ import annotations

from millstream.core import Step, hookimpl

__all__ = ["BUILTIN_STEPS"]

BUILTIN_STEPS: tuple[type[Step], ...] = ()
"""Every built-in Step class."""


@hookimpl
def register_steps() -> tuple[type[Step], ...]:
    return BUILTIN_STEPS
