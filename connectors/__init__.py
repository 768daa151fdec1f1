"""millstream.connectors: the built-in connectors, registered as a plugin like any other."""

from __future__ import annotations

from millstream.core import Sink, Source, hookimpl

__all__ = ["BUILTIN_CONNECTORS"]

BUILTIN_CONNECTORS: tuple[type[Source] | type[Sink], ...] = ()
"""Every built-in Source and Sink class."""


@hookimpl
def register_connectors() -> tuple[type[Source] | type[Sink], ...]:
    return BUILTIN_CONNECTORS
