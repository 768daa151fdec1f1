"""The ``kafka`` sink: events written as records to a topic of another cluster.

:meth:`KafkaSink.write` encodes each event's value (in ``format``, or as the log held it) and
hands the records to the client's producer, which batches them per partition; the key, headers
and timestamp go as the event has them, so a key lands in the partition Kafka's own clients
would pick. :meth:`KafkaSink.flush` returns once the other cluster has acknowledged every record
written so far (with ``acks: all``, the default, once every in-sync replica has it); only then
does the runtime commit the offsets of the events. A flush that fails raises, and the runtime
writes the batch again: at-least-once, so a record may land twice.

The topic is a fixed name or a template holding ``{topic}``, the topic the event was read from
(``mirror.{topic}``). A topic that does not exist on the other cluster is created by the sink
when ``create_topic`` is on (with ``partitions`` and ``replication_factor``); otherwise a fixed
topic is an error at ``open`` and an event whose templated topic is missing goes to the
dead-letter topic, as does one whose value cannot be written in ``format`` or that is larger
than the topic takes.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar, Literal, cast

from pydantic import Field, field_validator

from millstream.core import (
    CodecError,
    ConfigError,
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    EventsRejected,
    Rejection,
    Sink,
    StoreError,
    UnknownTopicError,
    key_bytes,
)
from millstream.core.client import BatchDelivery, Connection, Producer, redact_url
from millstream.core.duration import Duration
from millstream.core.errors import InvalidTopicError, TopicExistsError
from millstream.core.log import validate_topic_name
from millstream.core.record import Record

from ._cluster import FORMATS, ClusterConfig, Format, open_cluster

__all__ = ["KafkaSink", "KafkaSinkConfig", "topic_of"]

_PLACEHOLDER = re.compile(r"\{topic\}")


def topic_of(template: str, event: Event) -> str:
    """The topic ``template`` names for ``event``: ``{topic}`` replaced by the topic the
    event was read from; ValueError when it has none or the result is not a topic name."""
    if "{topic}" not in template:
        return template
    if event.topic is None:
        raise ValueError(f"topic {template!r} needs the event's topic, and it was read from none")
    name = template.replace("{topic}", event.topic)
    try:
        return validate_topic_name(name)
    except InvalidTopicError as exc:
        raise ValueError(str(exc)) from None


class KafkaSinkConfig(ClusterConfig):
    topic: str = Field(
        description="the topic to write to: a name, or a template where {topic} is the topic "
        "each event was read from (mirror.{topic})",
    )
    format: Format | None = Field(
        None,
        description="how values become record values: json (compact JSON), text (a string "
        "as UTF-8) or bytes (bytes or strings only); by default as the pipeline's topic "
        "holds them (its codec)",
    )
    acks: Literal["all", 1, 0] = Field(
        "all",
        description="what the other cluster must do before a write counts: all (every "
        "in-sync replica has it; flush then means durable), 1 (the leader has it) or 0 (sent); "
        "not for file: URLs, where a write is acknowledged once on disk",
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "none", description="how record batches are compressed on the way"
    )
    linger: Duration = Field(
        "5ms",  # validated into a timedelta
        ge=timedelta(0),
        le=timedelta(seconds=60),
        validate_default=True,
        description="how long a batch waits for more records before it is sent",
    )
    create_topic: bool = Field(
        False,
        description="create a topic that does not exist on the other cluster; false: a "
        "missing topic is an error (a fixed one at start, a templated one dead-letters its "
        "events)",
    )
    partitions: int = Field(
        1, ge=1, le=100_000, description="the partitions of a topic the sink creates"
    )
    replication_factor: int = Field(
        1, ge=1, le=32, description="the replication factor of a topic the sink creates"
    )

    @field_validator("topic")
    @classmethod
    def _template(cls, value: str) -> str:
        shown = value.replace("{topic}", "x")
        if "{" in shown or "}" in shown:
            raise ValueError(f"topic {value!r}: the only placeholder is {{topic}}")
        try:
            validate_topic_name(shown)
        except InvalidTopicError as exc:
            raise ValueError(str(exc)) from None
        return value


class KafkaSink(Sink):
    """Events written to a topic of another cluster (Kafka, a millstream broker, an embedded
    store); flush returns once that cluster has acknowledged them."""

    name = "kafka"
    Config: ClassVar[type[ConnectorConfig]] = KafkaSinkConfig
    idempotent = False
    """A batch written again after a failed flush or a restart lands again, at new offsets."""

    def __init__(self, config: KafkaSinkConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: KafkaSinkConfig = config
        self._what = f"kafka sink {context.name!r}"
        self._shown = redact_url(config.url)
        self._codec = FORMATS[config.format] if config.format is not None else None
        self._conn: Connection | None = None
        self._producer: Producer | None = None
        self._topics: set[str] = set()
        """The topics known to exist on the other cluster."""
        self._deliveries: list[BatchDelivery] = []

    async def open(self) -> None:
        config = self.config
        self._conn = conn = await open_cluster(config.url, self._what)
        options: dict[str, Any] = {
            "linger_ms": config.linger / timedelta(milliseconds=1),
            "compression": None if config.compression == "none" else config.compression,
            "client_id": f"millstream-{self.context.pipeline}-{self.context.name}",
        }
        if not config.url.startswith("file:"):
            options["acks"] = config.acks
        try:
            if "{topic}" not in config.topic:
                missing = await self._ensure_topic(config.topic)
                if missing is not None:
                    raise ConfigError(f"{self._what}: {missing}", path="config.topic")
            self._producer = cast(Any, conn).producer(**options)
        except BaseException:
            self._conn = None
            await conn.close()
            raise

    async def _ensure_topic(self, topic: str) -> str | None:
        """Make sure ``topic`` exists (creating it if the settings say so); None when it does,
        else why not."""
        if topic in self._topics:
            return None
        assert self._conn is not None
        admin = self._conn.admin()
        try:
            try:
                await admin.describe_topic(topic)
            except UnknownTopicError:
                if not self.config.create_topic:
                    return (
                        f"topic {topic!r} does not exist on {self._shown}; create it, or set "
                        "create_topic: true"
                    )
                with contextlib.suppress(TopicExistsError):  # made meanwhile by another
                    await admin.create_topic(
                        topic, self.config.partitions, self.config.replication_factor
                    )
        except StoreError as exc:
            raise ConnectorError(f"{self._what}: topic {topic!r} on {self._shown}: {exc}") from None
        finally:
            await admin.close()
        self._topics.add(topic)
        return None

    async def write(self, events: Sequence[Event]) -> None:
        producer = self._producer
        if producer is None:
            raise ConnectorError(f"{self._what}: write before open")
        template = self.config.topic
        rejected: list[Rejection] = []
        by_topic: dict[str, tuple[list[Record], list[Event]]] = {}
        for event in events:
            try:
                topic = topic_of(template, event)
                codec = self._codec or self.context.codec(event.topic)
                value = None if event.value is None else codec.encode(event.value)
                key = event.key if event.key is None else key_bytes(event.key)
            except (ValueError, CodecError) as exc:
                rejected.append(Rejection(event, str(exc)))
                continue
            records, sent = by_topic.setdefault(topic, ([], []))
            records.append(Record(key, value, tuple(event.headers), event.timestamp))
            sent.append(event)
        for topic, (records, sent) in by_topic.items():
            missing = await self._ensure_topic(topic)
            if missing is not None:
                rejected.extend(Rejection(e, missing) for e in sent)
                continue
            try:
                self._deliveries.append(await self._send(producer, topic, records))
            except (TypeError, ValueError):
                # a record refused (too large…): send them one by one to find which
                for record, event in zip(records, sent, strict=True):
                    try:
                        self._deliveries.append(await self._send(producer, topic, [record]))
                    except (TypeError, ValueError) as exc:
                        rejected.append(Rejection(event, f"{topic!r}: {exc}"))
        if rejected:
            raise EventsRejected(rejected)

    async def _send(self, producer: Producer, topic: str, records: list[Record]) -> BatchDelivery:
        """Queue ``records``; TypeError/ValueError for a record the producer refuses (too
        large, an internal topic). When its buffer of unacknowledged records is full, wait
        until what it holds is acknowledged, then queue them."""
        try:
            return producer.send_batch(topic, records)
        except (TypeError, ValueError):
            raise
        except StoreError:
            await self._settle(producer)  # a full buffer, most likely: let it drain
        try:
            return producer.send_batch(topic, records)
        except (TypeError, ValueError):
            raise
        except StoreError as exc:
            raise ConnectorError(f"{self._what}: writing to {self._shown}: {exc}") from None

    async def _settle(self, producer: Producer) -> None:
        """Wait until the other cluster acknowledged everything written so far; ConnectorError
        when it did not take some."""
        deliveries, self._deliveries = self._deliveries, []
        failure: BaseException | None = None
        try:
            await producer.flush()
        except StoreError as exc:
            failure = exc
        for delivery in deliveries:
            try:
                await delivery.confirmed()
            except StoreError as exc:
                failure = failure or exc
        if failure is not None:
            raise ConnectorError(f"{self._what}: {self._shown} did not take the records: {failure}")

    async def flush(self) -> None:
        producer = self._producer
        if producer is not None:
            await self._settle(producer)

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        conn, self._conn = self._conn, None
        self._deliveries = []
        try:
            if producer is not None:
                try:
                    await producer.close()
                except StoreError as exc:
                    # unflushed records: the runtime writes them again after a restart
                    self.context.log.info("%s: closing the producer: %s", self._what, exc)
        finally:
            if conn is not None:
                await conn.close()
