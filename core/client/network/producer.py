"""The network producer: records batched per partition and sent to each partition's leader.

``send`` places a record in its partition's open batch, as the embedded producer does (the same
partitioning, the same sealing rules: full, or ``linger_ms`` after its first record). A sealed
batch joins its partition's queue; a sender drains the queues, one batch per partition per
Produce request, one request per leader, up to ``max_in_flight`` (5) batches per partition at
once, pipelined on the connection.

Idempotence (on by default, with ``acks="all"``): the producer gets a producer id from the
cluster (InitProducerId) and numbers each partition's records; a batch keeps its sequence
numbers across retries, so a retried batch that had landed is answered with its original
offsets instead of being written twice, and a gap is refused by the broker. Retriable failures
(a lost connection, NOT_LEADER_OR_FOLLOWER…) hold the partition: its batches in flight
finish, then the failed ones go first again, in sequence order, after a metadata refresh.
A batch that fails for good fails its records' deliveries; the partition's later batches fail
with it until the failure is reported (a delivery awaited, or :meth:`flush`), then the producer
takes a new producer id so the sequence numbers start again. It takes it once every batch
already sent has landed or failed (those are retried under the id they were sent with, so the
broker still knows a retry that had landed): only batches never sent get the new id.

A topic the producer has not seen is looked up without blocking ``send``: its records wait,
in order, and an unknown topic fails their deliveries with UnknownTopicError.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Generator, Sequence
from typing import TYPE_CHECKING, Any

from ...errors import (
    StoreClosedError,
    StoreError,
)
from ...log.batch import HEADER_SIZE
from ...log.compression import Compression
from ...log.encoder import RecordColumns, as_bytes, check_headers, encode_batch
from ...protocol import ApiKey, ErrorCode, request_class
from ...record import Header, Record
from ..interface import BatchDelivery, Delivery, Producer, RecordMetadata, _checked_fields
from ..routing import TopicRouting, route
from .failures import REFRESH_METADATA, error_for
from .wire import BrokerConnection, BrokerUnavailableError

if TYPE_CHECKING:
    from .connection import NetworkConnection

__all__ = ["BufferFullError", "NetworkProducer"]

log = logging.getLogger(__name__)

_RECORD_OVERHEAD = 21
_MAX_IN_FLIGHT = 5
_RETRY_BACKOFF_S = 0.1
_PRODUCE = request_class(ApiKey.PRODUCE)


class _Batch:
    """Records on their way to one partition, and the future they share."""

    __slots__ = (
        "append_time",
        "attempts",
        "awaited",
        "base_offset",
        "base_sequence",
        "deadline",
        "future",
        "headers",
        "held",
        "keys",
        "now_ms",
        "partition",
        "places",
        "producer_id",
        "raw",
        "ripe",
        "room",
        "rows",
        "sent_on",
        "stamps",
        "timer",
        "topic",
        "values",
    )

    def __init__(self, topic: str, partition: int, future: asyncio.Future[None], room: int) -> None:
        self.topic = topic
        self.partition = partition
        self.future = future
        self.room = room
        self.values: list[bytes | None] = []
        self.keys: list[bytes | None] = []
        self.headers: list[tuple[Header, ...]] | None = None
        self.stamps: list[int] | None = None
        self.timer: asyncio.Handle | None = None
        self.ripe = False
        """Lingered long enough, but kept open while its partition may not send: it takes more
        records until the sender has room for it (as Kafka's producer does), instead of each
        linger making a batch of its own that waits behind the in-flight ones."""
        self.raw: bytearray | None = None
        self.base_sequence = -1
        self.producer_id = -1
        self.base_offset = -1
        self.append_time = -1
        self.now_ms = 0
        self.awaited = False
        self.attempts = 0
        self.deadline = 0.0
        self.held = 0  # bytes of its records counted in the producer's buffer
        self.sent_on: BrokerConnection | None = None  # the connection of its last attempt
        # a batch of send_batch: its records already laid out (columns, first, end) and
        # where they were in the call
        self.rows: tuple[RecordColumns, int, int] | None = None
        self.places: range | list[int] = range(0)


def _has_room(target: _PartitionState) -> bool:
    """Whether the partition may have one more request in flight now."""
    return not target.retry and len(target.inflight) < _MAX_IN_FLIGHT


def _may_send(target: _PartitionState) -> bool:
    """Whether a batch sealed for this partition now would be sent at once."""
    return not target.queue and _has_room(target)


class _Delivery(Delivery):
    __slots__ = ("_batch", "_index", "_timestamp")

    def __init__(self, batch: _Batch, index: int, timestamp: int) -> None:
        self._batch = batch
        self._index = index
        self._timestamp = timestamp

    def done(self) -> bool:
        return self._batch.future.done()

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        batch = self._batch
        batch.awaited = True
        yield from batch.future.__await__()
        stamp = batch.append_time if batch.append_time >= 0 else self._timestamp or batch.now_ms
        offset = batch.base_offset + self._index if batch.base_offset >= 0 else -1
        return RecordMetadata(batch.topic, batch.partition, offset, stamp)


class _LateDelivery(Delivery):
    """A record sent to a topic still being looked up: its real delivery comes later."""

    __slots__ = ("_future", "awaited")

    def __init__(self, future: asyncio.Future[Delivery]) -> None:
        self._future = future
        self.awaited = False

    def done(self) -> bool:
        future = self._future
        if not future.done():
            return False
        return future.exception() is not None or future.result().done()

    def __await__(self) -> Generator[Any, None, RecordMetadata]:
        self.awaited = True
        delivery = yield from self._future.__await__()
        return (yield from delivery.__await__())


class _Records(BatchDelivery):
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


class _SentBatch(BatchDelivery):
    """The records of one ``send_batch`` call: the batches they were cut into."""

    __slots__ = ("_batches", "_count")

    def __init__(self, batches: list[_Batch], count: int) -> None:
        self._batches = batches
        self._count = count

    def done(self) -> bool:
        return all(batch.future.done() for batch in self._batches)

    async def confirmed(self) -> None:
        for batch in self._batches:
            batch.awaited = True
        for batch in self._batches:
            await batch.future

    def __await__(self) -> Generator[Any, None, list[RecordMetadata]]:
        for batch in self._batches:
            batch.awaited = True
        for batch in self._batches:
            yield from batch.future.__await__()
        out: list[Any] = [None] * self._count
        for batch in self._batches:
            assert batch.rows is not None
            rows, lo, hi = batch.rows
            stamps = rows.stamps[lo:hi] if rows.stamps is not None else None
            for i, place in enumerate(batch.places):
                if batch.append_time >= 0:
                    stamp = batch.append_time
                else:
                    stamp = stamps[i] if stamps is not None else batch.now_ms
                offset = batch.base_offset + i if batch.base_offset >= 0 else -1
                out[place] = RecordMetadata(batch.topic, batch.partition, offset, stamp)
        return out


class _PartitionState:
    __slots__ = ("halted", "inflight", "next_sequence", "queue", "refresh", "retry")

    def __init__(self) -> None:
        self.queue: collections.deque[_Batch] = collections.deque()
        self.inflight: list[_Batch] = []
        self.retry: list[_Batch] = []
        self.next_sequence = 0
        self.halted: _Batch | None = None
        self.refresh = False


class _TopicState(TopicRouting):
    """What ``send`` needs of one topic: its routing, and per partition the open batch and
    the state of the batches in flight."""

    __slots__ = ("compression", "limit", "open", "partitions")

    def __init__(
        self, name: str, count: int, max_bytes: int, batch_bytes: int, compression: Compression
    ) -> None:
        super().__init__(name, count, max_bytes)
        self.limit = min(batch_bytes, max_bytes) - HEADER_SIZE
        self.compression = compression
        self.open: list[_Batch | None] = [None] * count
        self.partitions = [_PartitionState() for _ in range(count)]


class BufferFullError(StoreError):
    """A producer holds ``buffer_bytes`` of records not yet acknowledged; retriable once
    deliveries complete (await them, or :meth:`NetworkProducer.flush`)."""


class NetworkProducer(Producer):
    """A producer that sends batches to the brokers of its connection's cluster.

    Records wait in memory until the broker acknowledges them: once ``buffer_bytes`` of them
    are held, ``send`` and ``send_batch`` raise :class:`BufferFullError` instead of holding
    more (one call may take the buffer past its size; the next is refused)."""

    def __init__(
        self,
        connection: NetworkConnection,
        *,
        linger_ms: float,
        batch_bytes: int,
        compression: str | None,
        client_id: str,
        acks: int | str = "all",
        idempotence: bool = True,
        delivery_timeout_ms: int = 120_000,
        request_timeout_ms: int = 30_000,
        buffer_bytes: int = 64 << 20,
    ) -> None:
        if batch_bytes < 1:
            raise ValueError(f"batch_bytes must be >= 1, not {batch_bytes}")
        if buffer_bytes < 1:
            raise ValueError(f"buffer_bytes must be >= 1, not {buffer_bytes}")
        if linger_ms < 0:
            raise ValueError(f"linger_ms must be >= 0, not {linger_ms}")
        acks_value = {"all": -1, "-1": -1, "1": 1, "0": 0}.get(str(acks))
        if acks_value is None:
            raise ValueError(f"acks {acks!r} is not valid; valid: 'all', 1, 0")
        self._connection = connection
        self._linger_s = linger_ms / 1000
        self._batch_bytes = batch_bytes
        self._compression = Compression.from_name(compression or "none")
        self.client_id = client_id
        self._acks = acks_value
        self._idempotent = idempotence and acks_value == -1
        self._delivery_timeout_s = delivery_timeout_ms / 1000
        self._request_timeout_ms = request_timeout_ms
        self._buffer_bytes = buffer_bytes
        self._buffered = 0
        self._topics: dict[str, _TopicState] = {}
        self._waiting: dict[str, list[tuple[tuple[Any, ...], asyncio.Future[Delivery]]]] = {}
        self._unfinished: set[_Batch] = set()
        self._failed: list[_Batch] = []
        self._late: list[_LateDelivery] = []
        self._producer_id = -1
        self._producer_epoch = -1
        self._pid_task: asyncio.Task[None] | None = None
        self._need_pid = self._idempotent
        self._pump_scheduled = False
        self._writing: dict[int, asyncio.Future[BaseException | None]] = {}
        self._refreshing: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._channel = f"producer-{id(self):x}"
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
        state = self._topics.get(topic)
        if state is None:
            state = self._topic_state(topic)
            if state is None:
                return self._send_later(topic, value, key, headers, partition, timestamp)
        if value is not None and value.__class__ is not bytes:
            value = as_bytes(value, "value")
        if key is not None and key.__class__ is not bytes:
            key = as_bytes(key, "key")
        if headers:
            headers = check_headers(headers)
        if timestamp is not None and (type(timestamp) is not int or timestamp < 0):
            raise ValueError(
                f"record timestamp {timestamp!r} is not valid; give milliseconds since the "
                "epoch (an int >= 0), or None for now"
            )
        if partition is None:
            partition = state.sticky.partition if key is None else state.partition_of(key)
        else:
            state.check_partition(partition)
        size = _RECORD_OVERHEAD + (len(value) if value else 0) + (len(key) if key else 0)
        for name, hval in headers:
            size += 10 + len(name) * 3 + (len(hval) if hval else 0)
        if self._buffered >= self._buffer_bytes:
            raise self._full()
        batch = state.open[partition]
        if batch is None or batch.room < size:
            if size > state.limit:
                exact = len(encode_batch([Record(key, value, tuple(headers), 1)]))
                if exact > state.max_bytes:
                    raise state.too_large(exact)
            if batch is not None:
                self._seal(state, partition)
            batch = self._open_batch(state, partition)
        batch.room -= size
        batch.held += size
        self._buffered += size
        index = len(batch.values)
        batch.values.append(value)
        batch.keys.append(key)
        if headers or timestamp:
            if batch.headers is None:
                batch.headers = [()] * index
                batch.stamps = [0] * index
            batch.headers.append(tuple(headers))
            batch.stamps.append(timestamp or 0)  # type: ignore[union-attr]
        elif batch.headers is not None:
            batch.headers.append(())
            batch.stamps.append(0)  # type: ignore[union-attr]
        return _Delivery(batch, index, timestamp or 0)

    def send_batch(
        self, topic: str, records: Sequence[Record], partition: int | None = None
    ) -> BatchDelivery:
        state = self._topics.get(topic) or self._topic_state(topic)
        if state is None:  # a topic still being looked up: record by record, in order
            checked = [_checked_fields(record) for record in records]
            return _Records(
                [
                    self.send(topic, value, key, headers, partition, timestamp or None)
                    for key, value, headers, timestamp in checked
                ]
            )
        if partition is not None:
            state.check_partition(partition)
        if self._buffered >= self._buffer_bytes:
            raise self._full()
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
        for target, places in route(state, rows, partition, sticky):
            self._seal(state, target)  # what send() put there before goes first
            group = rows if places is None else rows.take(places)
            for lo, hi in group.cut(state.limit):
                batch = _Batch(state.name, target, loop.create_future(), 0)
                batch.now_ms = now
                batch.rows = (group, lo, hi)
                batch.places = range(lo, hi) if places is None else places[lo:hi]
                batch.held = sum(group.sizes[lo:hi]) + (hi - lo) * (group.fixed + 12)
                self._buffered += batch.held
                batches.append(batch)
                self._unfinished.add(batch)
                self._enqueue(state, batch)
        keyless = rows.klens is None or -1 in rows.klens
        if partition is None and keyless and state.sticky.partition == sticky:
            state.sticky.next_batch()
        return _SentBatch(batches, rows.count)

    def _full(self) -> BufferFullError:
        mib = self._buffer_bytes / (1 << 20)
        return BufferFullError(
            f"producer {self.client_id!r} already holds {mib:g} MiB of records the broker has "
            "not acknowledged (buffer_bytes); await their deliveries or flush() before sending "
            "more: the broker may be slow or unreachable"
        )

    def _topic_state(self, topic: str) -> _TopicState | None:
        """What send needs of ``topic``, when the connection knows it; None when it must be
        looked up first (send then queues the record until it is)."""
        if self._closed:
            raise StoreClosedError(f"producer {self.client_id!r} is closed; make a new one")
        connection = self._connection
        connection.check_open()
        connection.refuse_internal(topic, "write to")
        if topic in self._waiting:
            return None
        info = connection.cluster.topics.get(topic)
        config = connection.topic_configs.get(topic)
        if info is None or config is None:
            return None
        codec = config.get("compression.type", "producer")
        if codec == "producer":
            compression = self._compression
        else:
            compression = Compression.from_name("none" if codec == "uncompressed" else codec)
        max_bytes = int(config.get("max.message.bytes", "1048588"))
        state = _TopicState(topic, info.partitions, max_bytes, self._batch_bytes, compression)
        self._topics[topic] = state
        return state

    def _send_later(self, topic: str, *args: Any) -> Delivery:
        future: asyncio.Future[Delivery] = asyncio.get_running_loop().create_future()
        waiting = self._waiting.get(topic)
        if waiting is None:
            waiting = self._waiting[topic] = []
            self._spawn(self._look_up(topic))
        waiting.append((args, future))
        late = _LateDelivery(future)
        self._late.append(late)
        return late

    async def _look_up(self, topic: str) -> None:
        error: BaseException | None = None
        try:
            await self._connection.look_up_topic(topic)
        except Exception as exc:
            error = exc
        waiting = self._waiting.pop(topic, [])
        for args, future in waiting:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
                continue
            try:
                future.set_result(self.send(topic, *args))
            except Exception as exc:
                future.set_exception(exc)

    def _open_batch(self, state: _TopicState, partition: int) -> _Batch:
        loop = asyncio.get_running_loop()
        batch = _Batch(state.name, partition, loop.create_future(), state.limit)
        state.open[partition] = batch
        self._unfinished.add(batch)
        if self._linger_s > 0:
            batch.timer = loop.call_later(self._linger_s, self._linger_expired, state, batch)
        else:
            batch.timer = loop.call_soon(self._linger_expired, state, batch)
        return batch

    def _linger_expired(self, state: _TopicState, batch: _Batch) -> None:
        batch.timer = None
        if state.open[batch.partition] is not batch:
            return
        if _may_send(state.partitions[batch.partition]):
            self._seal(state, batch.partition)
        else:
            batch.ripe = True  # sealed by the sender once the partition has room

    def _seal(self, state: _TopicState, partition: int) -> None:
        batch = state.open[partition]
        if batch is None:
            return
        state.open[partition] = None
        if batch.timer is not None:
            batch.timer.cancel()
            batch.timer = None
        if partition == state.sticky.partition:
            state.sticky.next_batch()
        self._enqueue(state, batch)

    def _enqueue(self, state: _TopicState, batch: _Batch) -> None:
        """Put a sealed batch in its partition's queue for the sender."""
        batch.deadline = time.monotonic() + self._delivery_timeout_s
        target = state.partitions[batch.partition]
        if target.halted is not None and not self._resume(target):
            self._fail(batch, target.halted.future.exception() or StoreError("failed"))
            return
        target.queue.append(batch)
        self._schedule_pump()

    def _resume(self, target: _PartitionState) -> bool:
        """Whether a halted partition may take batches again (its failure was reported)."""
        assert target.halted is not None
        if not target.halted.awaited:
            return False
        target.halted = None
        self._need_pid = self._idempotent  # the failed batch's sequence numbers are lost
        return True

    def _encode(self, state: _TopicState, target: _PartitionState, batch: _Batch) -> None:
        now = int(time.time() * 1000)
        if batch.rows is not None:
            rows, lo, hi = batch.rows
            now = batch.now_ms
        else:
            batch.now_ms = now
            rows = RecordColumns.of_columns(
                batch.values, batch.keys, batch.headers, batch.stamps, now
            )
            lo, hi = 0, rows.count
        sequence = -1
        if self._idempotent:
            sequence = target.next_sequence
            target.next_sequence = (sequence + hi - lo) & 0x7FFFFFFF
        batch.base_sequence = sequence
        batch.producer_id = self._producer_id
        batch.raw = rows.encode(
            lo,
            hi,
            state.compression,
            now,
            producer_id=self._producer_id if self._idempotent else -1,
            producer_epoch=self._producer_epoch if self._idempotent else -1,
            base_sequence=sequence,
        )

    # --- the sender -------------------------------------------------------------------------

    def _schedule_pump(self) -> None:
        if not self._pump_scheduled:
            self._pump_scheduled = True
            asyncio.get_running_loop().call_soon(self._pump)

    def _pump(self) -> None:
        """Send every batch that may go now: per leader, requests of one batch per partition."""
        self._pump_scheduled = False
        resolving = False
        if self._need_pid:
            if self._pid_task is not None:
                return
            if not self._unresolved():
                self._pid_task = self._spawn(self._init_producer_id())
                return
            # a batch already sent may have landed: under a new producer id its retry could not
            # be told from a new batch, and would be written twice. So those go on under the
            # current id until each has landed or failed; the new id waits for that.
            resolving = True
        cluster = self._connection.cluster
        by_node: dict[int, list[tuple[_TopicState, _PartitionState, _Batch]]] = {}
        for state in self._topics.values():
            for index, target in enumerate(state.partitions):
                held = state.open[index]
                if held is not None and held.ripe and _may_send(target):
                    self._seal(state, index)
                if not target.queue or not _has_room(target):
                    continue
                if resolving and not target.queue[0].attempts:
                    continue
                node = cluster.leader(state.name, index)
                if node < 0 or target.refresh:
                    if state.name not in self._refreshing:
                        self._refreshing.add(state.name)
                        self._spawn(self._refresh_then_pump(state.name))
                    continue
                batch = target.queue.popleft()
                if batch.raw is None or (
                    self._idempotent and batch.producer_id != self._producer_id
                ):
                    try:
                        self._encode(state, target, batch)
                    except Exception as exc:
                        self._fail(batch, exc)
                        continue
                batch.sent_on = None
                target.inflight.append(batch)
                by_node.setdefault(node, []).append((state, target, batch))
        for node, entries in by_node.items():
            before = self._writing.get(node)
            written = self._writing[node] = asyncio.get_running_loop().create_future()
            self._spawn(self._produce(node, entries, before, written))

    def _unresolved(self) -> bool:
        """Whether a batch that was sent has no outcome yet (in flight, or to be retried)."""
        return any(
            p.inflight or p.retry or (p.queue and p.queue[0].attempts)
            for s in self._topics.values()
            for p in s.partitions
        )

    async def _produce(
        self,
        node: int,
        entries: list[tuple[_TopicState, _PartitionState, _Batch]],
        before: asyncio.Future[BaseException | None] | None,
        written: asyncio.Future[BaseException | None],
    ) -> None:
        topics: dict[str, list[Any]] = {}
        for _, _, batch in entries:
            batch.attempts += 1
            topics.setdefault(batch.topic, []).append(
                _PRODUCE.TopicData.PartitionData(index=batch.partition, records=batch.raw)  # type: ignore[attr-defined]
            )
        request = _PRODUCE(
            transactional_id=None,
            acks=self._acks,
            timeout_ms=self._request_timeout_ms,
            topic_data=[
                _PRODUCE.TopicData(name=name, partition_data=parts)  # type: ignore[attr-defined]
                for name, parts in topics.items()
            ],
        )
        answers: dict[tuple[str, int], Any] = {}
        failure: BaseException | None = None
        try:
            connection, pending = await self._write(node, entries, request, before, written)
            response = None
            if pending is not None:
                response = await connection.response(
                    ApiKey.PRODUCE, pending, timeout_s=self._request_timeout_ms / 1000 + 5
                )
            if response is not None:
                for topic in response.responses:
                    for part in topic.partition_responses:
                        answers[(topic.name, part.index)] = part
        except BrokerUnavailableError as exc:
            failure = exc
        except Exception as exc:  # a bug or a protocol error: fail the batches, never lose them
            for _, target, batch in entries:
                self._finish(target, batch)
                self._fail(batch, exc)
            self._schedule_pump()
            return
        for _, target, batch in entries:
            if failure is not None:
                self._retry(target, batch, failure, refresh=True)
                continue
            if self._acks == 0:
                self._finish(target, batch)
                self._succeed(batch, -1, -1)
                continue
            part = answers.get((batch.topic, batch.partition))
            if part is None:
                self._retry(
                    target,
                    batch,
                    StoreError(f"broker {node} did not answer for {batch.topic}"),
                    True,
                )
                continue
            code = ErrorCode.for_code(part.error_code)
            if code in (ErrorCode.NONE, ErrorCode.DUPLICATE_SEQUENCE_NUMBER):
                self._finish(target, batch)
                self._succeed(batch, part.base_offset, part.log_append_time_ms)
            elif code.retriable or (
                # an earlier batch is still unresolved: when it lands this one fits behind it
                code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
                and any(
                    b.base_sequence < batch.base_sequence for b in (*target.retry, *target.inflight)
                )
            ):
                error = error_for(
                    code, f"write to {batch.topic}-{batch.partition}", part.error_message
                )
                self._retry(target, batch, error, code in REFRESH_METADATA)
            else:
                self._finish(target, batch)
                self._fail(
                    batch,
                    error_for(
                        code, f"write to {batch.topic}-{batch.partition}", part.error_message
                    ),
                )
                if code in (
                    ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER,
                    ErrorCode.UNKNOWN_PRODUCER_ID,
                    ErrorCode.INVALID_PRODUCER_EPOCH,
                ):
                    self._need_pid = self._idempotent
        self._schedule_pump()

    async def _write(
        self,
        node: int,
        entries: list[tuple[_TopicState, _PartitionState, _Batch]],
        request: Any,
        before: asyncio.Future[BaseException | None] | None,
        written: asyncio.Future[BaseException | None],
    ) -> tuple[BrokerConnection, asyncio.Future[Any] | None]:
        """Write a Produce request to ``node`` once the one made before it for that node was
        written (``before``); ``written`` is then told this one was, or why it was not.

        A partition's batches must reach the broker in sequence order, and the requests of one
        node are made in that order, but several may wait together for the node's connection
        to open, and would wake in any order; one that cannot be written fails the ones after
        it the same way, so they are retried together, in order. Nor is a batch written on a
        new connection while an earlier batch of its partition, written on one since lost, has
        no outcome: it fails and is retried after it (else it could land first, and more than
        the broker remembers could land before the earlier one's retry, which the broker would
        no longer know for a duplicate)."""
        try:
            if before is not None:
                earlier = await asyncio.shield(before)
                if earlier is not None:
                    raise earlier
            connection = await self._connection.cluster.connection(
                node, self._channel, client_id=self.client_id
            )
            for _, target, batch in entries:
                if target.retry or any(
                    other.sent_on is not None and other.sent_on is not connection
                    for other in target.inflight
                ):
                    # an earlier batch of the partition went out on a connection since lost,
                    # its outcome unknown: this one waits to follow its retry
                    raise BrokerUnavailableError(
                        f"the connection to broker {node} was lost with a batch of "
                        f"{batch.topic}-{batch.partition} in flight"
                    )
            pending = connection.send(ApiKey.PRODUCE, request, expect_response=self._acks != 0)
            for _, _, batch in entries:
                batch.sent_on = connection
        except asyncio.CancelledError:
            if not written.done():
                written.set_result(BrokerUnavailableError("the producer was closed"))
            raise
        except BaseException as exc:
            if not written.done():
                written.set_result(exc)
            raise
        finally:
            if self._writing.get(node) is written:
                del self._writing[node]
        written.set_result(None)
        return connection, pending

    def _finish(self, target: _PartitionState, batch: _Batch) -> None:
        with contextlib.suppress(ValueError):
            target.inflight.remove(batch)
        self._release_retries(target)

    def _retry(
        self, target: _PartitionState, batch: _Batch, error: BaseException, refresh: bool
    ) -> None:
        with contextlib.suppress(ValueError):
            target.inflight.remove(batch)
        if time.monotonic() >= batch.deadline:
            self._fail(batch, error)
            self._release_retries(target)
            return
        log.debug("retrying %s-%d after %s", batch.topic, batch.partition, error)
        target.retry.append(batch)
        target.refresh = target.refresh or refresh
        self._release_retries(target)

    def _release_retries(self, target: _PartitionState) -> None:
        """Once nothing of the partition is in flight, its failed batches go first again."""
        if target.inflight or not target.retry:
            return
        retry = sorted(target.retry, key=lambda b: b.base_sequence)
        target.retry = []
        target.queue.extendleft(reversed(retry))
        asyncio.get_running_loop().call_later(_RETRY_BACKOFF_S, self._schedule_pump)

    async def _refresh_then_pump(self, topic: str) -> None:
        try:
            await self._connection.cluster.refresh([topic])
        except Exception as exc:
            log.debug("metadata refresh of %s failed: %s", topic, exc)
            await asyncio.sleep(_RETRY_BACKOFF_S)
        finally:
            self._refreshing.discard(topic)
        state = self._topics.get(topic)
        if state is None:
            return
        for part in state.partitions:
            part.refresh = False
        if topic not in self._connection.cluster.topics:
            error = error_for(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"write to {topic!r}")
            for part in state.partitions:
                while part.queue:
                    self._fail(part.queue.popleft(), error)
        self._schedule_pump()

    async def _init_producer_id(self) -> None:
        request = request_class(ApiKey.INIT_PRODUCER_ID)(
            transactional_id=None, transaction_timeout_ms=60_000
        )
        try:
            for attempt in range(50):
                try:
                    answer = await self._connection.cluster.request(
                        ApiKey.INIT_PRODUCER_ID, request
                    )
                except BrokerUnavailableError:
                    await asyncio.sleep(_RETRY_BACKOFF_S * min(10, attempt + 1))
                    continue
                code = ErrorCode.for_code(answer.error_code)  # type: ignore[attr-defined]
                if code == ErrorCode.NONE:
                    self._producer_id = answer.producer_id  # type: ignore[attr-defined]
                    self._producer_epoch = answer.producer_epoch  # type: ignore[attr-defined]
                    for state in self._topics.values():
                        for part in state.partitions:
                            part.next_sequence = 0
                    self._need_pid = False
                    return
                if not code.retriable:
                    raise error_for(code, "get a producer id for idempotent writes")
                await asyncio.sleep(_RETRY_BACKOFF_S)
            raise StoreError("cannot get a producer id: the cluster kept refusing")
        except Exception as exc:
            for state in self._topics.values():
                for part in state.partitions:
                    while part.queue:
                        self._fail(part.queue.popleft(), exc)
        finally:
            self._pid_task = None
            self._schedule_pump()

    # --- outcomes ---------------------------------------------------------------------------

    def _release(self, batch: _Batch) -> None:
        """Its records leave the buffer (the batch has its outcome)."""
        self._buffered -= batch.held
        batch.held = 0

    def _succeed(self, batch: _Batch, base_offset: int, append_time: int) -> None:
        self._unfinished.discard(batch)
        self._release(batch)
        batch.base_offset = base_offset
        batch.append_time = append_time
        if not batch.future.done():
            batch.future.set_result(None)

    def _fail(self, batch: _Batch, error: BaseException) -> None:
        self._unfinished.discard(batch)
        self._release(batch)
        if not batch.future.done():
            batch.future.set_exception(error)
        self._failed.append(batch)
        state = self._topics.get(batch.topic)
        if state is not None and batch.partition < state.count:
            target = state.partitions[batch.partition]
            if target.halted is None:
                target.halted = batch
            # later batches must not land behind a lost one
            while target.queue:
                later = target.queue.popleft()
                self._unfinished.discard(later)
                self._release(later)
                if not later.future.done():
                    later.future.set_exception(error)
                self._failed.append(later)

    def _spawn(self, coroutine: Any) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- flushing and closing ---------------------------------------------------------------

    def _seal_all(self) -> None:
        for state in list(self._topics.values()):
            for partition, batch in enumerate(state.open):
                if batch is not None:
                    self._seal(state, partition)

    async def flush(self) -> None:
        while self._waiting:
            await asyncio.wait([f for w in self._waiting.values() for _, f in w])
        self._seal_all()
        while self._unfinished:
            self._seal_all()
            await asyncio.wait([b.future for b in self._unfinished])
        late, self._late = self._late, []
        failed, self._failed = self._failed, []
        first: BaseException | None = None
        for delivery in late:
            error = delivery._future.exception()
            if first is None and error is not None and not delivery.awaited:
                first = error
        for batch in failed:
            error = batch.future.exception()
            if first is None and not batch.awaited:
                first = error
        for state in self._topics.values():
            for part in state.partitions:
                if part.halted is not None:
                    part.halted = None
                    self._need_pid = self._idempotent
        if first is not None:
            raise first

    def follow_partitions(self) -> None:
        """Drop what is known of topics whose partition count changed (after a metadata
        refresh), once they hold nothing unsent: the next send routes over the new count."""
        topics = self._connection.cluster.topics
        for name, state in list(self._topics.items()):
            info = topics.get(name)
            if info is not None and info.partitions != state.count:
                self.forget_topic(name)

    def forget_topic(self, topic: str) -> None:
        """Drop what is known of ``topic`` (it was altered or deleted); open batches are sealed."""
        state = self._topics.get(topic)
        if state is None:
            return
        for partition, batch in enumerate(state.open):
            if batch is not None:
                self._seal(state, partition)
        if not any(p.queue or p.inflight or p.retry for p in state.partitions):
            del self._topics[topic]

    async def close(self) -> None:
        if self._closed:
            return
        try:
            await self.flush()
        finally:
            self._closed = True
            self._topics.clear()
            tasks = list(self._tasks)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self._connection.cluster.close_channel(self._channel)
            self._connection.forget_producer(self)
