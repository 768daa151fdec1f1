"""millstream.connectors: the built-in connectors, registered as a plugin like any other.

- ``generator`` (source): simulated sensor readings, deterministic from a seed; resumable.
- ``stdin`` (source): one event per line of standard input; ends with the input.
- ``stdout`` (sink): one line per event, the value in its topic's codec or a JSON envelope.
- ``memory`` (source and sink): named in-process channels, for tests.
- ``null`` (sink): discards everything.
- ``file`` (source and sink): lines of files, read once or followed like ``tail -F``; written
  as jsonl, csv or lines, rolled by size and age, renamed into place when complete.
- ``http-server`` (source): webhooks, answered 2xx once the log holds their events.
- ``http-poll`` (source): a URL polled on an interval; a cursor, ETag or Last-Modified as its
  position; follows pagination.
- ``http`` (sink): HTTP requests, one per event or batched; retries with backoff; 4xx answers
  go to the dead-letter topic.
- ``mqtt`` (source and sink): MQTT topic filters over a persistent session, acknowledged to
  the broker once the log has each message; events published to templated topics.
- ``sqlite`` (source and sink): rows of a SQLite table or query; events upserted or inserted
  as rows.
- ``postgres`` (source and sink): rows of a PostgreSQL table or query; events upserted with
  ``INSERT … ON CONFLICT`` or appended with ``COPY``.
- ``kafka`` (source and sink): topics of another cluster (Apache Kafka, a millstream broker),
  read in a consumer group committed once the log has the records; events written there.
"""

from __future__ import annotations

from millstream.core import Sink, Source, hookimpl

from .file import FileSink, FileSource
from .generator import GeneratorSource
from .http import HttpPollSource, HttpServerSource, HttpSink
from .kafka import KafkaSink, KafkaSource
from .memory import MemorySink, MemorySource
from .mqtt import MqttSink, MqttSource
from .null import NullSink
from .postgres import PostgresSink, PostgresSource
from .sqlite import SqliteSink, SqliteSource
from .stdin import StdinSource
from .stdout import StdoutSink

__all__ = ["BUILTIN_CONNECTORS"]

BUILTIN_CONNECTORS: tuple[type[Source] | type[Sink], ...] = (
    GeneratorSource,
    StdinSource,
    StdoutSink,
    MemorySource,
    MemorySink,
    NullSink,
    FileSource,
    FileSink,
    HttpServerSource,
    HttpPollSource,
    HttpSink,
    MqttSource,
    MqttSink,
    SqliteSource,
    SqliteSink,
    PostgresSource,
    PostgresSink,
    KafkaSource,
    KafkaSink,
)
"""Every built-in Source and Sink class."""


@hookimpl
def register_connectors() -> tuple[type[Source] | type[Sink], ...]:
    return BUILTIN_CONNECTORS
