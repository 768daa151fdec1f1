"""The embedded producer: records gathered into batches and appended to the log in-process.

Each partition has at most one open batch. ``send`` adds a record to it and returns a
:class:`_Delivery`, which is only the record's place in the batch: there is no future per
record, only one per batch, and the batch keeps the records' fields in lists, not their
deliveries. So a delivery that its sender drops is freed at once, and a sent record adds
nothing for the cyclic garbage collector to walk (a batch holding thousands of deliveries had it
walk each of them, and the value each held, a few times before the batch was sealed).

A batch is sealed when the next record would take it past the batch size (``batch_bytes``, and
never past the topic's ``max.message.bytes``) or ``linger_ms`` after its first record,
whichever comes first. Sealing encodes it as one RecordBatch v2 and appends it to the partition
at once (the log writes to the OS synchronously); the batch's future resolves when the
partition says the batch is durable, per the topic's ``flush.policy``.

``send_batch`` is the bulk path: it checks every record of the call first, seals the open batch
of each partition it writes to, then encodes the records straight into as many batches as the
batch size allows (:class:`~millstream.core.log.encoder.RecordColumns`) and appends them, with
no per-record object at all.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Generator, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import (
    ReadOnlyStoreError,
    StoreClosedError,
)
from ...log.batch import HEADER_SIZE
from ...log.compression import Compression
from ...log.encoder import RecordColumns, as_bytes, check_headers, encode_batch
from ...record import Header, Record
from ..interface import BatchDelivery, Delivery, Producer, RecordMetadata
from ..routing import TopicRouting, route

if TYPE_CHECKING:
    from ...log.partition import Partition
    from .connection import EmbeddedConnection

__all__ = ["EmbeddedProducer"]

_RECORD_OVERHEAD = 21  # upper bound of a record's framing (see log.encoder.encoded_record_size)


class _Batch:
    """Records on their way into one partition, and the one future they share.

    A batch made by ``send`` holds its records' values and, for the few records that have
    them, ``(place, key)`` pairs (``keyed``) and ``(place, headers, timestamp)`` triples
    (``stamped``); ``plain`` says there is nothing but bytes values. One made by ``send_batch``
    holds instead where its records were in the call (``places``) and their timestamps
    (``stamps``, None when every one was "now").
    """

    __slots__ = (
        "append_time",
        "awaited",
        "base_offset",
        "future",
        "keyed",
        "now_ms",
        "partition",
        "places",
        "plain",
        "room",
        "stamped",
        "stamps",
        "timer",
        "topic",
        "values",
    )

    def __init__(self, topic: str, partition: int, future: asyncio.Future[None], room: int) -> None:
        self.topic = topic
        self.partition = partition
        self.future = future
        self.values: list[bytes | None] = []
        self.room = room  # bytes left, counted by an upper bound of each record's size
        self.base_offset = -1
        self.append_time = -1
        self.now_ms = 0
        self.awaited = False
        self.plain = True  # every record a bytes value without key, headers or timestamp
        self.keyed: list[tuple[int, bytes]] = []
        self.stamped: list[tuple[int, tuple[Header, ...], int]] = []
        self.timer: asyncio.Handle | None = None
        self.places: range | list[int] = range(0)
        self.stamps: list[int] | None = None


class _Delivery(Delivery):
    """One sent record: its batch and its place there (the batch holds its fields).

    Most records have the default timestamp ("now"): a class default, one store saved.
    """

    __slots__ = ("_batch", "_index")

    _batch: _Batch
    _index: int
    timestamp: int = 0

    def done(self) -> bool:
        return self._batch.future.done()

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        batch = self._batch
        batch.awaited = True
        yield from batch.future.__await__()
        stamp = batch.append_time if batch.append_time >= 0 else self.timestamp or batch.now_ms
        return RecordMetadata(batch.topic, batch.partition, batch.base_offset + self._index, stamp)

    def __repr__(self) -> str:
        batch = self._batch
        state = "done" if batch.future.done() else "pending"
        return f"<Delivery {batch.topic}-{batch.partition} #{self._index} {state}>"


class _StampedDelivery(_Delivery):
    """A sent record with its own timestamp."""

    __slots__ = ("timestamp",)


_new = object.__new__


class _SentBatch(BatchDelivery):
    """The records of one ``send_batch`` call: the batches they were appended in."""

    __slots__ = ("_batches", "_count")

    def __init__(self, batches: list[_Batch], count: int) -> None:
        self._batches = batches
        self._count = count

    def done(self) -> bool:
        return all(batch.future.done() for batch in self._batches)

    async def confirmed(self) -> None:
        batches = self._batches
        for batch in batches:
            batch.awaited = True
        for batch in batches:
            await batch.future

    def __await__(self) -> Generator[Any, None, list[RecordMetadata]]:
        batches = self._batches
        for batch in batches:
            batch.awaited = True
        for batch in batches:
            yield from batch.future.__await__()
        out: list[Any] = [None] * self._count
        for batch in batches:
            metas = _metadata(batch)
            places = batch.places
            if isinstance(places, range):
                out[places.start : places.stop] = metas
            else:
                for place, meta in zip(places, metas, strict=True):
                    out[place] = meta
        return out

    def __repr__(self) -> str:
        state = "done" if self.done() else "pending"
        return f"<BatchDelivery {self._count} records in {len(self._batches)} batches {state}>"


# RecordMetadata is a frozen dataclass: its __init__ sets each field through
# object.__setattr__, which costs twice as much as filling the slots of a bare instance.
_metadata_slots: tuple[Callable[[RecordMetadata, object], None], ...] = tuple(
    vars(RecordMetadata)[name].__set__ for name in ("topic", "partition", "offset", "timestamp")
)


def _metadata(batch: _Batch) -> list[RecordMetadata]:
    """The RecordMetadata of an acknowledged batch of ``send_batch``, in offset order."""
    set_topic, set_partition, set_offset, set_timestamp = _metadata_slots
    topic, partition, base = batch.topic, batch.partition, batch.base_offset
    count = len(batch.places)
    stamps: Sequence[int]
    if batch.append_time >= 0:
        stamps = [batch.append_time] * count
    elif batch.stamps is None:
        stamps = [batch.now_ms] * count
    else:
        stamps = batch.stamps
    out: list[RecordMetadata] = []
    append = out.append
    for offset, stamp in zip(range(base, base + count), stamps, strict=True):
        meta = _new(RecordMetadata)
        set_topic(meta, topic)
        set_partition(meta, partition)
        set_offset(meta, offset)
        set_timestamp(meta, stamp)
        append(meta)
    return out


class _TopicState(TopicRouting):
    """What ``send`` needs of one topic, looked up once."""

    __slots__ = ("batches", "compression", "limit", "partitions")

    def __init__(
        self,
        name: str,
        partitions: list[Partition],
        max_bytes: int,
        batch_bytes: int,
        compression: Compression,
    ) -> None:
        super().__init__(name, len(partitions), max_bytes)
        self.partitions = partitions
        # records are counted by an upper bound of their size, so a batch whose bound stays
        # under this limit always fits max.message.bytes
        self.limit = min(batch_bytes, max_bytes) - HEADER_SIZE
        self.compression = compression
        self.batches: list[_Batch | None] = [None] * self.count


class EmbeddedProducer(Producer):
    """A producer that appends to the embedded log of its connection."""

    def __init__(
        self,
        connection: EmbeddedConnection,
        *,
        linger_ms: float,
        batch_bytes: int,
        compression: str | None,
        client_id: str,
    ) -> None:
        if batch_bytes < 1:
            raise ValueError(f"batch_bytes must be >= 1, not {batch_bytes}")
        if linger_ms < 0:
            raise ValueError(f"linger_ms must be >= 0, not {linger_ms}")
        self._connection = connection
        self._linger_s = linger_ms / 1000
        self._batch_bytes = batch_bytes
        self._compression = Compression.from_name(compression or "none")
        self.client_id = client_id
        self._topics: dict[str, _TopicState] = {}
        self._inflight: set[_Batch] = set()
        self._failed: list[_Batch] = []
        # partitions that refused a batch not yet reported: later batches fail the same way
        self._halted: dict[tuple[str, int], _Batch] = {}
        self._closed = False

    # --- sending ---------------------------------------------------------------------------

    def send(
        self,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        headers: Sequence[Header] = (),
        partition: int | None = None,
        timestamp: int | None = None,
    ) -> Delivery:
        # the hot path of the producer: keep the common case (bytes value, no headers, no
        # timestamp) to a few operations
        state = self._topics.get(topic)
        if state is None:
            state = self._topic_state(topic)
        plain = True  # a bytes value, no key, no headers, no timestamp: see _seal
        if value.__class__ is bytes:
            size = _RECORD_OVERHEAD + len(value)
        elif value is None:
            size = _RECORD_OVERHEAD
            plain = False
        else:
            value = as_bytes(value, "value")
            size = _RECORD_OVERHEAD + len(value)
        if key is not None:
            plain = False
            if key.__class__ is not bytes:
                key = as_bytes(key, "key")
            size += len(key)
            if partition is None:
                partition = state.key_partitions.get(key)
                if partition is None:
                    partition = state.partition_of(key)
            else:
                state.check_partition(partition)
        elif partition is None:
            partition = state.sticky.partition
        else:
            state.check_partition(partition)
        delivery: _Delivery
        if headers or timestamp:
            plain = False
            if headers:
                headers = check_headers(headers)
                for name, hval in headers:
                    size += 10 + len(name) * 3 + (len(hval) if hval else 0)
            else:
                headers = ()
            if timestamp is not None and (type(timestamp) is not int or timestamp < 0):
                raise ValueError(
                    f"record timestamp {timestamp!r} is not valid; give milliseconds since the "
                    "epoch (an int >= 0), or None for now"
                )
            if timestamp:
                delivery = _new(_StampedDelivery)
                delivery.timestamp = timestamp
            else:
                delivery = _new(_Delivery)
        else:
            delivery = _new(_Delivery)
        batch = state.batches[partition]
        if batch is None or batch.room < size:
            if size > state.limit:
                self._check_record_size(state, key, value, tuple(headers))
            if batch is not None:
                self._seal(state, partition)
            batch = self._open_batch(state, partition)
        batch.room -= size
        values = batch.values
        index = len(values)
        delivery._batch = batch
        delivery._index = index
        values.append(value)
        if not plain:
            batch.plain = False
            if key is not None:
                batch.keyed.append((index, key))
            if headers or timestamp:
                batch.stamped.append((index, headers, timestamp or 0))  # type: ignore[arg-type]
        return delivery

    def send_batch(
        self, topic: str, records: Sequence[Record], partition: int | None = None
    ) -> BatchDelivery:
        state = self._topics.get(topic)
        if state is None:
            state = self._topic_state(topic)
        if partition is not None:
            state.check_partition(partition)
        now = int(time.time() * 1000)
        rows = RecordColumns.of(records, now)  # checks the fields of every record
        if not rows.count:
            return _SentBatch([], 0)
        exact = rows.largest_alone()
        if exact > state.max_bytes:
            raise state.too_large(exact)
        sticky = state.sticky.partition
        loop = asyncio.get_running_loop()
        batches: list[_Batch] = []
        # every check is behind us: from here on, failures are the store's and go to the
        # deliveries. A partition that refuses a batch gets nothing more of this call.
        for target, places in route(state, rows, partition, sticky):
            self._seal(state, target)
            group = rows if places is None else rows.take(places)
            for lo, hi in group.cut(state.limit):
                batch = _Batch(state.name, target, loop.create_future(), 0)
                batch.now_ms = now
                batch.places = range(lo, hi) if places is None else places[lo:hi]
                batch.stamps = None if group.stamps is None else group.stamps[lo:hi]
                batches.append(batch)
                try:
                    raw = group.encode(lo, hi, state.compression, now)
                except Exception as exc:
                    self._fail(batch, exc)
                    break
                if not self._append(state, batch, raw, now):
                    break
        keyless = rows.klens is None or -1 in rows.klens
        if partition is None and keyless and state.sticky.partition == sticky:
            state.sticky.next_batch()  # the keyless records made a batch there: move on
        return _SentBatch(batches, rows.count)

    def _topic_state(self, topic: str) -> _TopicState:
        if self._closed:
            raise StoreClosedError(f"producer {self.client_id!r} is closed; make a new one")
        self._connection.check_open()
        store = self._connection.store
        found = store.topic(topic)  # UnknownTopicError names how to create it
        self._connection.refuse_internal(topic, "write to")
        if store.read_only:
            raise ReadOnlyStoreError.during(store.path, f"write to {topic!r}")
        config = found.config
        codec = config.compression_type
        compression = self._compression if codec == "producer" else Compression.from_name(codec)
        state = _TopicState(
            topic, list(found.partitions), config.max_message_bytes, self._batch_bytes, compression
        )
        self._topics[topic] = state
        return state

    def _check_record_size(
        self,
        state: _TopicState,
        key: bytes | None,
        value: bytes | None,
        headers: tuple[Header, ...],
    ) -> None:
        exact = len(encode_batch([Record(key, value, headers, 1)]))
        if exact > state.max_bytes:
            raise state.too_large(exact)

    def _open_batch(self, state: _TopicState, partition: int) -> _Batch:
        loop = asyncio.get_running_loop()
        batch = _Batch(state.name, partition, loop.create_future(), state.limit)
        state.batches[partition] = batch
        if self._linger_s > 0:
            batch.timer = loop.call_later(self._linger_s, self._linger_expired, state, batch)
        else:
            batch.timer = loop.call_soon(self._linger_expired, state, batch)
        return batch

    def _linger_expired(self, state: _TopicState, batch: _Batch) -> None:
        batch.timer = None
        if state.batches[batch.partition] is batch:
            self._seal(state, batch.partition)

    def _seal(self, state: _TopicState, partition: int) -> None:
        """Encode the open batch of ``partition`` and append it to the log."""
        batch = state.batches[partition]
        if batch is None:
            return
        state.batches[partition] = None
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if partition == state.sticky.partition:
            state.sticky.next_batch()
        values, batch.values = batch.values, []
        now = int(time.time() * 1000)
        batch.now_ms = now
        try:
            if batch.plain:  # send checked every value: lay them out without checking again
                rows = RecordColumns.of_values(values)  # type: ignore[arg-type]
            else:
                count = len(values)
                keys: list[bytes | None] = [None] * count
                for place, key in batch.keyed:
                    keys[place] = key
                headers: list[tuple[Header, ...]] | None = None
                stamps: list[int] | None = None
                if batch.stamped:
                    headers, stamps = [()] * count, [0] * count
                    for place, fields, stamp in batch.stamped:
                        headers[place] = fields
                        stamps[place] = stamp
                batch.keyed, batch.stamped = [], []
                rows = RecordColumns.of_columns(values, keys, headers, stamps, now)
            raw = rows.encode(0, rows.count, state.compression, now)
        except Exception as exc:  # whatever it is, it goes to the deliveries, never lost
            self._fail(batch, exc)
            return
        self._append(state, batch, raw, now)

    def _append(self, state: _TopicState, batch: _Batch, raw: bytearray, now: int) -> bool:
        """Append an encoded batch to its partition and follow it until it is durable.

        Returns False when the partition refused it (the batch has then failed with the error,
        whatever it is: this runs in timer callbacks too, where an escaping error would lose
        the batch without a word).
        """
        cause = self._halted.get((state.name, batch.partition))
        if cause is not None:
            if cause.awaited:  # its sender has been told: writing may resume
                del self._halted[state.name, batch.partition]
            else:  # keep the partition's records a prefix of those sent
                self._fail(batch, cause.future.exception() or StoreClosedError("failed"))
                return False
        try:
            target = state.partitions[batch.partition]
            result = target.append(raw, now_ms=now)
            durable = target.durable(result.last_offset + 1)
        except Exception as exc:
            self._fail(batch, exc)
            return False
        batch.base_offset = result.base_offset
        batch.append_time = result.log_append_time
        self._inflight.add(batch)
        durable.add_done_callback(lambda done: self._durable(batch, done))
        return True

    def _durable(self, batch: _Batch, done: asyncio.Future[None]) -> None:
        self._inflight.discard(batch)
        if batch.future.done():
            return
        error = None if done.cancelled() else done.exception()
        if done.cancelled():
            error = StoreClosedError(
                f"the write to {batch.topic}-{batch.partition} was cancelled before it was durable"
            )
        if error is None:
            batch.future.set_result(None)
        else:
            self._fail(batch, error)

    def _fail(self, batch: _Batch, error: BaseException) -> None:
        """Fail ``batch`` with ``error``, and every later batch of its partition with it until
        the failure is reported (a delivery of the batch awaited, or :meth:`flush`): a later,
        smaller batch must not land behind a lost one."""
        if not batch.future.done():
            batch.future.set_exception(error)
        self._failed.append(batch)
        self._halted.setdefault((batch.topic, batch.partition), batch)

    # --- flushing and closing ---------------------------------------------------------------

    def _seal_all(self, topic: str | None = None) -> None:
        for state in list(self._topics.values()):
            if topic is None or state.name == topic:
                for partition, batch in enumerate(state.batches):
                    if batch is not None:
                        self._seal(state, partition)

    def forget_topic(self, topic: str) -> None:
        """Seal the topic's open batches and drop what is known of it (it was altered or is
        about to be deleted)."""
        self._seal_all(topic)
        self._topics.pop(topic, None)

    async def flush(self) -> None:
        self._seal_all()
        while self._inflight:
            await asyncio.wait([b.future for b in self._inflight])
        failed, self._failed = self._failed, []
        self._halted.clear()  # reported below (or awaited already): writing may resume
        first: BaseException | None = None
        for batch in failed:
            error = batch.future.exception()  # marks it retrieved
            if first is None and not batch.awaited:
                first = error
        if first is not None:
            raise first

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            self._topics.clear()
            self._connection.forget_producer(self)
