"""The hooks a millstream plugin may implement.

A plugin is a module (or object) with functions marked ``@hookimpl`` whose names are the specs
below. Built-in connectors, steps, codecs and commands are registered through the same hooks.
Hooks are synchronous, as pluggy's are; ``startup`` and ``shutdown`` may return an awaitable,
which ``millstream run`` awaits.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Iterable, Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .codecs import Codec
    from .connector import Sink, Source
    from .step import Step

__all__ = ["hookimpl", "hookspec"]

PROJECT = "millstream"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def register_connectors() -> Iterable[type[Source] | type[Sink]]:
    """Return the Source and Sink classes this plugin provides."""


@hookspec
def register_steps() -> Iterable[type[Step]]:
    """Return the processor Step classes this plugin provides."""


@hookspec
def register_codecs() -> Iterable[type[Codec]]:
    """Return the value Codec classes this plugin provides."""


@hookspec
def register_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add subcommands to the ``millstream`` command line.

    ``commands`` is the subparsers object; ``parents`` holds the parser of the store options
    (``--store``, ``--data-dir``), to pass as ``parents=`` to commands that use a store. A
    command sets ``run`` (``set_defaults(run=...)``) to an async function of the parsed
    arguments that returns the exit status.
    """


@hookspec
def startup(pipelines: Sequence[str]) -> Awaitable[None] | None:
    """Called by ``millstream run`` before its pipelines start, with their names."""


@hookspec
def shutdown(pipelines: Sequence[str]) -> Awaitable[None] | None:
    """Called by ``millstream run`` after its pipelines stopped, with their names."""
