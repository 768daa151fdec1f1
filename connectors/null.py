"""The ``null`` sink: takes every event and keeps none.

For measuring what comes before it, and for pipelines whose work is done by their routes.
Writing an event twice leaves no copy either, so it counts as idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from millstream.core import ConnectorConfig, Event, Sink

__all__ = ["NullConfig", "NullSink"]


class NullConfig(ConnectorConfig):
    """The null sink has no settings."""


class NullSink(Sink):
    """Discards every event."""

    name = "null"
    Config: ClassVar[type[ConnectorConfig]] = NullConfig
    idempotent = True

    async def write(self, events: Sequence[Event]) -> None:
        pass
