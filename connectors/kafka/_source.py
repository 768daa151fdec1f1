"""The ``kafka`` source: records of topics of another cluster, read as a member of a consumer
group there, whose offsets are committed only for batches the log has acknowledged.

How a record travels: :meth:`KafkaSource.read` takes up to ``batch_size`` records from the
group's consumer (the other cluster splits the topics' partitions among the group's members),
decodes each value in ``format`` and hands them out with a position: for every partition read
so far, the offset of the next record (``{"orders": {"0": 812, "1": 640}}``). Once the log has
the batch, the runtime stores that position and calls :meth:`KafkaSource.ack`, which commits
the same offsets for the group on the other cluster. So the other cluster forgets a record only
when the log holds it.

After a restart the source continues from the later of the group's committed offsets and the
stored position (the two differ only when the process stopped between storing the position
and the commit): nothing acknowledged is read again, nothing is skipped. A partition the group
never committed starts where ``start`` says. A record whose value does not decode goes to the
dead-letter topic with the reason, and its offset is committed with its batch.

A lost connection to the other cluster is retried with backoff, and a commit that fails is
left to the next one (each commits every partition's offset, so a later commit covers an
earlier one): neither loses a record.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from millstream.core import (
    CodecError,
    CommitFailedError,
    ConfigError,
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    Rejection,
    Source,
    SourceBatch,
    StoreError,
    UnknownTopicError,
)
from millstream.core.client import Connection, Consumer, redact_url
from millstream.core.errors import AuthenticationError, InvalidTopicError, StoreClosedError
from millstream.core.log import validate_topic_name
from millstream.core.record import StoredRecord, TopicPartition

from .._backoff import backoff
from ._cluster import FORMATS, ClusterConfig, Format, open_cluster

__all__ = ["KafkaSource", "KafkaSourceConfig"]

_POLL_MS = 500
_RETRY_INITIAL_S = 0.5
_RETRY_MOST_S = 30.0


class KafkaSourceConfig(ClusterConfig):
    topics: list[str] = Field(
        min_length=1,
        description="the topics of the other cluster to read; one name or a list",
    )
    group: str | None = Field(
        None,
        min_length=1,
        description="the consumer group on the other cluster whose offsets the source "
        "commits; by default millstream-PIPELINE-SOURCE",
    )
    start: Literal["earliest", "latest"] = Field(
        "earliest",
        description="where a partition the group has no committed offset for starts: "
        "earliest (every record the cluster still holds) or latest (only new ones)",
    )
    format: Format = Field(
        "json",
        description="how record values are read: json (each one a JSON document), text "
        "(UTF-8) or bytes (as they are, decoded by the target topic's codec); a value that "
        "does not decode goes to the dead-letter topic",
    )
    batch_size: int = Field(
        1000, ge=1, le=100_000, description="the most records in one batch written to the log"
    )

    @field_validator("topics", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("topics")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                validate_topic_name(name)
            except InvalidTopicError as exc:
                raise ValueError(str(exc)) from None
        return list(dict.fromkeys(value))


class KafkaSource(Source):
    """Records of topics of another cluster (Kafka, a millstream broker, an embedded store),
    read in a consumer group whose offsets are committed once the log has the records."""

    name = "kafka"
    Config: ClassVar[type[ConnectorConfig]] = KafkaSourceConfig
    resumable = True
    """A restart continues just after the acknowledged position (or the group's committed
    offsets, when they are later)."""
    redelivers = True
    """Without a stored position (a new store), the group's committed offsets on the other
    cluster still say where to go on: what was never acknowledged is read again."""

    def __init__(self, config: KafkaSourceConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: KafkaSourceConfig = config
        self.group = config.group or f"millstream-{context.pipeline}-{context.name}"
        self._what = f"kafka source {context.name!r}"
        self._shown = redact_url(config.url)
        self._codec = FORMATS[config.format]
        self._conn: Connection | None = None
        self._consumer: Consumer | None = None
        self._next: dict[TopicPartition, int] = {}
        """Every partition read so far and the offset of its next record."""
        self._resume: dict[TopicPartition, int] = {}
        """Offsets of the stored position not yet applied to the partitions they name."""
        self._committed: dict[TopicPartition, int] = {}
        self._uncommitted: dict[TopicPartition, int] = {}
        self._closing = False

    async def open(self, position: Any) -> None:
        self._resume = _offsets(position, self._what)
        self._next = dict(self._resume)
        self._conn = conn = await open_cluster(self.config.url, self._what)
        admin = conn.admin()
        try:
            for topic in self.config.topics:
                await admin.describe_topic(topic)
        except UnknownTopicError:
            raise ConfigError(
                f"{self._what}: topic {topic!r} does not exist on {self._shown}",
                path="config.topics",
            ) from None
        except StoreError as exc:
            raise ConnectorError(f"{self._what}: {self._shown}: {exc}") from None
        finally:
            await admin.close()
        self._consumer = conn.consumer(
            group=self.group,
            auto_offset_reset=self.config.start,
            max_poll_records=self.config.batch_size,
            client_id=f"millstream-{self.context.pipeline}-{self.context.name}",
        )
        self._consumer.subscribe(self.config.topics)

    async def read(self) -> SourceBatch | None:
        consumer = self._consumer
        if consumer is None or self._closing:
            raise ConnectorError(f"{self._what}: read before open or after close")
        attempt = 0
        while True:
            try:
                got = await consumer.getmany(_POLL_MS, self.config.batch_size)
            except StoreClosedError:
                raise
            except AuthenticationError as exc:  # the URL must change: retrying cannot help
                raise ConnectorError(f"{self._what}: {exc}") from None
            except StoreError as exc:
                attempt += 1
                delay = backoff(attempt, _RETRY_INITIAL_S, _RETRY_MOST_S)
                self.context.log.warning(
                    "%s: reading from %s failed (%s); again in %.1fs",
                    self._what,
                    self._shown,
                    exc,
                    delay,
                )
                await asyncio.sleep(delay)
                continue
            attempt = 0
            batch = self._batch(consumer, got)
            if batch is not None:
                return batch

    def _batch(
        self, consumer: Consumer, got: dict[TopicPartition, list[StoredRecord]]
    ) -> SourceBatch | None:
        """The batch of what ``getmany`` returned; None when it holds nothing new."""
        events: list[Event] = []
        rejected: list[Rejection] = []
        decode = self._codec.decode
        nxt = self._next
        taken = False
        for tp, records in got.items():
            floor = self._resume.pop(tp, None)
            if floor is not None:
                records = [r for r in records if r.offset >= floor]
                if not records:
                    consumer.seek(tp, floor)  # back where the stored position says
                    continue
            for record in records:
                headers = tuple((k, v if v is not None else b"") for k, v in record.headers)
                raw = record.value
                try:
                    value = decode(raw) if raw is not None else None
                except CodecError as exc:
                    reason = f"kafka topic {tp.topic!r} partition {tp.partition} offset "
                    reason += f"{record.offset}: the value is {exc}"
                    event = Event(raw, record.key, headers, max(record.timestamp, 0))
                    rejected.append(Rejection(event, reason))
                    continue
                # a record without a timestamp (-1) is stamped when the log takes it
                events.append(Event(value, record.key, headers, max(record.timestamp, 0)))
            nxt[tp] = records[-1].offset + 1
            taken = True
        if not taken:
            return None
        return SourceBatch(events, _position(nxt), rejected)

    async def ack(self, position: Any) -> None:
        offsets = _offsets(position, self._what)
        due = {tp: o for tp, o in offsets.items() if self._committed.get(tp) != o}
        if due and self._consumer is not None:
            self._uncommitted.update(due)
            await self._commit(self._consumer)

    async def _commit(self, consumer: Consumer) -> None:
        """Commit the offsets not committed yet for the group; a failure is logged and left
        to the next commit (or to ``close``), which covers it."""
        offsets = dict(self._uncommitted)
        try:
            await consumer.commit(offsets)
        except CommitFailedError as exc:
            # partitions moved to another member: it reads them again from the last commit
            self.context.log.info("%s: %s", self._what, exc)
        except StoreError as exc:
            self.context.log.warning(
                "%s: committing offsets on %s failed (%s); the next commit covers them",
                self._what,
                self._shown,
                exc,
            )
            return
        self._committed.update(offsets)
        for tp, offset in offsets.items():
            if self._uncommitted.get(tp) == offset:
                del self._uncommitted[tp]

    async def close(self) -> None:
        self._closing = True
        consumer, self._consumer = self._consumer, None
        conn, self._conn = self._conn, None
        try:
            if consumer is not None:
                if self._uncommitted:
                    await self._commit(consumer)
                await consumer.close()
        finally:
            if conn is not None:
                await conn.close()


def _position(offsets: dict[TopicPartition, int]) -> dict[str, dict[str, int]]:
    """``{topic: {partition: next offset}}``: a position as JSON holds it."""
    out: dict[str, dict[str, int]] = {}
    for tp, offset in sorted(offsets.items()):
        out.setdefault(tp.topic, {})[str(tp.partition)] = offset
    return out


def _offsets(position: Any, what: str) -> dict[TopicPartition, int]:
    """The offsets of a position made by :func:`_position`; ConnectorError for anything else."""
    if position is None:
        return {}
    out: dict[TopicPartition, int] = {}
    try:
        if not isinstance(position, dict):
            raise ValueError
        for topic, partitions in position.items():
            for partition, offset in partitions.items():
                if type(offset) is not int or offset < 0:
                    raise ValueError
                out[TopicPartition(topic, int(partition))] = offset
    except (AttributeError, TypeError, ValueError):
        raise ConnectorError(f"{what}: {position!r} is not a position of this source") from None
    return out
