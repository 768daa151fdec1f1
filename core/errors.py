"""The one error tree of millstream.

Every error millstream raises on purpose is a :class:`MillstreamError`. Its message is one line
that names the thing that was wrong and says what would be valid; the command line prints it as
it is, without a traceback.

::

    MillstreamError
    ├── ConfigError                  bad settings; carries file, line, column and YAML path
    │   └── InvalidStoreURLError     a store URL that names no store millstream can open
    ├── StoreError                   the event log refused or failed an operation
    │   ├── AuthenticationError      credentials refused, or a broker certificate not trusted
    │   ├── InvalidTopicError        a topic name outside Kafka's rule
    │   ├── UnknownTopicError        no such topic
    │   ├── TopicExistsError         a topic of that name already exists
    │   ├── InvalidPartitionsError   a partition count or index out of range
    │   ├── InvalidOffsetError       an offset that is negative or outside the log
    │   ├── RecordTooLargeError      a record or batch above max.message.bytes
    │   ├── CorruptBatchError        bytes that are not a valid RecordBatch v2
    │   ├── StoreLockedError         the data directory is owned by another process
    │   ├── ReadOnlyStoreError       a write through a store opened read-only
    │   ├── ForeignFileError         a file in the data directory that the store did not write
    │   ├── StoreWriteError          the disk refused a write (full, read-only, I/O error)
    │   ├── StoreClosedError         an operation on a closed store, producer or consumer
    │   ├── UnknownGroupError        no such consumer group
    │   └── CommitFailedError        an offset commit for partitions the consumer no longer owns
    ├── ConnectorError               a source or sink failed
    │   └── EventsRejected           a sink refused some events for good (they go to dead letters)
    ├── CodecError                   a value its topic's codec cannot decode or encode
    ├── PluginError                  a plugin that cannot be loaded or registers something broken
    ├── PipelineError                a running pipeline stopped (``on_error: stop``, a failed part)
    ├── QueryError                   a query that is not valid, not allowed, or failed
    └── ProtocolError                bytes on the wire that do not follow the Kafka protocol
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .step import Rejection

__all__ = [
    "AuthenticationError",
    "CodecError",
    "CommitFailedError",
    "ConfigError",
    "ConnectorError",
    "CorruptBatchError",
    "EventsRejected",
    "ForeignFileError",
    "InvalidOffsetError",
    "InvalidPartitionsError",
    "InvalidStoreURLError",
    "InvalidTopicError",
    "MillstreamError",
    "PipelineError",
    "PluginError",
    "ProtocolError",
    "QueryError",
    "ReadOnlyStoreError",
    "RecordTooLargeError",
    "StoreClosedError",
    "StoreError",
    "StoreLockedError",
    "StoreWriteError",
    "TopicExistsError",
    "UnknownGroupError",
    "UnknownTopicError",
]


class MillstreamError(Exception):
    """The root of every error millstream raises on purpose."""


class ConfigError(MillstreamError):
    """Settings that cannot be used.

    ``file``, ``line`` and ``column`` (1-based) locate the problem when it came from a file;
    ``path`` is the dotted YAML path (``sinks.archive.config.path``). ``str()`` puts the
    location first, the way compilers do: ``pipeline.yaml:12:5: sinks.archive: ...``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | None = None,
        line: int | None = None,
        column: int | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.file = file
        self.line = line
        self.column = column
        self.path = path
        super().__init__(self._render())

    def _render(self) -> str:
        where = ""
        if self.file is not None:
            where = self.file
            if self.line is not None:
                where += f":{self.line}"
                if self.column is not None:
                    where += f":{self.column}"
            where += ": "
        subject = f"{self.path}: " if self.path else ""
        return f"{where}{subject}{self.message}"


class InvalidStoreURLError(ConfigError):
    """A store URL that names no store millstream can open."""


class StoreError(MillstreamError):
    """The event log refused or failed an operation."""


class AuthenticationError(StoreError):
    """A broker refused the client's SASL credentials, or its TLS certificate cannot be
    verified. Retrying does not help: the store URL must change."""


class InvalidTopicError(StoreError, ValueError):
    """A topic name outside Kafka's rule (``[a-zA-Z0-9._-]``, 1–249 characters, not . or ..)."""


class UnknownTopicError(StoreError, LookupError):
    """No topic of that name exists."""

    @classmethod
    def named(cls, name: str) -> UnknownTopicError:
        """The one message for a topic that does not exist, on every store."""
        return cls(
            f"unknown topic {name!r}; create it with `millstream topics create {name} "
            "--partitions N`"
        )


class TopicExistsError(StoreError):
    """A topic of that name already exists."""


class InvalidPartitionsError(StoreError, ValueError):
    """A partition count or partition index out of range."""


class InvalidOffsetError(StoreError, ValueError):
    """An offset that is negative or lies outside the log."""


class RecordTooLargeError(StoreError, ValueError):
    """A record or batch larger than the topic's ``max.message.bytes``."""


class CorruptBatchError(StoreError):
    """Bytes that are not a valid RecordBatch v2 (length, magic or CRC wrong)."""


class StoreLockedError(StoreError):
    """The data directory is owned for writing by another running process."""


class ReadOnlyStoreError(StoreError):
    """A write attempted through a store opened read-only."""

    @classmethod
    def during(cls, path: object, action: str) -> ReadOnlyStoreError:
        """The one message for every such write, ``action`` saying what was tried
        (``"commit offsets for group 'g'"``)."""
        return cls(
            f"cannot {action}: data directory {str(path)!r} is in use by another process "
            "(another process owns it for writing), so this store is open read-only; stop that "
            "process, or run `millstream broker` to share a store between processes"
        )


class ForeignFileError(StoreError):
    """A file or folder in the data directory that the store did not write."""


class StoreWriteError(StoreError, OSError):
    """The disk refused a write (full, read-only or failing); nothing was acknowledged."""


class StoreClosedError(StoreError):
    """An operation on a store, producer or consumer that has been closed."""


class UnknownGroupError(StoreError, LookupError):
    """No consumer group of that name exists."""


class CommitFailedError(StoreError):
    """An offset commit for partitions this consumer no longer owns (a rebalance moved them)."""


class ConnectorError(MillstreamError):
    """A source or sink failed."""


class EventsRejected(ConnectorError):
    """A sink refused some events for good: a 4xx answer, a row the database refuses.

    Raised by :meth:`Sink.write` or :meth:`Sink.flush` *after* the sink has dealt with every
    other event of the call (written, or durable for ``flush``): the runtime sends each of
    ``rejections`` (:class:`~millstream.core.step.Rejection`: the event and the one-line
    reason) to the dead-letter topic at once, without retrying them, and goes on.
    """

    def __init__(self, rejections: Sequence[Rejection]) -> None:
        self.rejections = list(rejections)
        first = self.rejections[0].reason if self.rejections else "no reason given"
        more = f" (and {len(self.rejections) - 1} more)" if len(self.rejections) > 1 else ""
        super().__init__(f"{len(self.rejections)} event(s) refused: {first}{more}")


class CodecError(MillstreamError, ValueError):
    """A value that its topic's codec cannot decode (bad bytes) or encode (a bad value)."""


class PluginError(MillstreamError):
    """A plugin that cannot be loaded, or that registers something broken; names the plugin."""


class PipelineError(MillstreamError):
    """A running pipeline stopped: a part with ``on_error: stop`` failed, or a part crashed."""


class QueryError(MillstreamError):
    """A query that is not valid SQL, names no known topic, is not allowed (it would write or
    read outside the allowed folders), or failed while it ran."""


class ProtocolError(MillstreamError):
    """Bytes on the wire that do not follow the Kafka protocol."""
