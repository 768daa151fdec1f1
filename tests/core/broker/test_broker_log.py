"""The broker's log APIs through a real socket: produce, fetch, list offsets, idempotence."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest
from broker_wire import Wire, batch, request

from millstream.core.log import Compression
from millstream.core.log.batch import read_header
from millstream.core.protocol import ApiKey, ErrorCode

PRODUCE, FETCH, LIST_OFFSETS, METADATA = ApiKey.PRODUCE, ApiKey.FETCH, ApiKey.LIST_OFFSETS, 3


def topic_name() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def wire(broker_session):
    wire = await Wire.connect(broker_session.host, broker_session.port)
    yield wire
    await wire.close()


async def create(wire: Wire, name: str, partitions: int = 1, **configs: str) -> None:
    body = request(
        ApiKey.CREATE_TOPICS,
        topics=[
            request(ApiKey.CREATE_TOPICS).Topics(
                name=name,
                num_partitions=partitions,
                replication_factor=1,
                assignments=[],
                configs=[
                    request(ApiKey.CREATE_TOPICS).Topics.Configs(name=k.replace("_", "."), value=v)
                    for k, v in configs.items()
                ],
            )
        ],
        timeout_ms=1000,
    )
    response = await wire.call(ApiKey.CREATE_TOPICS, 4, body)
    assert response.topics[0].error_code == 0, response


def produce_body(topic: str, records: bytes | None, partition: int = 0, acks: int = -1):
    cls = request(PRODUCE).__class__
    return cls(
        acks=acks,
        timeout_ms=5000,
        topic_data=[
            cls.TopicData(
                name=topic, partition_data=[cls.TopicData.PartitionData(partition, records)]
            )
        ],
    )


async def produce(wire: Wire, topic: str, records: bytes, partition: int = 0, version: int = 8):
    response = await wire.call(PRODUCE, version, produce_body(topic, records, partition))
    return response.responses[0].partition_responses[0]


def fetch_body(
    topic: str,
    offset: int,
    *,
    partition: int = 0,
    max_wait_ms: int = 0,
    min_bytes: int = 1,
    max_bytes: int = 1 << 20,
    partition_max_bytes: int = 1 << 20,
):
    cls = request(FETCH).__class__
    return cls(
        max_wait_ms=max_wait_ms,
        min_bytes=min_bytes,
        max_bytes=max_bytes,
        isolation_level=1,
        topics=[
            cls.Topics(
                topic=topic,
                partitions=[
                    cls.Topics.Partitions(
                        partition=partition,
                        fetch_offset=offset,
                        partition_max_bytes=partition_max_bytes,
                    )
                ],
            )
        ],
    )


async def fetch(wire: Wire, topic: str, offset: int, version: int = 11, **kwargs):
    response = await wire.call(FETCH, version, fetch_body(topic, offset, **kwargs))
    return response.responses[0].partitions[0]


def batches_of(records: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(records):
        size = read_header(records, pos).size
        out.append(records[pos : pos + size])
        pos += size
    return out


async def test_api_versions_lists_what_is_served_and_falls_back_for_unknown_versions(wire):
    response = await wire.call(ApiKey.API_VERSIONS, 3, request(ApiKey.API_VERSIONS))
    ranges = {k.api_key: (k.min_version, k.max_version) for k in response.api_keys}
    assert response.error_code == 0
    assert ranges[PRODUCE] == (0, 8)
    assert ranges[FETCH] == (4, 11)
    assert ranges[ApiKey.INIT_PRODUCER_ID] == (0, 1)
    # a version the broker does not know: a v0 answer with UNSUPPORTED_VERSION
    header = wire.send(ApiKey.API_VERSIONS, 0, request(ApiKey.API_VERSIONS))
    header.api_version = 0
    fallback = await wire.receive(header)
    assert fallback.error_code == 0  # v0 is served
    wire.writer.write(
        # ApiVersions v9: size, key 18, version 9, correlation 77, client id "", no tags
        (11).to_bytes(4, "big") + b"\x00\x12\x00\x09" + (77).to_bytes(4, "big") + b"\x00\x00\x00"
    )
    header.correlation_id, header.api_version = 77, 0
    fallback = await wire.receive(header)
    assert fallback.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert [k.api_key for k in fallback.api_keys] == [ApiKey.API_VERSIONS]


async def test_metadata_auto_creates_a_topic_led_by_this_node(wire, broker_session):
    name = topic_name()
    cls = request(METADATA).__class__
    response = await wire.call(METADATA, 8, cls(topics=[cls.Topics(name=name)]))
    assert [(b.node_id, b.host, b.port) for b in response.brokers] == [
        (0, "127.0.0.1", broker_session.port)
    ]
    assert response.controller_id == 0
    topic = response.topics[0]
    assert (topic.name, topic.error_code) == (name, 0)
    (partition,) = topic.partitions
    assert (partition.leader_id, partition.leader_epoch) == (0, 0)
    assert partition.replica_nodes == partition.isr_nodes == [0]
    everything = await wire.call(METADATA, 8, cls(topics=None))
    assert name in {t.name for t in everything.topics}
    invalid = await wire.call(METADATA, 8, cls(topics=[cls.Topics(name="bad name!")]))
    assert invalid.topics[0].error_code == ErrorCode.INVALID_TOPIC_EXCEPTION


async def test_produce_then_fetch_returns_the_batches_as_they_came(wire):
    name = topic_name()
    await create(wire, name)
    sent = [
        batch(b"a", b"b", compression=Compression.NONE),
        batch(b"c" * 500, b"d" * 500, compression=Compression.ZSTD),
        batch(b"e", compression=Compression.LZ4),
    ]
    offsets = [(await produce(wire, name, raw)) for raw in sent]
    assert [(p.error_code, p.base_offset) for p in offsets] == [(0, 0), (0, 2), (0, 4)]
    part = await fetch(wire, name, 0)
    assert (part.error_code, part.high_watermark, part.last_stable_offset) == (0, 5, 5)
    assert part.log_start_offset == 0
    got = batches_of(part.records)
    assert len(got) == 3
    for offset, original, served in zip((0, 2, 4), sent, got, strict=True):
        assert read_header(served).base_offset == offset
        assert served[12:] == original[12:]  # only baseOffset changed; the rest byte for byte
    # a fetch from inside a batch returns that whole batch
    middle = await fetch(wire, name, 3)
    assert read_header(middle.records).base_offset == 2


async def test_bad_batches_get_per_partition_errors(wire):
    name = topic_name()
    await create(wire, name, max_message_bytes="200")
    corrupt = bytearray(batch(b"x"))
    corrupt[-1] ^= 0xFF
    assert (await produce(wire, name, bytes(corrupt))).error_code == ErrorCode.CORRUPT_MESSAGE
    assert (await produce(wire, name, b"\x00" * 10)).error_code == ErrorCode.CORRUPT_MESSAGE
    big = batch(b"y" * 400)
    assert (await produce(wire, name, big)).error_code == ErrorCode.MESSAGE_TOO_LARGE
    unknown = await produce(wire, topic_name(), batch(b"z"))
    assert unknown.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    beyond = await produce(wire, name, batch(b"z"), partition=5)
    assert beyond.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
    internal = await produce(wire, "__consumer_offsets", batch(b"z"))
    assert internal.error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    old = await produce(wire, name, batch(b"z"), version=2)
    assert old.error_code == ErrorCode.UNSUPPORTED_VERSION
    two = await produce(wire, name, batch(b"one") + batch(b"two"))  # v3+: one batch only
    assert two.error_code == ErrorCode.INVALID_RECORD
    assert (await produce(wire, name, batch(b"ok"))).base_offset == 0  # nothing was written


async def test_acks_zero_gets_no_response_and_pipelined_requests_are_answered_in_order(wire):
    name = topic_name()
    await create(wire, name)
    wire.send(PRODUCE, 8, produce_body(name, batch(b"silent"), acks=0))
    headers = [wire.send(PRODUCE, 8, produce_body(name, batch(b"%d" % i))) for i in range(20)]
    await wire.writer.drain()
    offsets = []
    for header in headers:
        response = await wire.receive(header)  # correlation ids checked: one by one, in order
        offsets.append(response.responses[0].partition_responses[0].base_offset)
    assert offsets == list(range(1, 21))


async def test_fetch_long_polls_until_data_arrives(wire, broker_session):
    name = topic_name()
    await create(wire, name)
    empty_started = time.monotonic()
    empty = await fetch(wire, name, 0, max_wait_ms=300)
    assert empty.records == b"" and time.monotonic() - empty_started >= 0.25
    other = await Wire.connect(broker_session.host, broker_session.port)
    try:
        started = time.monotonic()
        pending = asyncio.ensure_future(fetch(wire, name, 0, max_wait_ms=10_000))
        await asyncio.sleep(0.3)
        assert not pending.done()
        await produce(other, name, batch(b"wake"))
        part = await asyncio.wait_for(pending, 5)
        assert time.monotonic() - started < 5
        assert part.high_watermark == 1 and read_header(part.records).record_count == 1
    finally:
        await other.close()


async def test_fetch_sizes_whole_batches_and_always_at_least_one(wire):
    name = topic_name()
    await create(wire, name)
    for i in range(5):
        await produce(wire, name, batch(bytes([65 + i]) * 1000))
    size = len(batch(b"A" * 1000))
    one = await fetch(wire, name, 0, partition_max_bytes=100)  # less than a batch: still one
    assert len(batches_of(one.records)) == 1
    two = await fetch(wire, name, 0, partition_max_bytes=2 * size + 10)
    assert len(batches_of(two.records)) == 2
    capped = await fetch(wire, name, 0, max_bytes=3 * size + 10)
    assert len(batches_of(capped.records)) == 3
    out_of_range = await fetch(wire, name, 99)
    assert out_of_range.error_code == ErrorCode.OFFSET_OUT_OF_RANGE


async def test_list_offsets_earliest_latest_and_by_time(wire):
    name = topic_name()
    await create(wire, name)
    now = int(time.time() * 1000)
    from millstream.core.log import encode_batch
    from millstream.core.record import Record

    for i, ts in enumerate((now - 3000, now - 2000, now - 1000)):
        await produce(wire, name, bytes(encode_batch([Record(b"k", b"%d" % i, timestamp=ts)])))
    cls = request(LIST_OFFSETS).__class__

    async def at(timestamp: int):
        body = cls(
            replica_id=-1,
            topics=[cls.Topics(name=name, partitions=[cls.Topics.Partitions(0, -1, timestamp)])],
        )
        response = await wire.call(LIST_OFFSETS, 5, body)
        return response.topics[0].partitions[0]

    assert (await at(-2)).offset == 0
    assert (await at(-1)).offset == 3
    found = await at(now - 2500)
    assert (found.offset, found.timestamp) == (1, now - 2000)
    assert (await at(now + 60_000)).offset == -1


async def test_idempotent_producer_duplicates_and_gaps(wire):
    name = topic_name()
    await create(wire, name)
    init = await wire.call(
        ApiKey.INIT_PRODUCER_ID, 1, request(ApiKey.INIT_PRODUCER_ID, transactional_id=None)
    )
    assert init.error_code == 0 and init.producer_id >= 0
    pid = init.producer_id

    def seq_batch(sequence: int, *values: bytes) -> bytes:
        return batch(*values, producer_id=pid, producer_epoch=0, base_sequence=sequence)

    first = await produce(wire, name, seq_batch(0, b"a", b"b"))
    second = await produce(wire, name, seq_batch(2, b"c"))
    assert (first.base_offset, second.base_offset) == (0, 2)
    again = await produce(wire, name, seq_batch(0, b"a", b"b"))
    assert (again.error_code, again.base_offset) == (0, 0)
    gap = await produce(wire, name, seq_batch(7, b"z"))
    assert gap.error_code == ErrorCode.OUT_OF_ORDER_SEQUENCE_NUMBER
    assert (await fetch(wire, name, 0)).high_watermark == 3
    other = await wire.call(
        ApiKey.INIT_PRODUCER_ID, 1, request(ApiKey.INIT_PRODUCER_ID, transactional_id=None)
    )
    assert other.producer_id != pid


async def test_a_slow_request_holds_back_the_answers_behind_it(wire):
    name = topic_name()
    await create(wire, name)
    slow = wire.send(FETCH, 11, fetch_body(name, 0, max_wait_ms=400))
    fast = wire.send(METADATA, 8, request(METADATA, topics=None))
    await wire.writer.drain()
    started = asyncio.get_running_loop().time()
    first = await wire.receive(slow)  # correlation ids checked: the fetch is answered first
    assert first.responses[0].partitions[0].records == b""
    assert (await wire.receive(fast)).brokers
    assert asyncio.get_running_loop().time() - started >= 0.35
