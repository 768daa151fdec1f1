"""``/topics/{name}/records`` and ``/topics/{name}/partitions/{partition}/records``.

Posting records encodes them as the topic's codec stores values, puts them in one batch per
partition and hands that to the broker's own Produce handler with ``acks=all``: the answer comes
once the batches are durable, as a Kafka producer's would, and the records are counted in the
broker's metrics like any others. A record without a partition goes where Kafka's clients would
put its key (murmur2); keyless records of one request all go to one partition picked at random
(sticky, as KIP-480's producers do).

Reading goes through the broker's Fetch handler, so a read with ``timeout_ms`` long-polls on the
partition's append notification exactly as a Kafka consumer's fetch does.
How keys and values are written and shown is :mod:`.record_values`.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from ...client.partitioner import partition_for_key
from ...errors import CorruptBatchError
from ...log import encode_batch
from ...log.batch import BATCH_OVERHEAD, HEADER_SIZE, decode_records, read_header
from ...protocol import ApiKey, ErrorCode, RequestHeader, request_class
from ...record import Record, StoredRecord
from ..log_apis import partition_error
from .bodies import STOPPING, broker_of, json_response, partition_param, read_json, read_query
from .errors import RestError, from_error_code
from .models import (
    ProducedOffset,
    ProduceRecord,
    ProduceRequest,
    ProduceResponse,
    RecordsPage,
    RecordsQuery,
)
from .record_values import from_stored, to_record, topic_codec
from .topics import topic_of

__all__ = ["routes"]

_PRODUCE: Any = request_class(ApiKey.PRODUCE)
_FETCH: Any = request_class(ApiKey.FETCH)
_PRODUCE_BODY: TypeAdapter[list[ProduceRecord]] = TypeAdapter(ProduceRequest)
_FETCH_BYTES = 1 << 20


async def post_records(request: web.Request) -> web.Response:
    topic = topic_of(request)
    records = await read_json(request, _PRODUCE_BODY)
    codec = topic_codec(topic)
    count = len(topic.partitions)
    keyless = random.randrange(count)
    places: list[tuple[int, int]] = []  # (partition, index within its batch) per record
    by_partition: dict[int, list[Record]] = {}
    for i, record in enumerate(records):
        encoded = to_record(record, i, codec)
        if record.partition is not None:
            if record.partition >= count:
                raise RestError(
                    404,
                    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.name,
                    f"body[{i}].partition: partition {record.partition} does not exist in topic "
                    f"{topic.name!r}; valid partitions are 0 to {count - 1}",
                )
            partition = record.partition
        elif encoded.key is not None:
            partition = partition_for_key(encoded.key, count)
        else:
            partition = keyless
        batch = by_partition.setdefault(partition, [])
        places.append((partition, len(batch)))
        batch.append(encoded)
    batches = {p: bytes(encode_batch(group)) for p, group in sorted(by_partition.items())}
    limit = topic.config.max_message_bytes
    for p, encoded_batch in batches.items():
        if len(encoded_batch) > limit:
            raise RestError(
                413,
                ErrorCode.MESSAGE_TOO_LARGE.name,
                f"the records for {topic.name}-{p} make a batch of {len(encoded_batch)} bytes, "
                f"above the topic's max.message.bytes={limit}; send fewer or smaller records",
            )
    body = _PRODUCE(
        transactional_id=None,
        acks=-1,
        timeout_ms=30_000,
        topic_data=[
            _PRODUCE.TopicData(
                name=topic.name,
                partition_data=[
                    _PRODUCE.TopicData.PartitionData(index=p, records=data)
                    for p, data in batches.items()
                ],
            )
        ],
    )
    broker = broker_of(request)
    answer = await broker.handlers[ApiKey.PRODUCE](
        RequestHeader(ApiKey.PRODUCE, 8, 0, "rest"), body
    )
    bases: dict[int, int] = {}
    for result in answer.responses[0].partition_responses:
        if result.error_code:
            code_name = ErrorCode.for_code(result.error_code).name
            message = getattr(result, "error_message", None) or code_name
            raise from_error_code(
                result.error_code, f"records for {topic.name}-{result.index}: {message}"
            )
        bases[result.index] = result.base_offset
    offsets = [ProducedOffset(partition=p, offset=bases[p] + n) for p, n in places]
    return json_response(ProduceResponse(offsets=offsets))


async def get_records(request: web.Request) -> web.Response:
    topic = topic_of(request)
    index = partition_param(request)
    params = read_query(request, RecordsQuery)
    try:
        partition = topic.partition(index)
    except Exception as exc:
        raise from_error_code(partition_error(exc), str(exc)) from None
    offset = partition.log_start_offset if params.offset is None else params.offset
    body = _FETCH(
        replica_id=-1,
        max_wait_ms=params.timeout_ms,
        min_bytes=1,
        max_bytes=_FETCH_BYTES,
        isolation_level=0,
        topics=[
            _FETCH.Topics(
                topic=topic.name,
                partitions=[
                    _FETCH.Topics.Partitions(
                        partition=index,
                        fetch_offset=offset,
                        partition_max_bytes=_FETCH_BYTES,
                    )
                ],
            )
        ],
    )
    answer = await _fetch(request, body)
    result = answer.responses[0].partitions[0]
    if result.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:
        raise RestError(
            400,
            ErrorCode.OFFSET_OUT_OF_RANGE.name,
            f"query.offset: offset {offset} is out of range for {topic.name}-{index}; valid "
            f"offsets are {partition.log_start_offset} to {partition.high_watermark}",
        )
    if result.error_code:
        raise from_error_code(result.error_code, f"reading {topic.name}-{index} failed")
    stored = _decode(result.records, topic.name, index, offset, params.limit)
    codec = topic_codec(topic)
    records = [from_stored(r, codec) for r in stored]
    next_offset = stored[-1].offset + 1 if stored else offset
    return json_response(
        RecordsPage(
            topic=topic.name,
            partition=index,
            records=records,
            next_offset=next_offset,
            high_watermark=result.high_watermark,
        )
    )


async def _fetch(request: web.Request, body: Any) -> Any:
    """The broker's Fetch answer to ``body``; a long poll ends at once when the server stops."""
    fetch = broker_of(request).handlers[ApiKey.FETCH]
    header = RequestHeader(ApiKey.FETCH, 11, 0, "rest")
    stopping = request.app[STOPPING]
    if body.max_wait_ms == 0 or stopping.is_set():
        return await fetch(header, body)
    polling = asyncio.ensure_future(fetch(header, body))
    stopped = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait((polling, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopped.cancel()
    if polling.done():
        return polling.result()
    polling.cancel()
    body.max_wait_ms = 0
    return await fetch(header, body)


def _decode(
    data: bytes | None, topic: str, index: int, offset: int, limit: int
) -> list[StoredRecord]:
    out: list[StoredRecord] = []
    if not data:
        return out
    view = memoryview(data)
    pos = 0
    while pos + HEADER_SIZE <= len(data) and len(out) < limit:
        header = read_header(view, pos)
        end = pos + header.batch_length + BATCH_OVERHEAD
        if end > len(data):
            break
        try:
            out.extend(decode_records(view[pos:end], topic, index, min_offset=offset))
        except CorruptBatchError as exc:
            raise RestError(500, "CORRUPT_MESSAGE", f"{topic}-{index}: {exc}") from None
        pos = end
    del out[limit:]
    return out


def routes() -> list[web.RouteDef]:
    return [
        web.post("/topics/{name}/records", post_records),
        web.get("/topics/{name}/partitions/{partition}/records", get_records, allow_head=False),
    ]
