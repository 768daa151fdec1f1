"""millstream.core: the engine (event log, client, command line) and the public surface.

Plugin authors and applications import from here and nothing deeper.
"""

from .client import Connection, Consumer, Producer, connect
from .errors import (
    CommitFailedError,
    ConfigError,
    ConnectorError,
    InvalidTopicError,
    MillstreamError,
    ProtocolError,
    StoreError,
    UnknownTopicError,
)
from .record import Header, Record, StoredRecord, TopicPartition

__all__ = [
    "CommitFailedError",
    "ConfigError",
    "Connection",
    "ConnectorError",
    "Consumer",
    "Header",
    "InvalidTopicError",
    "MillstreamError",
    "Producer",
    "ProtocolError",
    "Record",
    "StoreError",
    "StoredRecord",
    "TopicPartition",
    "UnknownTopicError",
    "connect",
]
