"""The one client interface every store speaks: :class:`Connection`, :class:`Producer`,
:class:`Consumer` and :class:`Admin`.

Pipelines, connectors and the command line reach the log only through these classes, which is
what lets one pipeline run on the embedded store (``file:DIR``), on a millstream broker
(``millstream://host:port``) or on Apache Kafka (``kafka://host:port``) without change. A store
URL is turned into a connection by :func:`millstream.core.client.connect`.

Contracts that hold for every transport:

- Everything is asyncio. Nothing here blocks the event loop for long; disk syncs run in a thread.
- ``Producer.send`` never blocks: it places the record in the current batch and returns a
  :class:`Delivery`; awaiting it yields the record's partition and offset once the store has
  acknowledged it (made it durable as the topic's ``flush.policy`` says). An unawaited delivery
  that fails is reported by :meth:`Producer.flush` / :meth:`Producer.close`.
  ``Producer.send_batch`` is the same for many records at once, with one
  :class:`BatchDelivery` for all of them.
- A consumer delivers each partition's records in offset order. Offsets are committed only by
  :meth:`Consumer.commit`; what a consumer commits is "the next offset to read", as in Kafka.
- The store's internal topics (``__consumer_offsets``…) are the store's own, as in Kafka:
  clients may read them, but producing to one, or creating, altering or deleting one, raises
  :class:`InvalidTopicError`.
- Closing is idempotent. Using a closed object raises :class:`StoreClosedError`.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Generator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Self

from ..errors import ConfigError, InvalidOffsetError
from ..record import Header, Record, RecordBlock, StoredRecord, TopicPartition

__all__ = [
    "Admin",
    "BatchDelivery",
    "Connection",
    "Consumer",
    "Delivery",
    "GroupDescription",
    "GroupMember",
    "OffsetReset",
    "PartitionDescription",
    "PartitionLag",
    "PositionStore",
    "Producer",
    "RecordMetadata",
    "TopicDescription",
    "checked_consumer_settings",
    "checked_offset_spec",
    "checked_replication_factor",
]


class OffsetReset(enum.StrEnum):
    """Where a consumer starts in a partition that has no committed offset."""

    EARLIEST = "earliest"
    LATEST = "latest"
    NONE = "none"  # raise InvalidOffsetError instead of guessing


def checked_consumer_settings(
    group: str | None, auto_offset_reset: OffsetReset | str, max_poll_records: int
) -> OffsetReset:
    """The reset policy of a new consumer, once its settings are checked; ValueError naming
    the setting that is not valid and what would be. Every transport's consumer calls this."""
    try:
        reset = OffsetReset(auto_offset_reset)
    except ValueError:
        valid = ", ".join(r.value for r in OffsetReset)
        raise ValueError(
            f"auto_offset_reset {auto_offset_reset!r} is not valid; valid: {valid}"
        ) from None
    if max_poll_records < 1:
        raise ValueError(f"max_poll_records must be >= 1, not {max_poll_records}")
    if group is not None and not group:
        raise ValueError("group must be a non-empty name, or None for no group")
    return reset


def checked_replication_factor(replication_factor: int | None) -> int | None:
    """``replication_factor`` once checked to be a whole number >= 1 (or None: the store's
    default); ConfigError otherwise. Every transport's admin calls this before its own limits
    (the embedded store keeps one copy)."""
    if replication_factor is None:
        return None
    if isinstance(replication_factor, bool) or not isinstance(replication_factor, int):
        raise ConfigError(f"replication factor {replication_factor!r} is not a whole number")
    if replication_factor < 1:
        raise ConfigError(f"replication factor {replication_factor} is not valid; it is >= 1")
    return replication_factor


def checked_offset_spec(tp: TopicPartition, spec: str | int) -> str | int:
    """What :meth:`Admin.list_offsets` is asked for: ``"earliest"``, ``"latest"`` (also given
    as Kafka's -2 and -1) or a timestamp in ms (an int >= 0, returned as it is);
    InvalidOffsetError naming ``tp`` and what is valid otherwise."""
    if spec == "earliest" or spec == -2:
        return "earliest"
    if spec == "latest" or spec == -1:
        return "latest"
    if isinstance(spec, bool) or not isinstance(spec, int) or spec < 0:
        raise InvalidOffsetError(
            f"cannot list offsets of {tp} at {spec!r}; valid: 'earliest', 'latest' or a "
            "timestamp in ms since the epoch (>= 0)"
        )
    return spec


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where an acknowledged record was stored."""

    topic: str
    partition: int
    offset: int
    timestamp: int


class Delivery(abc.ABC):
    """The pending acknowledgement of one sent record; ``await`` it for its RecordMetadata."""

    @abc.abstractmethod
    def done(self) -> bool:
        """True once the store has acknowledged or refused the record."""

    @abc.abstractmethod
    def __await__(self) -> Generator[Any, None, RecordMetadata]: ...


class BatchDelivery(abc.ABC):
    """The pending acknowledgement of the records of one :meth:`Producer.send_batch` call;
    ``await`` it for their RecordMetadata, one per record, in the order they were given.

    Awaiting it raises the error of the first of its records that the store refused.
    """

    @abc.abstractmethod
    def done(self) -> bool:
        """True once the store has acknowledged or refused every record of the call."""

    @abc.abstractmethod
    def __await__(self) -> Generator[Any, None, list[RecordMetadata]]: ...

    async def confirmed(self) -> None:
        """Wait until every record is acknowledged, raising as awaiting does, without making
        the per-record RecordMetadata (for callers that only need to know it is durable)."""
        await self


class _SentRecords(BatchDelivery):
    """The records of a :meth:`Producer.send_batch` made of one ``send`` per record."""

    __slots__ = ("_deliveries",)

    def __init__(self, deliveries: list[Delivery]) -> None:
        self._deliveries = deliveries

    def done(self) -> bool:
        return all(d.done() for d in self._deliveries)

    def __await__(self) -> Generator[Any, None, list[RecordMetadata]]:
        out = []
        for delivery in self._deliveries:
            out.append((yield from delivery.__await__()))
        return out


@dataclass(frozen=True, slots=True)
class PartitionDescription:
    """One partition of a topic as the store sees it now."""

    partition: int
    earliest_offset: int
    latest_offset: int
    size_bytes: int
    segments: int
    leader: int = 0
    replicas: tuple[int, ...] = (0,)


@dataclass(frozen=True, slots=True)
class TopicDescription:
    """A topic, its partitions and its configs (every config, defaults included).

    ``overrides`` names the configs set on the topic, as the store reports them (a config set
    to the value it has by default is one); the others have the store's default.
    """

    name: str
    partitions: tuple[PartitionDescription, ...]
    configs: Mapping[str, str]
    replication_factor: int = 1
    internal: bool = False
    overrides: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class PartitionLag:
    """A group's position in one partition: ``committed`` is None when it never committed."""

    topic: str
    partition: int
    committed: int | None
    latest_offset: int

    @property
    def lag(self) -> int | None:
        if self.committed is None:
            return None
        return max(0, self.latest_offset - self.committed)


@dataclass(frozen=True, slots=True)
class GroupMember:
    """One live member of a consumer group and the partitions it holds."""

    member_id: str
    client_id: str
    assignment: tuple[TopicPartition, ...]


@dataclass(frozen=True, slots=True)
class GroupDescription:
    """A consumer group: its state, live members and committed offsets with lag."""

    group: str
    state: str  # Empty, PreparingRebalance, CompletingRebalance, Stable, Dead
    members: tuple[GroupMember, ...] = ()
    offsets: tuple[PartitionLag, ...] = field(default=())


class Producer(abc.ABC):
    """Writes records to topics, in batches.

    Records are gathered per partition into batches of up to ``batch_bytes`` and sealed when
    full or after ``linger_ms``. A record with a key goes to
    ``(murmur2(key) & 0x7fffffff) % partitions``, as Kafka's Java client puts it; a record
    without one goes to a sticky partition that changes when a batch is sealed.
    """

    @abc.abstractmethod
    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[Header] = (),
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> Delivery:
        """Queue one record; never blocks. Bad arguments raise at once (unknown topic, one of
        the store's internal topics, partition out of range, record over
        ``max.message.bytes``)."""

    def send_batch(
        self, topic: str, records: Sequence[Record], partition: int | None = None
    ) -> BatchDelivery:
        """Queue many records at once; never blocks. Awaiting the result yields their
        RecordMetadata in the order given.

        What holds, as for :meth:`send`:

        - A record with a key goes to its murmur2 partition, exactly where ``send`` would put
          it; the records without one go to the sticky partition. ``partition``, when given,
          takes every record of the call, keyed or not.
        - The records of one call keep their relative order within each partition. They share
          the producer's batches with records from ``send``: per partition, everything sent
          before the call is stored before its records, and everything sent after, after them.
        - A record's ``timestamp`` of 0 means "now".
        - Bad arguments raise at once, before anything of the call is queued: an unknown topic,
          an internal topic, a partition out of range, a record over the topic's
          ``max.message.bytes``, a key, value, header or timestamp of the wrong type. Nothing of
          the call is sent then.
        - A failure of the store after the call returned (a failed write or sync, a closed
          store) is raised by awaiting the result; if nobody awaits it, by :meth:`flush` and
          :meth:`close`, as for ``send``.

        This default sends the records one by one with :meth:`send`, which is correct for any
        transport but pays ``send``'s cost per record; transports override it for speed (the
        embedded store encodes the records straight into batches). It checks the records'
        fields before sending any, and ``send`` checks the topic and partition on the first
        record, so those refusals queue nothing; a transport whose ``send`` can refuse a later
        record (for its size) overrides this to check sizes first.
        """
        checked = [_checked_fields(record) for record in records]
        return _SentRecords(
            [
                self.send(topic, value, key, headers, partition, timestamp or None)
                for key, value, headers, timestamp in checked
            ]
        )

    @abc.abstractmethod
    async def flush(self) -> None:
        """Seal every open batch and wait until all records sent so far are acknowledged.

        Raises the first error of a delivery that nobody awaited.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush, then release the producer. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _checked_fields(
    record: Record,
) -> tuple[bytes | None, bytes | None, tuple[Header, ...], int]:
    """A record's fields, refused with TypeError/ValueError as ``send`` would refuse them."""
    key, value, headers, timestamp = record.key, record.value, record.headers, record.timestamp
    for what, data in (("key", key), ("value", value)):
        if data is not None and not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError(
                f"record {what} must be bytes or None, not {type(data).__name__}; "
                "encode text with .encode() first"
            )
    for header in headers:
        try:
            name, hval = header
            pair = isinstance(name, str) and (
                hval is None or isinstance(hval, bytes | bytearray | memoryview)
            )
        except (TypeError, ValueError):
            pair = False
        if not pair:
            raise TypeError(
                f"record header {header!r} is not a (name, value) pair; e.g. ('source', b'x')"
            )
    if timestamp and (type(timestamp) is not int or timestamp < 0):
        raise ValueError(
            f"record timestamp {timestamp!r} is not valid; give milliseconds since the "
            "epoch (an int >= 0), or 0 for now"
        )
    return key, value, headers, timestamp


class Consumer(abc.ABC):
    """Reads records from topics, as a member of a group or from assigned partitions.

    With ``group`` set and :meth:`subscribe`, the store splits the topics' partitions among the
    group's live consumers and moves them when one joins or leaves; each consumer starts a
    partition at the group's committed offset, else where ``auto_offset_reset`` says. With
    :meth:`assign`, the consumer reads exactly the partitions given; ``group`` then only names
    where :meth:`commit` stores offsets.
    """

    @abc.abstractmethod
    def subscribe(self, topics: Iterable[str]) -> None:
        """Join the consumer's group for these topics (replaces an earlier subscription)."""

    @abc.abstractmethod
    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions, outside any group balancing."""

    @abc.abstractmethod
    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this consumer currently reads."""

    async def wait_for_assignment(self, timeout_ms: int = 30_000) -> frozenset[TopicPartition]:
        """The partitions this consumer reads once its group has given it a share: a
        subscribing member of a group whose coordinator is across the network holds nothing
        until the group has formed. Waits up to ``timeout_ms``, then returns what it holds
        (possibly nothing: more members than partitions). An embedded store's group is formed
        as :meth:`subscribe` returns, so this default answers at once."""
        return self.assignment()

    @abc.abstractmethod
    async def getmany(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[StoredRecord]]:
        """Return the records available now, per partition, waiting up to ``timeout_ms`` for
        the first to arrive. An empty dict means nothing arrived in time."""

    async def getmany_blocks(
        self, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, RecordBlock]:
        """:meth:`getmany`, with each partition's records as one :class:`RecordBlock` (field
        by field) instead of a list of StoredRecord: the batch-level way to read, for callers
        that go through records by their fields. The same records, positions and waiting.

        This default makes the blocks from getmany's records; a transport overrides it to
        decode batches straight into blocks (the embedded store does, with no object per record
        but its value and key).
        """
        got = await self.getmany(timeout_ms, max_records)
        return {
            tp: RecordBlock.of_records(tp.topic, tp.partition, records)
            for tp, records in got.items()
        }

    async def __anext__(self) -> StoredRecord:
        while True:
            buffered = self._next_buffered()
            if buffered is not None:
                return buffered
            await self._fill(timeout_ms=1000)

    def __aiter__(self) -> AsyncIterator[StoredRecord]:
        return self

    @abc.abstractmethod
    def _next_buffered(self) -> StoredRecord | None:
        """The next record already fetched, if any (for ``async for``)."""

    @abc.abstractmethod
    async def _fill(self, timeout_ms: int) -> None:
        """Fetch more records into the buffer ``_next_buffered`` reads from."""

    @abc.abstractmethod
    def position(self, tp: TopicPartition) -> int:
        """The offset of the next record this consumer will return from ``tp``."""

    @abc.abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Make ``offset`` the next record returned from ``tp`` (clamped to the log's range)."""

    @abc.abstractmethod
    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Seek to the earliest offset of the given partitions (all assigned ones if none)."""

    @abc.abstractmethod
    async def seek_to_end(self, *partitions: TopicPartition) -> None:
        """Seek to the latest offset of the given partitions (all assigned ones if none)."""

    @abc.abstractmethod
    async def seek_to_timestamp(self, timestamp_ms: int, *partitions: TopicPartition) -> None:
        """Seek to the first record at or after ``timestamp_ms`` (to the end if none)."""

    @abc.abstractmethod
    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Store the group's offsets: the given ones, else the positions of everything consumed.

        After a rebalance, the offsets of the partitions this consumer still owns are stored;
        then, if any of the others were moved to another member, :class:`CommitFailedError` is
        raised naming them (their records will be read again by their new owner) and the
        partitions that were committed. A consumer that assigned its partitions itself commits
        nothing, and gets CommitFailedError, while the group has live members.
        """

    @abc.abstractmethod
    async def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp``, or None."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Leave the group (its partitions move to the others) and release. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Admin(abc.ABC):
    """Creates, changes and describes topics and consumer groups."""

    @abc.abstractmethod
    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        config: Mapping[str, str] | None = None,
    ) -> TopicDescription:
        """Create a topic. ``replication_factor`` None takes the store's default (one copy on
        the embedded store and a millstream broker, ``default.replication.factor`` on Apache
        Kafka). Raises TopicExistsError, InvalidTopicError (also for the name of an internal
        topic), ConfigError."""

    async def keeps_config(self, key: str) -> bool:
        """Whether topics of this store keep the config ``key``: a topic created or altered
        with it describes with it (on Apache Kafka, millstream's own ``flush.policy`` is not
        kept; ``codec`` is, beside the topic). True unless the store says otherwise."""
        return True

    async def node_count(self) -> int:
        """How many broker nodes the store has (1 for the embedded store): where a topic's
        replicas can go."""
        return 1

    @abc.abstractmethod
    async def delete_topic(self, name: str) -> None:
        """Delete a topic and its data (never an internal topic: InvalidTopicError)."""

    @abc.abstractmethod
    async def list_topics(self, internal: bool = False) -> list[str]:
        """Topic names, sorted; internal topics (``__consumer_offsets``) only when asked."""

    @abc.abstractmethod
    async def describe_topic(self, name: str) -> TopicDescription:
        """A topic's partitions, offsets, sizes and configs."""

    @abc.abstractmethod
    async def alter_topic(
        self,
        name: str,
        partitions: int | None = None,
        config: Mapping[str, str | None] | None = None,
    ) -> TopicDescription:
        """Grow the partition count and/or set configs (a None value resets one to default).
        Internal topics are refused with InvalidTopicError."""

    @abc.abstractmethod
    async def list_offsets(self, tp: TopicPartition, spec: str | int) -> int:
        """``"earliest"``, ``"latest"`` or a timestamp in ms → an offset (latest when no
        record is that recent)."""

    @abc.abstractmethod
    async def list_groups(self) -> list[str]:
        """Names of the consumer groups with committed offsets or live members, sorted."""

    @abc.abstractmethod
    async def describe_group(self, group: str) -> GroupDescription:
        """A group's state, members, and per-partition committed offset, end offset and lag."""

    @abc.abstractmethod
    async def reset_group_offsets(
        self, group: str, topic: str, to: str | int, *, by_timestamp: bool = False
    ) -> dict[TopicPartition, int]:
        """Move a group's offsets in ``topic`` to ``"earliest"``, ``"latest"``, an offset, or
        (``by_timestamp=True``) the first record at or after a timestamp in ms. The group must
        have no live members. Returns the new offsets."""

    @abc.abstractmethod
    async def delete_group(self, group: str) -> None:
        """Forget a group's committed offsets. The group must have no live members."""

    async def close(self) -> None:
        """Release the admin client. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class PositionStore(abc.ABC):
    """Where sources' acknowledged positions are kept, so a restarted source resumes.

    Keys are ``<pipeline>/<source>``; values are bytes the runtime encodes. On the embedded
    store and a millstream broker they live in the internal compacted topic
    ``__source_positions``; only this class writes it.
    """

    @abc.abstractmethod
    async def get(self, key: str) -> bytes | None:
        """The last position stored under ``key``, or None."""

    @abc.abstractmethod
    async def put(self, key: str, value: bytes | None) -> None:
        """Store ``value`` under ``key`` (None forgets it); durable when this returns."""

    @abc.abstractmethod
    async def keys(self) -> list[str]:
        """Every key that has a position, sorted."""


class Connection(abc.ABC):
    """An open store: makes producers, consumers and admins that share it."""

    url: str
    read_only: bool
    shared: bool = False
    """Whether other processes may use this store at the same time (a broker, a cluster):
    then a pipeline run in several processes shares its parts between them."""

    @abc.abstractmethod
    def producer(
        self,
        *,
        linger_ms: float = 1.0,
        batch_bytes: int = 1_048_576,
        compression: str | None = None,
        client_id: str = "millstream",
    ) -> Producer:
        """A producer. ``compression`` (none, gzip, snappy, lz4, zstd) applies where the
        topic's ``compression.type`` is ``producer``.

        ``linger_ms`` is how long a batch waits for more records before it is sealed. Records
        sent in a burst share batches whatever its value; the default of 1 ms keeps a lone
        record's acknowledgement within about one disk sync of its ``send``."""

    @abc.abstractmethod
    def consumer(
        self,
        topics: Iterable[str] = (),
        *,
        group: str | None = None,
        auto_offset_reset: OffsetReset | str = OffsetReset.LATEST,
        max_poll_records: int = 10_000,
        client_id: str = "millstream",
    ) -> Consumer:
        """A consumer, subscribed to ``topics`` when given."""

    @abc.abstractmethod
    def admin(self) -> Admin:
        """An admin client."""

    @abc.abstractmethod
    def positions(self) -> PositionStore:
        """The store of sources' acknowledged positions."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close everything made from this connection and release the store. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
