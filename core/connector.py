"""The connector contract: :class:`Source` and :class:`Sink`.

A connector is a class registered by a plugin (``register_connectors``) under a ``name`` that
pipeline files use (``connector: file``). One name may have a source and a sink. Each has a
pydantic ``Config`` model (unknown keys refused) that pipeline files fill in and that
``millstream connectors describe NAME`` prints.

What the runtime promises, and what it asks in return, is written on each class below. In
short: a source hands out batches of events with a *position*; the runtime writes them to the
log and calls :meth:`Source.ack` with that position only once the log has acknowledged every
event of the batch and of the batches before it, and keeps the acknowledged position in the
log so a restarted source resumes from it. A sink gets batches through :meth:`Sink.write`; the
runtime commits the consumer offsets that cover them only after :meth:`Sink.flush` returned.
Together that is at-least-once, end to end.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from .codecs import Codec, JsonCodec
from .event import Event
from .step import Rejection

__all__ = ["ConnectorConfig", "ConnectorContext", "Sink", "Source", "SourceBatch"]


class ConnectorConfig(BaseModel):
    """The base of every connector's ``Config`` model.

    - Unknown keys are errors (a typo is reported with its file:line:column).
    - A field typed :class:`pathlib.Path` holding a relative path is resolved against the
      folder of the pipeline file that set it, as docker-compose does.
    - A field typed :class:`pydantic.SecretStr` is never printed (not by ``validate``, not in
      errors, not in logs); call ``.get_secret_value()`` where it is used.
    - Each field's ``description`` is the text of its row in ``connectors describe``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class ConnectorContext:
    """What a connector instance knows about where it runs.

    ``pipeline`` and ``name`` name it (``sources.NAME`` / ``sinks.NAME``); ``base_dir`` is the
    pipeline file's folder; ``codecs`` maps each topic the connector touches to its codec (a
    sink that writes values as they were stored, like ``stdout``, encodes with it).
    """

    pipeline: str
    name: str
    base_dir: Path = field(default_factory=Path.cwd)
    codecs: Mapping[str, Codec] = field(default_factory=dict)
    log: logging.Logger = field(default_factory=lambda: logging.getLogger("millstream.connector"))

    def resolve(self, path: str | Path) -> Path:
        """``path`` made absolute against the pipeline file's folder."""
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p

    def codec(self, topic: str | None) -> Codec:
        """The codec of ``topic`` (JSON when the topic is not known)."""
        codec = self.codecs.get(topic or "")
        return codec if codec is not None else _JSON


_JSON = JsonCodec()


@dataclass(slots=True)
class SourceBatch:
    """Events read by a source, and the source's ``position`` just after the last of them.

    A position is any JSON value (a file offset, a cursor, a dict of them); the runtime keeps
    the last acknowledged one in the log (topic ``__source_positions``) and gives it back to
    :meth:`Source.open` after a restart. ``None`` means the source has no positions.

    ``rejected`` holds what the source read but could not make into an event (a line that is
    not JSON, a CSV row with the wrong number of columns, a payload that does not decode): each
    a :class:`~millstream.core.step.Rejection` whose event carries the input as it came (bytes)
    and whose reason says what was wrong. The runtime writes them to the pipeline's dead-letter
    topic, and ``position`` covers them like the events: they are acknowledged with the batch.
    """

    events: list[Event]
    position: Any = None
    rejected: list[Rejection] = field(default_factory=list)


class Source(abc.ABC):
    """Reads events from the outside world.

    Life cycle, all on the runtime's event loop: ``__init__(config, context)`` (no I/O);
    ``await open(position)``; then ``await read()`` over and over, interleaved with
    ``await ack(position)``; ``await close()`` exactly once at the end, also after a failure.

    - :meth:`read` returns the next batch, waiting for data as long as it must (a batch may hold
      only ``rejected`` input); it returns
      ``None`` only when a finite source has nothing more, ever (end of a file read once, end
      of stdin, a generator's ``count``). It may be cancelled while it waits (at shutdown);
      a cancelled read must lose nothing that a later restart would not read again.
    - :meth:`ack` is called with the position of a batch once the log has acknowledged its
      events and those of every batch before it, in order. Only then may the source let the
      outside world forget them (commit a cursor, ack an MQTT message, delete a file).
    - A *resumable* source (``resumable = True``) continues, after ``open(position)``, just
      after ``position``: a restart neither skips events nor repeats acknowledged ones
      (``resumable_for(config)`` says whether it does as configured).
      A source that *redelivers* (``redelivers_for(config)``) has no positions of its own, but
      the other side gives it again what it did not acknowledge. ``validate`` reports both as
      at-least-once, and other sources as best-effort.
    - Backpressure: the runtime calls ``read`` only when it has room; a source must not buffer
      without bound between calls.
    """

    name: ClassVar[str]
    """The connector name pipeline files use."""
    Config: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    resumable: ClassVar[bool] = False
    """True when a restart resumes just after the acknowledged position."""

    @classmethod
    def resumable_for(cls, config: Any) -> bool:
        """Whether the source, configured so, resumes just after the acknowledged position (a
        polled API is only with a cursor or validators to remember). ``validate`` asks this;
        the default is :attr:`resumable`."""
        return cls.resumable

    redelivers: ClassVar[bool] = False
    """True when the other side keeps what the source read but did not acknowledge, and hands
    it out again after a restart: an MQTT broker holding unacknowledged QoS 1 messages in a
    persistent session, a webhook sender retrying until it gets its 2xx. Without positions,
    such a source is still at-least-once."""

    @classmethod
    def redelivers_for(cls, config: Any) -> bool:
        """Whether the source, configured so, is redelivered what it did not acknowledge (MQTT
        at QoS 1 in a persistent session is, at QoS 0 it is not). ``validate`` asks this; the
        default is :attr:`redelivers`."""
        return cls.redelivers

    def __init__(self, config: Any, context: ConnectorContext) -> None:
        self.config = config
        self.context = context

    @property
    def bounded(self) -> bool:
        """True when this source, as configured, ends (``read`` returns None) by itself."""
        return False

    async def open(self, position: Any) -> None:
        """Get ready; ``position`` is the last acknowledged one, or None on a first start."""

    @abc.abstractmethod
    async def read(self) -> SourceBatch | None:
        """The next batch of events, or None once a finite source is exhausted."""

    async def ack(self, position: Any) -> None:
        """Everything up to ``position`` is durable in the log."""

    async def close(self) -> None:
        """Release what ``open`` took. Called once, also after a failure."""


class Sink(abc.ABC):
    """Writes events to the outside world.

    Life cycle: ``__init__(config, context)`` (no I/O); ``await open()``; ``await write(events)``
    any number of times, each followed sooner or later by ``await flush()``; ``await close()``
    exactly once at the end, also after a failure (without a flush: what was written but not
    flushed may be lost and will be written again).

    - :meth:`write` receives events in the order of each input partition. It may buffer.
    - :meth:`flush` returns once everything written so far is durable where the sink puts it.
      Only then does the runtime commit the offsets that cover those events; if the process
      dies before, they are written again after the restart (at-least-once).
    - An *idempotent* sink (``idempotent = True``) keeps one copy when an event is written
      twice, recognised by its content or key (an upsert by key), not by the offset it was
      read from: at-least-once delivery then yields exactly-once results, and ``validate``
      reports it so.
    - A failed ``write`` or ``flush`` raises; the runtime retries the batch with backoff as the
      sink's ``retry`` setting says, then sends it to the dead-letter topic or stops.
    - Some events refused for good (a 4xx answer, a row the database refuses) are not worth a
      retry: deal with the others, then raise :class:`~millstream.core.errors.EventsRejected`
      naming the refused ones; the runtime dead-letters them at once and commits the rest.
    """

    name: ClassVar[str]
    """The connector name pipeline files use."""
    Config: ClassVar[type[ConnectorConfig]] = ConnectorConfig
    idempotent: ClassVar[bool] = False
    """True when writing an event twice leaves one copy (whatever the settings)."""

    @classmethod
    def idempotent_for(cls, config: Any) -> bool:
        """Whether the sink, configured so, keeps one copy of an event written twice: an upsert
        by key does, an append does not. ``validate`` asks this; the default is
        :attr:`idempotent`."""
        return cls.idempotent

    def __init__(self, config: Any, context: ConnectorContext) -> None:
        self.config = config
        self.context = context

    async def open(self) -> None:
        """Get ready to write."""

    @abc.abstractmethod
    async def write(self, events: Sequence[Event]) -> None:
        """Take these events (may buffer)."""

    async def flush(self) -> None:
        """Make everything written so far durable."""

    async def close(self) -> None:
        """Release what ``open`` took. Called once, also after a failure."""
