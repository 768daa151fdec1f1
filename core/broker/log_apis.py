"""Handlers of the log's APIs: Produce, Fetch, ListOffsets, OffsetForLeaderEpoch, InitProducerId.

Produce checks each batch's framing (length, magic, CRC-32C), rewrites only ``baseOffset`` and
``partitionLeaderEpoch``, and appends it as it came (records are never parsed, compression is
kept). Fetch serves whole batches, at least one even above the size limits (KIP-74), and long-
polls by waiting on the partitions' append notification.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from ..errors import (
    CorruptBatchError,
    InvalidOffsetError,
    InvalidPartitionsError,
    InvalidTopicError,
    RecordTooLargeError,
    StoreClosedError,
    StoreError,
    UnknownTopicError,
)
from ..log import LogStore, Partition
from ..log.batch import (
    BATCH_OVERHEAD,
    HEADER_SIZE,
    BatchHeader,
    set_partition_leader_epoch,
    validate_batch,
)
from ..protocol import ApiKey, ErrorCode, RequestHeader, response_class
from .handler import BrokerContext, Handler
from .metrics import BrokerMetrics
from .producers import BROKER_TOPICS, Check, ProducerIds, SequenceState, is_idempotent

__all__ = ["LEADER_EPOCH", "LogApis", "partition_error"]

LEADER_EPOCH = 0
"""The one leader epoch of a single-node broker."""

_log = logging.getLogger("millstream.broker")

_PRODUCE: Any = response_class(ApiKey.PRODUCE)
_FETCH: Any = response_class(ApiKey.FETCH)
_LIST_OFFSETS: Any = response_class(ApiKey.LIST_OFFSETS)
_EPOCHS: Any = response_class(ApiKey.OFFSET_FOR_LEADER_EPOCH)
_INIT_PID: Any = response_class(ApiKey.INIT_PRODUCER_ID)


def partition_error(exc: Exception) -> ErrorCode:
    """The Kafka error code for a store error met while serving one partition."""
    if isinstance(exc, InvalidTopicError):
        return ErrorCode.INVALID_TOPIC_EXCEPTION
    if isinstance(exc, UnknownTopicError | InvalidPartitionsError | StoreClosedError):
        return ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    if isinstance(exc, RecordTooLargeError):
        return ErrorCode.MESSAGE_TOO_LARGE
    if isinstance(exc, CorruptBatchError):
        return ErrorCode.CORRUPT_MESSAGE
    if isinstance(exc, InvalidOffsetError):
        return ErrorCode.OFFSET_OUT_OF_RANGE
    if isinstance(exc, StoreError):
        return ErrorCode.KAFKA_STORAGE_ERROR
    return ErrorCode.UNKNOWN_SERVER_ERROR


def _partition(store: LogStore, topic: str, index: int) -> Partition:
    return store.topic(topic).partition(index)


def _split_batches(records: bytes) -> list[tuple[bytearray, BatchHeader]]:
    """The batches of a produce request's records, each checked once (length, magic, CRC),
    copied once and with its partitionLeaderEpoch set, beside its header; CorruptBatchError
    names what is wrong."""
    batches = []
    pos, end = 0, len(records)
    if end == 0:
        raise CorruptBatchError("the request holds no record batch")
    view = memoryview(records)
    while pos < end:
        if end - pos < HEADER_SIZE:
            raise CorruptBatchError(f"{end - pos} stray bytes after the last batch")
        header = validate_batch(view, pos, end)
        size = header.batch_length + BATCH_OVERHEAD
        batch = bytearray(view[pos : pos + size])
        set_partition_leader_epoch(batch, LEADER_EPOCH)
        batches.append((batch, header._replace(partition_leader_epoch=LEADER_EPOCH)))
        pos += size
    return batches


class LogApis:
    """The log handlers of one broker, sharing its producer ids and sequence state."""

    def __init__(self, ctx: BrokerContext, metrics: BrokerMetrics | None = None) -> None:
        self.ctx = ctx
        self.metrics = metrics if metrics is not None else BrokerMetrics()
        """Told of the batches produced and fetched, per topic."""
        self.producer_ids = ProducerIds(ctx.store)
        self.sequences = SequenceState(
            ctx.config.producer_expiration_s, ctx.config.max_producers_per_partition
        )
        self._load_gate = asyncio.Lock()
        self._gated = 0  # Produce requests holding or waiting for the gate
        self.stopping = asyncio.Event()
        """Set on shutdown: long-polling fetches return at once with what they have."""

    def start(self) -> None:
        """Load what must be known before serving (the producer id blocks)."""
        self.producer_ids.load()

    def handlers(self) -> dict[int, Handler]:
        return {
            ApiKey.PRODUCE: self.produce,
            ApiKey.FETCH: self.fetch,
            ApiKey.LIST_OFFSETS: self.list_offsets,
            ApiKey.OFFSET_FOR_LEADER_EPOCH: self.offset_for_leader_epoch,
            ApiKey.INIT_PRODUCER_ID: self.init_producer_id,
        }

    # --- Produce ------------------------------------------------------------------------------

    async def produce(self, header: RequestHeader, body: Any) -> Any:
        acks = body.acks
        if body.transactional_id is not None:
            return produce_error(body, ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        if acks not in (0, 1, -1):
            return produce_error(body, ErrorCode.INVALID_REQUIRED_ACKS)
        store = self.ctx.store
        responses = []
        waits: list[tuple[Any, asyncio.Future[None]]] = []
        async with self._in_order(body):
            for topic_data in body.topic_data:
                partitions = []
                for data in topic_data.partition_data:
                    out = _PRODUCE.Responses.PartitionResponses(
                        index=data.index, error_code=0, base_offset=-1, log_start_offset=-1
                    )
                    partitions.append(out)
                    try:
                        if topic_data.name in BROKER_TOPICS:
                            raise InvalidTopicError(
                                f"topic {topic_data.name!r} is the broker's own; clients cannot "
                                "write to it"
                            )
                        partition = _partition(store, topic_data.name, data.index)
                        if self._needs_state(partition, data.records):
                            await self.sequences.load(partition)  # in a thread: others go on
                        future = self._append(partition, data.records, out)
                    except Exception as exc:
                        out.error_code = partition_error(exc)
                        out.error_message = str(exc)
                        if out.error_code == ErrorCode.UNKNOWN_SERVER_ERROR:
                            _log.exception("produce to %s-%s failed", topic_data.name, data.index)
                        continue
                    if future is not None:
                        waits.append((out, future))
                        self.metrics.produced(topic_data.name, data.records)
                    out.log_start_offset = partition.log_start_offset
                responses.append(
                    _PRODUCE.Responses(name=topic_data.name, partition_responses=partitions)
                )
        if acks == 0:
            for _, future in waits:
                future.add_done_callback(_ignore_result)
            return None
        for out, future in waits:
            try:
                await future
            except Exception as exc:
                out.error_code = partition_error(exc)
                out.error_message = str(exc)
                out.base_offset = -1
        return _PRODUCE(responses=responses, throttle_time_ms=0)

    @contextlib.asynccontextmanager
    async def _in_order(self, body: Any) -> AsyncIterator[None]:
        """Around the appends of a Produce request. A request that loads a partition's sequence
        state waits for it part-way through its partitions; while one does, the requests after
        it wait their turn, so that a producer's pipelined batches are appended in the order
        they came (Kafka serves a connection's requests one at a time)."""
        if not (self._gated or self._must_load(body)):
            yield
            return
        self._gated += 1
        try:
            async with self._load_gate:
                yield
        finally:
            self._gated -= 1

    def _must_load(self, body: Any) -> bool:
        """Whether a partition of this Produce request has idempotent batches and no sequence
        state loaded yet."""
        for topic_data in body.topic_data:
            for data in topic_data.partition_data:
                with contextlib.suppress(Exception):
                    partition = _partition(self.ctx.store, topic_data.name, data.index)
                    if self._needs_state(partition, data.records):
                        return True
        return False

    def _needs_state(self, partition: Partition, records: bytes | None) -> bool:
        """Whether ``records`` are idempotent and ``partition``'s sequence state is not loaded."""
        return is_idempotent(records) and not self.sequences.loaded(partition)

    def _append(
        self, partition: Partition, records: bytes | None, out: Any
    ) -> asyncio.Future[None] | None:
        """Append the one batch of ``records``; fill ``out``; the future of its durability
        (None when it is refused with an error code in ``out``)."""
        if records is None:
            raise CorruptBatchError("the request holds no record batch")
        batches = _split_batches(records)
        if len(batches) > 1:  # as Kafka: Produce v3 and later carry one batch per partition
            out.error_code = ErrorCode.INVALID_RECORD
            out.error_message = (
                f"the request holds {len(batches)} record batches for {partition.name}; "
                "Produce v3 and later carry exactly one batch per partition"
            )
            return None
        batch, header = batches[0]
        max_bytes = partition.config.max_message_bytes
        if len(batch) > max_bytes:
            raise RecordTooLargeError(
                f"batch of {len(batch)} bytes for {partition.name} exceeds "
                f"max.message.bytes={max_bytes}"
            )
        idempotent = header.producer_id >= 0 and header.base_sequence >= 0
        if idempotent:
            verdict = self.sequences.check(partition, header)
            if verdict.check is Check.DUPLICATE:  # answered with the offsets it got first
                out.base_offset = verdict.base_offset
                return partition.durable(verdict.last_offset + 1)
            if verdict.check is not Check.APPEND:
                out.error_code = (
                    ErrorCode.INVALID_PRODUCER_EPOCH
                    if verdict.check is Check.FENCED
                    else ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
                )
                out.error_message = verdict.message
                return None
        result = partition.append(batch, checked=header)
        if idempotent:
            self.sequences.appended(partition, header, result.base_offset, result.last_offset)
        out.base_offset = result.base_offset
        out.log_append_time_ms = result.log_append_time
        return partition.durable(result.last_offset + 1)

    # --- Fetch --------------------------------------------------------------------------------

    async def fetch(self, header: RequestHeader, body: Any) -> Any:
        deadline = time.monotonic() + max(0, body.max_wait_ms) / 1000
        min_bytes = max(0, body.min_bytes)
        while True:
            response, total, waiting = self._read_fetch(body)
            remaining = deadline - time.monotonic()
            if total >= min_bytes or remaining <= 0 or not waiting or self.stopping.is_set():
                return self.metrics.fetched(response)
            if not await _wait_any(waiting, remaining, self.stopping):
                return self.metrics.fetched(self._read_fetch(body)[0])

    def _read_fetch(self, body: Any) -> tuple[Any, int, list[tuple[Partition, int]]]:
        store = self.ctx.store
        budget = min(
            body.max_bytes if body.max_bytes > 0 else 0x7FFFFFFF, self.ctx.config.fetch_max_bytes
        )
        total = 0
        waiting: list[tuple[Partition, int]] = []
        topics = []
        for request_topic in body.topics:
            partitions = []
            for request in request_topic.partitions:
                out = _FETCH.Responses.Partitions(
                    partition_index=request.partition,
                    error_code=0,
                    high_watermark=-1,
                    last_stable_offset=-1,
                    log_start_offset=-1,
                    aborted_transactions=[],
                    records=b"",
                )
                partitions.append(out)
                try:
                    partition = _partition(store, request_topic.topic, request.partition)
                    hw = partition.high_watermark
                    out.high_watermark = out.last_stable_offset = hw
                    out.log_start_offset = partition.log_start_offset
                    offset = request.fetch_offset
                    if offset < partition.log_start_offset or offset > partition.log_end_offset:
                        out.error_code = ErrorCode.OFFSET_OUT_OF_RANGE
                        continue
                    limit = min(max(request.partition_max_bytes, 0), budget - total)
                    if limit <= 0 and total > 0:
                        continue
                    records = partition.read_span(offset, max(limit, 1))
                    waiting.append((partition, max(offset, hw)))
                except Exception as exc:
                    out.error_code = partition_error(exc)
                    if out.error_code == ErrorCode.UNKNOWN_SERVER_ERROR:
                        _log.exception(
                            "fetch from %s-%s failed", request_topic.topic, request.partition
                        )
                    continue
                size = len(records)
                if not size:
                    continue
                if total > 0 and size > limit:
                    continue  # only the first partition with data may exceed the limits
                out.records = records  # a view of the bytes read: encoded without a copy per batch
                total += size
            topics.append(_FETCH.Responses(topic=request_topic.topic, partitions=partitions))
        response = _FETCH(throttle_time_ms=0, error_code=0, session_id=0, responses=topics)
        return response, total, waiting

    # --- ListOffsets, OffsetForLeaderEpoch, InitProducerId -----------------------------------

    async def list_offsets(self, header: RequestHeader, body: Any) -> Any:
        store = self.ctx.store
        topics = []
        for request_topic in body.topics:
            partitions = []
            for request in request_topic.partitions:
                out = _LIST_OFFSETS.Topics.Partitions(
                    partition_index=request.partition_index,
                    error_code=0,
                    timestamp=-1,
                    offset=-1,
                    leader_epoch=LEADER_EPOCH,
                )
                partitions.append(out)
                try:
                    partition = _partition(store, request_topic.name, request.partition_index)
                    if request.timestamp == -1:
                        out.offset = partition.high_watermark
                    elif request.timestamp == -2:
                        out.offset = partition.log_start_offset
                    elif request.timestamp < 0:
                        out.error_code = ErrorCode.INVALID_REQUEST
                    else:
                        found = partition.offset_for_timestamp(request.timestamp)
                        if found is not None:
                            out.offset = found
                            records = partition.read_records(found, 1)
                            out.timestamp = records[0].timestamp if records else -1
                except Exception as exc:
                    out.error_code = partition_error(exc)
            topics.append(_LIST_OFFSETS.Topics(name=request_topic.name, partitions=partitions))
        return _LIST_OFFSETS(throttle_time_ms=0, topics=topics)

    async def offset_for_leader_epoch(self, header: RequestHeader, body: Any) -> Any:
        store = self.ctx.store
        topics = []
        for request_topic in body.topics:
            partitions = []
            for request in request_topic.partitions:
                out = _EPOCHS.Topics.Partitions(
                    error_code=0, partition=request.partition, leader_epoch=-1, end_offset=-1
                )
                partitions.append(out)
                try:
                    partition = _partition(store, request_topic.topic, request.partition)
                except Exception as exc:
                    out.error_code = partition_error(exc)
                    continue
                if request.current_leader_epoch > LEADER_EPOCH:
                    out.error_code = ErrorCode.UNKNOWN_LEADER_EPOCH
                elif request.leader_epoch <= LEADER_EPOCH:
                    out.leader_epoch = LEADER_EPOCH
                    out.end_offset = partition.high_watermark
            topics.append(_EPOCHS.Topics(topic=request_topic.topic, partitions=partitions))
        return _EPOCHS(throttle_time_ms=0, topics=topics)

    async def init_producer_id(self, header: RequestHeader, body: Any) -> Any:
        if body.transactional_id is not None:
            return _INIT_PID(
                throttle_time_ms=0,
                error_code=ErrorCode.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                producer_id=-1,
                producer_epoch=-1,
            )
        producer_id = await self.producer_ids.allocate()
        return _INIT_PID(
            throttle_time_ms=0, error_code=0, producer_id=producer_id, producer_epoch=0
        )


def produce_error(body: Any, code: ErrorCode) -> Any:
    """A Produce response giving ``code`` for every partition of ``body``."""
    return _PRODUCE(
        responses=[
            _PRODUCE.Responses(
                name=t.name,
                partition_responses=[
                    _PRODUCE.Responses.PartitionResponses(
                        index=p.index, error_code=code, base_offset=-1
                    )
                    for p in t.partition_data
                ],
            )
            for t in body.topic_data
        ],
        throttle_time_ms=0,
    )


def _ignore_result(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()


async def _wait_any(
    waiting: list[tuple[Partition, int]], timeout_s: float, stopping: asyncio.Event
) -> bool:
    """Wait until one of the partitions has a record at or after its offset; False on timeout
    or when ``stopping`` is set."""
    tasks = [asyncio.ensure_future(p.wait_for_data(offset, timeout_s)) for p, offset in waiting]
    tasks.append(asyncio.ensure_future(stopping.wait()))
    try:
        done, _ = await asyncio.wait(tasks, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
    return (
        any(not t.cancelled() and t.exception() is None and t.result() is True for t in done)
        and not stopping.is_set()
    )
