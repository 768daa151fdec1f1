"""The embedded producer: records gathered into batches and appended to the log in-process.

Each partition has at most one open batch. ``send`` adds a record to it and returns a
:class:`_Delivery`, which is the record itself plus its place in the batch: there is no future
per record, only one per batch. A batch is sealed when the next record would take it past the
batch size (``batch_bytes``, and never past the topic's ``max.message.bytes``) or ``linger_ms``
after its first record, whichever comes first. Sealing encodes it as one RecordBatch v2 and
appends it to the partition at once (the log writes to the OS synchronously); the batch's future
resolves when the partition says the batch is durable, per the topic's ``flush.policy``.

``send_batch`` is the bulk path: it checks every record of the call first, seals the open batch
of each partition it writes to, then encodes the records straight into as many batches as the
batch size allows and appends them, with no per-record object at all. Its encoder builds each
field of the records as one column (a C-level ``map`` over the whole batch, with the varints
taken from small caches) and interleaves the columns with one ``join``; that is about three
times cheaper per record than :func:`~millstream.core.log.batch.encode_batch`'s loop, and yields
the same bytes.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Callable, Generator, Sequence
from itertools import accumulate, repeat
from operator import add, sub
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from crc32c import crc32c

from ...errors import (
    InvalidPartitionsError,
    MillstreamError,
    ReadOnlyStoreError,
    RecordTooLargeError,
    StoreClosedError,
)
from ...log.batch import BATCH_OVERHEAD, HEADER_SIZE, MAGIC, encode_batch
from ...log.compression import Compression, compress
from ...record import Header, Record
from ..interface import BatchDelivery, Delivery, Producer, RecordMetadata
from ..partitioner import StickyPartitioner, murmur2

if TYPE_CHECKING:
    from ...log.partition import Partition
    from .connection import EmbeddedConnection

__all__ = ["EmbeddedProducer"]

_RECORD_OVERHEAD = 21  # upper bound of a record's framing (see encoded_record_size)


class _Batch:
    """Records on their way into one partition, and the one future they share.

    A batch made by ``send`` holds its records' deliveries; one made by ``send_batch`` holds
    instead where its records were in the call (``places``) and their timestamps (``stamps``,
    None when every one was "now").
    """

    __slots__ = (
        "append_time",
        "awaited",
        "base_offset",
        "future",
        "now_ms",
        "partition",
        "places",
        "records",
        "room",
        "stamps",
        "timer",
        "topic",
    )

    def __init__(self, topic: str, partition: int, future: asyncio.Future[None], room: int) -> None:
        self.topic = topic
        self.partition = partition
        self.future = future
        self.records: list[_Delivery] = []
        self.room = room  # bytes left, counted by an upper bound of each record's size
        self.base_offset = -1
        self.append_time = -1
        self.now_ms = 0
        self.awaited = False
        self.timer: asyncio.Handle | None = None
        self.places: range | list[int] = range(0)
        self.stamps: list[int] | None = None


class _Delivery(Delivery):
    """One sent record: its fields (the encoder reads them as a Record) and its batch.

    Most records have no headers and the default timestamp; they are plain ``_Delivery``
    objects with the two as class defaults, which saves two stores per record.
    """

    __slots__ = ("_batch", "_index", "key", "value")

    _batch: _Batch
    _index: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...] = ()
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
    """A sent record with headers or its own timestamp."""

    __slots__ = ("headers", "timestamp")


_new = object.__new__


class _SentBatch(BatchDelivery):
    """The records of one ``send_batch`` call: the batches they were appended in."""

    __slots__ = ("_batches", "_count")

    def __init__(self, batches: list[_Batch], count: int) -> None:
        self._batches = batches
        self._count = count

    def done(self) -> bool:
        return all(batch.future.done() for batch in self._batches)

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


class _TopicState:
    """What ``send`` needs of one topic, looked up once."""

    __slots__ = (
        "batches",
        "compression",
        "count",
        "limit",
        "max_bytes",
        "name",
        "partitions",
        "sticky",
    )

    def __init__(
        self,
        name: str,
        partitions: list[Partition],
        max_bytes: int,
        batch_bytes: int,
        compression: Compression,
    ) -> None:
        self.name = name
        self.partitions = partitions
        self.count = len(partitions)
        self.max_bytes = max_bytes
        # records are counted by an upper bound of their size, so a batch whose bound stays
        # under this limit always fits max.message.bytes
        self.limit = min(batch_bytes, max_bytes) - HEADER_SIZE
        self.compression = compression
        self.batches: list[_Batch | None] = [None] * self.count
        self.sticky = StickyPartitioner(self.count)


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
        if value.__class__ is bytes:
            size = _RECORD_OVERHEAD + len(value)
        elif value is None:
            size = _RECORD_OVERHEAD
        else:
            value = _as_bytes(value, "value")
            size = _RECORD_OVERHEAD + len(value)
        if key is not None:
            if key.__class__ is not bytes:
                key = _as_bytes(key, "key")
            size += len(key)
            if partition is None:
                partition = (murmur2(key) & 0x7FFFFFFF) % state.count
            else:
                _check_partition(state, partition)
        elif partition is None:
            partition = state.sticky.partition
        else:
            _check_partition(state, partition)
        delivery: _Delivery
        if headers or timestamp:
            delivery = _new(_StampedDelivery)
            if headers:
                delivery.headers = headers = _check_headers(headers)
                for name, hval in headers:
                    size += 10 + len(name) * 3 + (len(hval) if hval else 0)
            else:
                delivery.headers = ()
            if timestamp is not None and (type(timestamp) is not int or timestamp < 0):
                raise ValueError(
                    f"record timestamp {timestamp!r} is not valid; give milliseconds since the "
                    "epoch (an int >= 0), or None for now"
                )
            delivery.timestamp = timestamp or 0
        else:
            delivery = _new(_Delivery)
        batch = state.batches[partition]
        if batch is None or batch.room < size:
            if size > state.limit:
                self._check_record_size(state, key, value, delivery.headers)
            if batch is not None:
                self._seal(state, partition)
            batch = self._open_batch(state, partition)
        batch.room -= size
        records = batch.records
        delivery.key = key
        delivery.value = value
        delivery._batch = batch
        delivery._index = len(records)
        records.append(delivery)
        return delivery

    def send_batch(
        self, topic: str, records: Sequence[Record], partition: int | None = None
    ) -> BatchDelivery:
        state = self._topics.get(topic)
        if state is None:
            state = self._topic_state(topic)
        if partition is not None:
            _check_partition(state, partition)
        now = int(time.time() * 1000)
        rows = _Columns.of(records, now)  # checks the fields of every record
        if not rows.count:
            return _SentBatch([], 0)
        _check_sizes(state, rows)
        sticky = state.sticky.partition
        loop = asyncio.get_running_loop()
        batches: list[_Batch] = []
        # every check is behind us: from here on, failures are the store's and go to the
        # deliveries. A partition that refuses a batch gets nothing more of this call.
        for target, places in _route(state, rows, partition, sticky):
            self._seal(state, target)
            group = rows if places is None else rows.take(places)
            for lo, hi in group.cut(state.limit):
                batch = _Batch(state.name, target, loop.create_future(), 0)
                batch.now_ms = now
                batch.places = range(lo, hi) if places is None else places[lo:hi]
                batch.stamps = None if group.stamps is None else group.stamps[lo:hi]
                batches.append(batch)
                raw = group.encode(lo, hi, state.compression, now)
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
        if store.read_only:
            raise ReadOnlyStoreError(self._connection.read_only_message(f"write to {topic!r}"))
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
            raise _too_large(state, exact)

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
        records, batch.records = batch.records, []
        now = int(time.time() * 1000)
        batch.now_ms = now
        try:
            raw = encode_batch(records, compression=state.compression, now_ms=now)  # type: ignore[arg-type]
        except MillstreamError as exc:
            self._fail(batch, exc)
            return
        self._append(state, batch, raw, now)

    def _append(self, state: _TopicState, batch: _Batch, raw: bytearray, now: int) -> bool:
        """Append an encoded batch to its partition and follow it until it is durable.

        Returns False when the partition refused it (the batch has then failed).
        """
        try:
            target = state.partitions[batch.partition]
            result = target.append(raw, now_ms=now)
            durable = target.durable(result.last_offset + 1)
        except MillstreamError as exc:
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
        if not batch.future.done():
            batch.future.set_exception(error)
        self._failed.append(batch)

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


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(
        f"record {what} must be bytes or None, not {type(data).__name__}; "
        "encode text with .encode() first"
    )


def _check_headers(headers: Sequence[Header]) -> tuple[Header, ...]:
    out = []
    for header in headers:
        try:
            name, hval = header
        except (TypeError, ValueError):
            raise TypeError(
                f"record header {header!r} is not a (name, value) pair; e.g. ('source', b'x')"
            ) from None
        if not isinstance(name, str):
            raise TypeError(f"record header name {name!r} must be text")
        if hval is not None and hval.__class__ is not bytes:
            hval = _as_bytes(hval, f"header {name!r}")
        out.append((name, hval))
    return tuple(out)


def _check_partition(state: _TopicState, partition: object) -> None:
    if type(partition) is int and 0 <= partition < state.count:
        return
    raise InvalidPartitionsError(
        f"partition {partition!r} does not exist in topic {state.name!r}; "
        f"valid partitions are 0 to {state.count - 1}"
    )


def _too_large(state: _TopicState, exact: int) -> RecordTooLargeError:
    return RecordTooLargeError(
        f"record of {exact} bytes (with its batch header) is over the "
        f"max.message.bytes={state.max_bytes} of topic {state.name!r}; send a smaller "
        f"record or raise the limit with `millstream topics alter {state.name} "
        "--config max.message.bytes=N`"
    )


def _check_sizes(state: _TopicState, rows: _Columns) -> None:
    """Refuse the call if one of its records is over max.message.bytes even alone."""
    # alone in a batch a record is 61 bytes of header, its length varint (at most 5 bytes),
    # its attributes, timestamp delta and offset delta (3 bytes), then its key on
    fixed = rows.fixed
    if max(rows.sizes) + fixed + HEADER_SIZE + 8 <= state.max_bytes:
        return
    for size in rows.sizes:
        length = size + fixed + 3
        exact = HEADER_SIZE + len(_VARINT[length]) + length
        if exact > state.max_bytes:
            raise _too_large(state, exact)


def _route(
    state: _TopicState, rows: _Columns, partition: int | None, sticky: int
) -> list[tuple[int, list[int] | None]]:
    """The partitions the records of a call go to: ``(partition, places)`` pairs, where
    ``places`` are the records' places in the call, in order (None: all of them)."""
    if partition is not None:
        return [(partition, None)]
    keys, klens, count = rows.keys, rows.klens, state.count
    if keys is None or klens is None or count == 1:
        return [(sticky, None)]
    places: dict[bytes, int] = {}  # keys repeat: hash each once per call
    groups: dict[int, list[int]] = {}
    for place, key in enumerate(keys):
        if klens[place] < 0:
            target = sticky
        else:
            found = places.get(key)
            if found is None:
                found = places[key] = (murmur2(key) & 0x7FFFFFFF) % count
            target = found
        group = groups.get(target)
        if group is None:
            groups[target] = [place]
        else:
            group.append(place)
    if len(groups) == 1:
        return [(target, None)]
    return list(groups.items())


# --- the bulk encoder -------------------------------------------------------------------------

_T = TypeVar("_T")

_MEMO_LIMIT = 1 << 16


class _Memo(dict[int, _T], Generic[_T]):
    """``make(n)`` for every int looked up, made once (all forgotten past a limit).

    Looked up with ``map(memo.__getitem__, ints)``, it turns a column of lengths into a column
    of varints at C speed.
    """

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[int], _T]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, n: int) -> _T:
        if len(self) >= _MEMO_LIMIT:
            self.clear()
        made = self[n] = self._make(n)
        return made


def _zigzag(value: int) -> bytes:
    """The zig-zag varint of ``value`` (the encoding of every length and delta in a batch)."""
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_VARINT: _Memo[bytes] = _Memo(_zigzag)
# a key or value field: its length varint and its bytes (-1 is null: the varint alone)
_FIELD_SIZE: _Memo[int] = _Memo(lambda n: len(_zigzag(n)) + max(n, 0))
# a keyless record's null key and its value's length
_NULL_KEY_VALUE_LENGTH: _Memo[bytes] = _Memo(lambda n: b"\x01" + _zigzag(n))
# (extra, now) -> size -> the record's length varint (size + extra) and attributes byte, and
# with ``now`` its zero timestamp delta: see _heads
_HEAD_TABLES: dict[tuple[int, bool], _Memo[bytes]] = {}

_OFFSET_DELTAS = [_zigzag(delta) for delta in range(1 << 14)]

# the offset deltas whose varints have the same width: [start, stop) and the width
_DELTA_WIDTHS = ((0, 64, 1), (64, 8192, 2), (8192, 1 << 20, 3), (1 << 20, 1 << 27, 4))

# RecordBatch v2's header, laid out as in core.log.batch
_BATCH_HEADER = struct.Struct(">qiibIhiqqqhii")
_CRC = struct.Struct(">I")
_CRC_START = 21
_NO_HEADER = bytes(HEADER_SIZE)


def _offset_deltas(count: int) -> list[bytes]:
    if count > len(_OFFSET_DELTAS):
        _OFFSET_DELTAS.extend(map(_zigzag, range(len(_OFFSET_DELTAS), count)))
    return _OFFSET_DELTAS[:count]


class _Columns:
    """The records of a ``send_batch`` call, checked and laid out field by field.

    ``keys`` and ``values`` hold bytes (b"" for null), ``klens`` and ``vlens`` their lengths
    (-1 for null); ``keys`` is None when no record has a key, ``stamps`` when every timestamp
    is "now" (else "now" is filled in), ``headers`` (each record's encoded header section)
    when no record has any. A record's key, value and headers take ``sizes[i] + fixed`` bytes
    (``fixed`` counts the null key and empty header section that ``sizes`` leaves out).
    """

    __slots__ = (
        "count",
        "fixed",
        "headers",
        "keys",
        "klens",
        "sizes",
        "stamps",
        "values",
        "vlens",
    )

    def __init__(
        self,
        values: list[bytes],
        vlens: list[int],
        keys: list[bytes] | None,
        klens: list[int] | None,
        stamps: list[int] | None,
        headers: list[bytes] | None,
        sizes: list[int],
        fixed: int,
    ) -> None:
        self.count = len(values)
        self.values = values
        self.vlens = vlens
        self.keys = keys
        self.klens = klens
        self.stamps = stamps
        self.headers = headers
        self.sizes = sizes
        self.fixed = fixed

    @classmethod
    def of(cls, records: Sequence[Record], now: int) -> _Columns:
        """Check the records' fields (raising as ``send`` does) and lay them out."""
        if not isinstance(records, list | tuple):
            records = list(records)  # read field by field: it must iterate more than once
        try:
            values: list[Any] = [r.value for r in records]
            keys: list[Any] | None = [r.key for r in records]
            # most calls have neither headers nor timestamps: one pass tells
            special = any([r.headers or r.timestamp for r in records])
            headers: list[Any] | None = [r.headers for r in records] if special else None
            stamps: list[Any] | None = [r.timestamp for r in records] if special else None
        except AttributeError:
            bad = next(r for r in records if not isinstance(r, Record))
            raise TypeError(
                f"send_batch takes Record objects, not {type(bad).__name__}; "
                "e.g. Record(key, value)"
            ) from None
        assert keys is not None
        if set(map(type, values)) <= {bytes}:
            vlens = list(map(len, values))
        else:
            values, vlens = _column(values, "value")
        sizes = list(map(_FIELD_SIZE.__getitem__, vlens))
        fixed = 0
        klens: list[int] | None = None
        if keys.count(None) == len(keys):
            keys = None
            fixed += 1  # each null key's length
        else:
            if set(map(type, keys)) <= {bytes}:
                klens = list(map(len, keys))
            else:
                keys, klens = _column(keys, "key")
            sizes = list(map(add, sizes, map(_FIELD_SIZE.__getitem__, klens)))
        if headers is not None and any(headers):
            headers = [_encode_headers(_check_headers(h)) if h else b"\x00" for h in headers]
            sizes = list(map(add, sizes, map(len, headers)))
        else:
            headers = None
            fixed += 1  # each header count, 0
        if stamps is not None and any(stamps):
            if not (set(map(type, stamps)) <= {int} and min(stamps) >= 0):
                for stamp in stamps:
                    if stamp and (type(stamp) is not int or stamp < 0):
                        raise ValueError(
                            f"record timestamp {stamp!r} is not valid; give milliseconds since "
                            "the epoch (an int >= 0), or 0 for now"
                        )
            stamps = [stamp or now for stamp in stamps]
        else:
            stamps = None
        return cls(values, vlens, keys, klens, stamps, headers, sizes, fixed)

    def take(self, places: list[int]) -> _Columns:
        """The records at ``places``, in that order."""

        def column(items: list[_T]) -> list[_T]:
            return list(map(items.__getitem__, places))

        return _Columns(
            column(self.values),
            column(self.vlens),
            None if self.keys is None else column(self.keys),
            None if self.klens is None else column(self.klens),
            None if self.stamps is None else column(self.stamps),
            None if self.headers is None else column(self.headers),
            column(self.sizes),
            self.fixed,
        )

    def cut(self, limit: int) -> list[tuple[int, int]]:
        """Split the records into runs whose batches stay within ``limit`` bytes of records.

        A record is counted by an upper bound of its size: its exact size from its key on,
        its timestamp delta from the earliest timestamp of all (a batch's own is never
        earlier), and 11 bytes for its length varint, attributes and offset delta. A record
        over the limit alone gets a batch of its own.
        """
        if self.stamps is None:
            sums = list(accumulate(self.sizes))
            each = self.fixed + 12  # the zero timestamp delta is one byte
        else:
            first = min(self.stamps)
            deltas = map(len, map(_VARINT.__getitem__, map(sub, self.stamps, repeat(first))))
            sums = list(accumulate(map(add, self.sizes, deltas)))
            each = self.fixed + 11
        # runs[lo:hi] is bounded by sums[hi - 1] - sums[lo - 1] + each * (hi - lo), which
        # grows with hi: find the longest run that fits by bisection
        runs = []
        lo, count, before = 0, self.count, 0
        while lo < count:
            budget = before + limit + each * lo
            good, bad = lo + 1, count + 1  # a run has at least one record
            while bad - good > 1:
                mid = (good + bad) >> 1
                if sums[mid - 1] + each * mid <= budget:
                    good = mid
                else:
                    bad = mid
            runs.append((lo, good))
            before = sums[good - 1]
            lo = good
        return runs

    def encode(self, lo: int, hi: int, compression: Compression, now: int) -> bytearray:
        """Records ``lo`` to ``hi`` as one RecordBatch v2, the bytes ``encode_batch`` makes."""
        count = hi - lo
        sizes = self.sizes[lo:hi]
        columns: list[Any]
        if self.stamps is None:
            base_ts = max_ts = now
            columns = [_heads(sizes, self.fixed, now=True)]
        else:
            stamps = self.stamps[lo:hi]
            base_ts, max_ts = min(stamps), max(stamps)
            deltas = list(map(_VARINT.__getitem__, map(sub, stamps, repeat(base_ts))))
            sizes = list(map(add, sizes, map(len, deltas)))
            columns = [_heads(sizes, self.fixed, now=False), deltas]
        columns.append(_offset_deltas(count))
        vlens = self.vlens[lo:hi]
        if self.keys is None or self.klens is None:
            columns.append(list(map(_NULL_KEY_VALUE_LENGTH.__getitem__, vlens)))
        else:
            columns.append(list(map(_VARINT.__getitem__, self.klens[lo:hi])))
            columns.append(self.keys[lo:hi])
            columns.append(list(map(_VARINT.__getitem__, vlens)))
        columns.append(self.values[lo:hi])
        columns.append(repeat(b"\x00", count) if self.headers is None else self.headers[lo:hi])
        width = len(columns)
        # the records' pieces, after room for the header when they are stored as they are
        parts = [b""] * (1 + count * width)
        for i, column in enumerate(columns, 1):
            parts[i::width] = column
        if compression == Compression.NONE:
            parts[0] = _NO_HEADER
            out = bytearray().join(parts)
            length = len(out) - HEADER_SIZE
        else:
            section = compress(compression, b"".join(parts))
            length = len(section)
            out = bytearray(HEADER_SIZE + length)
            out[HEADER_SIZE:] = section
        _BATCH_HEADER.pack_into(
            out,
            0,
            0,  # baseOffset, set by the log
            HEADER_SIZE - BATCH_OVERHEAD + length,
            0,  # partitionLeaderEpoch
            MAGIC,
            0,  # crc, below
            int(compression),
            count - 1,
            base_ts,
            max_ts,
            -1,  # producerId
            -1,  # producerEpoch
            -1,  # baseSequence
            count,
        )
        _CRC.pack_into(out, 17, crc32c(memoryview(out)[_CRC_START:]))
        return out


def _heads(sizes: list[int], fixed: int, *, now: bool) -> list[bytes]:
    """Each record's length varint and attributes byte (and, ``now``, its zero timestamp
    delta). ``sizes[i] + fixed`` is the record's size from its key on (with its timestamp
    delta unless ``now``); its offset delta's width is known from its place."""
    out: list[bytes] = []
    count = len(sizes)
    for start, stop, width in _DELTA_WIDTHS:
        if start >= count:
            break
        extra = fixed + width + (2 if now else 1)
        table = _HEAD_TABLES.get((extra, now))
        if table is None:
            table = _HEAD_TABLES[extra, now] = _head_table(extra, now)
        out += map(table.__getitem__, sizes[start:stop])
    return out


def _head_table(extra: int, now: bool) -> _Memo[bytes]:
    tail = b"\x00\x00" if now else b"\x00"
    return _Memo(lambda size: _zigzag(size + extra) + tail)


def _column(items: list[Any], what: str) -> tuple[list[bytes], list[int]]:
    """A key or value column with bytes-likes made bytes and nulls made b"", and its lengths
    (-1 for null); TypeError for anything else."""
    out: list[bytes] = []
    lengths: list[int] = []
    for item in items:
        if item is None:
            out.append(b"")
            lengths.append(-1)
        else:
            if item.__class__ is not bytes:
                item = _as_bytes(item, what)
            out.append(item)
            lengths.append(len(item))
    return out, lengths


def _encode_headers(headers: tuple[Header, ...]) -> bytes:
    out = [_VARINT[len(headers)]]
    for name, hval in headers:
        raw_name = name.encode()
        out.append(_VARINT[len(raw_name)])
        out.append(raw_name)
        if hval is None:
            out.append(b"\x01")
        else:
            out.append(_VARINT[len(hval)])
            out.append(hval)
    return b"".join(out)
