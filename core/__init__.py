"""millstream.core: the engine (event log, client, command line) and the public surface.

Plugin authors and applications import from here and nothing deeper.
"""

from .client import Connection, Consumer, Producer, connect
from .codecs import Codec
from .connector import ConnectorConfig, ConnectorContext, Sink, Source, SourceBatch
from .duration import Duration
from .errors import (
    CodecError,
    CommitFailedError,
    ConfigError,
    ConnectorError,
    EventsRejected,
    InvalidTopicError,
    MillstreamError,
    PipelineError,
    PluginError,
    ProtocolError,
    StoreError,
    UnknownTopicError,
)
from .event import Event, key_bytes
from .hookspecs import hookimpl
from .record import Header, Record, StoredRecord, TopicPartition
from .step import Expression, Rejection, Step, StepContext

__all__ = [
    "Codec",
    "CodecError",
    "CommitFailedError",
    "ConfigError",
    "Connection",
    "ConnectorConfig",
    "ConnectorContext",
    "ConnectorError",
    "Consumer",
    "Duration",
    "Event",
    "EventsRejected",
    "Expression",
    "Header",
    "InvalidTopicError",
    "MillstreamError",
    "PipelineError",
    "PluginError",
    "Producer",
    "ProtocolError",
    "Record",
    "Rejection",
    "Sink",
    "Source",
    "SourceBatch",
    "Step",
    "StepContext",
    "StoreError",
    "StoredRecord",
    "TopicPartition",
    "UnknownTopicError",
    "connect",
    "hookimpl",
    "key_bytes",
]
