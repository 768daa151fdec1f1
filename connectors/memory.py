"""The ``memory`` source and sink: named in-process channels, for tests.

A channel is a list of events under a name, shared by everything in the process. A ``memory``
sink appends what it is given to its channel when it flushes (what was written but not flushed
is lost on close, as a crash would lose it). It leaves out a record it is given twice (the same
topic, partition and offset, as when a restart reads again what was not committed), but not an
event that comes back at another offset (a route upstream that wrote it again after a restart),
so it is *not idempotent*: ``validate`` reports it at-least-once. A ``memory`` source reads
its channel from the start; its position is the number of events read, so it is *resumable*.
It waits for more events, and ends at the end of the channel when told to (``bounded: true``)
or once the channel is closed.

Tests reach the channels with :func:`channel`::

    from millstream.connectors.memory import channel

    channel("in").append([Event({"temp": 21.5})])
    ...  # run a pipeline with a memory source on "in" and a memory sink on "out"
    assert channel("out").values() == [...]
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from pydantic import Field

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    Sink,
    Source,
    SourceBatch,
)

__all__ = [
    "Channel",
    "MemorySink",
    "MemorySinkConfig",
    "MemorySource",
    "MemorySourceConfig",
    "channel",
    "reset_channels",
]


class Channel:
    """A named list of events, shared in the process; readers may wait for more."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.events: list[Event] = []
        """Every event, in the order they came (read, do not change)."""
        self.closed = False
        self._places: set[tuple[str, int, int]] = set()
        self._waiters: list[asyncio.Future[None]] = []

    def append(self, events: Iterable[Event]) -> int:
        """Add ``events``, leaving out any whose (topic, partition, offset) the channel already
        holds; returns how many were added."""
        if self.closed:
            raise ConnectorError(f"memory channel {self.name!r} is closed")
        added = 0
        for event in events:
            if event.topic is not None and event.partition is not None and event.offset is not None:
                place = (event.topic, event.partition, event.offset)
                if place in self._places:
                    continue
                self._places.add(place)
            self.events.append(event)
            added += 1
        if added:
            self._wake()
        return added

    def values(self) -> list[Any]:
        """The values of the events, in order."""
        return [event.value for event in self.events]

    def close(self) -> None:
        """No more events will come: sources reading the channel end at its end."""
        self.closed = True
        self._wake()

    def __len__(self) -> int:
        return len(self.events)

    async def wait(self, size: int) -> None:
        """Return once the channel holds more than ``size`` events or is closed."""
        while len(self.events) <= size and not self.closed:
            future = asyncio.get_running_loop().create_future()
            self._waiters.append(future)
            try:
                await future
            finally:
                with contextlib.suppress(ValueError):
                    self._waiters.remove(future)

    def _wake(self) -> None:
        waiters, self._waiters = self._waiters, []
        for future in waiters:
            with contextlib.suppress(RuntimeError):  # its loop has closed
                future.get_loop().call_soon_threadsafe(_release, future)


def _release(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


_channels: dict[str, Channel] = {}


def channel(name: str) -> Channel:
    """The channel called ``name``, made empty on first use."""
    found = _channels.get(name)
    if found is None:
        found = _channels[name] = Channel(name)
    return found


def reset_channels() -> None:
    """Forget every channel (between tests)."""
    _channels.clear()


class MemorySourceConfig(ConnectorConfig):
    channel: str = Field(description="the name of the channel to read")
    bounded: bool = Field(
        False, description="end at the end of the channel instead of waiting for more"
    )
    batch_size: int = Field(1000, ge=1, le=100_000, description="the most events in one batch")


class MemorySource(Source):
    """Reads a named in-process channel from the start; resumable."""

    name = "memory"
    Config: ClassVar[type[ConnectorConfig]] = MemorySourceConfig
    resumable = True

    def __init__(self, config: MemorySourceConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: MemorySourceConfig = config
        self._channel = channel(config.channel)
        self._position = 0

    @property
    def bounded(self) -> bool:
        return self.config.bounded

    async def open(self, position: Any) -> None:
        if position is None:
            position = 0
        if type(position) is not int or position < 0:
            raise ConnectorError(
                f"memory {self.context.name!r}: a position is a count of events, not {position!r}"
            )
        self._position = position

    async def read(self) -> SourceBatch | None:
        events = self._channel.events
        if self._position >= len(events):
            if self.config.bounded or self._channel.closed:
                return None
            await self._channel.wait(self._position)
            if self._position >= len(events):
                return None  # closed
        end = min(len(events), self._position + self.config.batch_size)
        batch = events[self._position : end]
        self._position = end
        return SourceBatch(batch, end)


class MemorySinkConfig(ConnectorConfig):
    channel: str = Field(description="the name of the channel to append to")


class MemorySink(Sink):
    """Appends to a named in-process channel on flush, leaving out records it was given
    before (by topic, partition and offset); not idempotent: an event that comes back at
    another offset is kept twice."""

    name = "memory"
    Config: ClassVar[type[ConnectorConfig]] = MemorySinkConfig
    idempotent = False

    def __init__(self, config: MemorySinkConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: MemorySinkConfig = config
        self._written: list[Event] = []

    async def write(self, events: Sequence[Event]) -> None:
        self._written.extend(events)

    async def flush(self) -> None:
        written, self._written = self._written, []
        channel(self.config.channel).append(written)

    async def close(self) -> None:
        self._written = []
