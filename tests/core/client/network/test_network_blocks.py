"""The network consumer's batch-level read (getmany_blocks) against a real ``millstream broker``:
the same records as getmany, and what a block leaves of a batch read next by every way."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from millstream.core import Record
from millstream.core.client import Connection, Consumer, connect
from millstream.core.record import TopicPartition


@pytest.fixture
async def conn(remote) -> AsyncIterator[Connection]:
    connection = await connect(remote.url)
    yield connection
    await connection.close()


async def topic_of(conn: Connection, batches: list[int], partitions: int = 1) -> str:
    """A fresh topic holding batches of the given sizes, values counting up from 0."""
    topic = f"blocks-{uuid.uuid4().hex[:10]}"
    await conn.admin().create_topic(topic, partitions)
    start = 0
    async with conn.producer() as producer:
        for size in batches:
            await producer.send_batch(
                topic, [Record(None, b"%d" % i) for i in range(start, start + size)], partition=0
            )
            start += size
    return topic


async def test_blocks_span_batches_and_keep_what_they_leave(conn: Connection) -> None:
    topic = await topic_of(conn, [300, 5, 400])
    tp = TopicPartition(topic, 0)
    consumer = conn.consumer()
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)
    got: list[int] = []
    while len(got) < 705:
        blocks = await consumer.getmany_blocks(timeout_ms=2000, max_records=250)
        assert blocks, f"no block after {len(got)} records"
        block = blocks[tp]
        assert len(block) <= 250
        assert (block.topic, block.partition) == (topic, 0)
        assert list(block.offsets) == list(range(len(got), len(got) + len(block)))
        assert consumer.position(tp) == block.offsets[-1] + 1
        got += [int(v) for v in block.values]  # type: ignore[arg-type]
    assert got == list(range(705))
    await consumer.close()


async def test_what_a_block_leaves_of_a_batch_is_read_next_by_every_way(conn: Connection) -> None:
    topic = await topic_of(conn, [100])
    tp = TopicPartition(topic, 0)
    consumer = conn.consumer()
    consumer.assign([tp])
    await consumer.seek_to_beginning(tp)

    async def block(n: int) -> list[int]:
        got = await consumer.getmany_blocks(timeout_ms=2000, max_records=n)
        return [int(v) for v in got[tp].values]  # type: ignore[arg-type]

    assert await block(10) == list(range(10))
    assert int((await consumer.__anext__()).value) == 10  # type: ignore[arg-type]
    assert await block(5) == list(range(11, 16))
    assert await block(3) == [16, 17, 18]
    got = await consumer.getmany(timeout_ms=2000, max_records=2)
    assert [int(r.value) for r in got[tp]] == [19, 20]  # type: ignore[arg-type]
    defaults = await Consumer.getmany_blocks(consumer, timeout_ms=2000, max_records=4)
    assert [int(v) for v in defaults[tp].values] == [21, 22, 23, 24]  # type: ignore[arg-type]
    assert await block(1000) == list(range(25, 100))
    consumer.seek(tp, 50)
    assert await block(1000) == list(range(50, 100))
    await consumer.close()


async def test_fetching_ahead_loses_and_repeats_nothing(conn: Connection) -> None:
    """Partitions of several fetches each (1 MiB a fetch), read in turns of getmany and
    getmany_blocks while the next fetch runs ahead: every record once, in order."""
    topic = f"ahead-{uuid.uuid4().hex[:10]}"
    await conn.admin().create_topic(topic, 3)
    pad = b"p" * 500
    async with conn.producer() as producer:
        for p in range(3):
            for start in range(0, 4000, 1000):
                await producer.send_batch(
                    topic,
                    [Record(None, b"%d:%s" % (i, pad)) for i in range(start, start + 1000)],
                    partition=p,
                )
    tps = [TopicPartition(topic, p) for p in range(3)]
    consumer = conn.consumer()
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    got: dict[int, list[int]] = {p: [] for p in range(3)}
    turn = 0
    while sum(map(len, got.values())) < 12_000:
        turn += 1
        if turn % 2:
            blocks = await consumer.getmany_blocks(timeout_ms=2000, max_records=777)
            assert blocks
            for tp, block in blocks.items():
                got[tp.partition] += [int(v.split(b":")[0]) for v in block.values]  # type: ignore[union-attr]
        else:
            batches = await consumer.getmany(timeout_ms=2000, max_records=777)
            assert batches
            for tp, records in batches.items():
                got[tp.partition] += [int(r.value.split(b":")[0]) for r in records]  # type: ignore[union-attr]
    assert got == {p: list(range(4000)) for p in range(3)}
    assert [consumer.position(tp) for tp in tps] == [4000] * 3
    await consumer.close()
