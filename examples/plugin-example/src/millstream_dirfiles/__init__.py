"""millstream-dirfiles: the ``dirlines`` source and the ``jsonlines`` sink.

Installed, this module is loaded through its ``millstream`` entry point; the hook below hands
millstream the two connector classes.
"""

from __future__ import annotations

from millstream.core import Sink, Source, hookimpl

from .sink import JsonLinesSink
from .source import DirLinesSource

__all__ = ["DirLinesSource", "JsonLinesSink"]


@hookimpl
def register_connectors() -> list[type[Source] | type[Sink]]:
    return [DirLinesSource, JsonLinesSink]
