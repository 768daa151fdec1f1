"""The embedded consumer: reading, seeking, committing and in-process groups."""

from __future__ import annotations

import asyncio
import contextlib
import random

import pytest

from millstream.core.client import Consumer
from millstream.core.errors import (
    CommitFailedError,
    InvalidOffsetError,
    StoreClosedError,
    StoreError,
    UnknownTopicError,
)
from millstream.core.record import Record
from millstream.core.record import TopicPartition as TP


async def produce(conn, topic, n, *, start=0, partition=None, timestamp=None, spread=0):
    """Send ``n`` records whose values count up from ``start``: to ``partition``, or round
    the first ``spread`` partitions, or where the producer puts them."""
    async with conn.producer() as producer:
        for i in range(start, start + n):
            where = i % spread if spread else partition
            producer.send(topic, b"%d" % i, partition=where, timestamp=timestamp)


def values(batches):
    return sorted(int(r.value) for records in batches.values() for r in records)


async def drain(consumer, expected, timeout_ms=2000):
    got = []
    while len(got) < expected:
        batches = await consumer.getmany(timeout_ms=timeout_ms)
        if not batches:
            break
        got += [int(r.value) for records in batches.values() for r in records]
    return got


async def test_a_group_consumer_reads_from_the_beginning_and_resumes_after_commit(conn):
    await conn.admin().create_topic("t", 3)
    await produce(conn, "t", 30)
    consumer = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
    assert sorted(await drain(consumer, 30)) == list(range(30))
    await consumer.commit()
    await consumer.close()
    await produce(conn, "t", 5, start=30)
    consumer = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
    assert sorted(await drain(consumer, 5)) == list(range(30, 35))
    await consumer.close()


async def test_records_come_in_offset_order_per_partition(conn):
    await conn.admin().create_topic("t", 2)
    await produce(conn, "t", 200, partition=0)
    consumer = conn.consumer(auto_offset_reset="earliest")
    consumer.assign([TP("t", 0)])
    offsets = []
    while len(offsets) < 200:
        batches = await consumer.getmany(timeout_ms=1000, max_records=7)
        assert sum(len(r) for r in batches.values()) <= 7
        for tp, records in batches.items():
            assert tp == TP("t", 0)
            assert all(r.topic == "t" and r.partition == 0 for r in records)
            offsets += [r.offset for r in records]
    assert offsets == list(range(200))
    assert consumer.position(TP("t", 0)) == 200


async def test_latest_is_the_default_and_getmany_waits_for_new_records(conn):
    await conn.admin().create_topic("t", 1)
    await produce(conn, "t", 10)
    consumer = conn.consumer(["t"], group="g")
    assert await consumer.getmany(timeout_ms=0) == {}
    later = asyncio.ensure_future(consumer.getmany(timeout_ms=5000))
    await asyncio.sleep(0.05)
    assert not later.done()
    await produce(conn, "t", 1, start=10)
    batches = await asyncio.wait_for(later, 5)
    assert values(batches) == [10]


async def test_getmany_times_out_empty(conn):
    await conn.admin().create_topic("t", 1)
    consumer = conn.consumer(["t"], group="g")
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await consumer.getmany(timeout_ms=100) == {}
    assert loop.time() - start >= 0.09


async def test_async_for_yields_records_and_advances_one_by_one(conn):
    await conn.admin().create_topic("t", 1)
    await produce(conn, "t", 20)
    consumer = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
    seen = []
    async for record in consumer:
        seen.append(int(record.value))
        if len(seen) == 5:
            break
    assert seen == [0, 1, 2, 3, 4]
    assert consumer.position(TP("t", 0)) == 5
    await consumer.commit()
    assert await consumer.committed(TP("t", 0)) == 5


async def test_getmany_gathers_many_small_batches_up_to_max_records(conn):
    # batches are decoded one at a time as they are wanted; a call still fills up to its limit
    await conn.admin().create_topic("t", 1)
    async with conn.producer() as producer:
        for start in range(0, 500, 10):  # fifty batches of ten records
            await producer.send_batch(
                "t", [Record(None, b"%d" % i) for i in range(start, start + 10)]
            )
    consumer = conn.consumer(auto_offset_reset="earliest")
    consumer.assign([TP("t", 0)])
    sizes, got = [], []
    while len(got) < 500:
        batches = await consumer.getmany(timeout_ms=1000, max_records=64)
        assert batches, "the consumer stopped before reading every record"
        records = batches[TP("t", 0)]
        sizes.append(len(records))
        got += [int(r.value) for r in records]
        assert consumer.position(TP("t", 0)) == records[-1].offset + 1
    assert got == list(range(500))
    assert sizes[:-1] == [64] * (len(sizes) - 1)
    consumer.seek(TP("t", 0), 95)  # inside a batch: the records before it are left out
    again = await consumer.getmany(timeout_ms=1000, max_records=3)
    assert [int(r.value) for r in again[TP("t", 0)]] == [95, 96, 97]
    await consumer.close()


async def test_blocks_hold_the_records_getmany_gives(conn):
    await conn.admin().create_topic("t", 3)
    rng = random.Random(3)
    sent = [
        Record(
            rng.choice([None, b"k%d" % rng.randrange(9)]),
            rng.choice([None, rng.randbytes(rng.randrange(300))]),
            rng.choice([(), (("h", b"1"), ("n", None))]),
            rng.choice([0, 1_700_000_000_000 + rng.randrange(10**6)]),
        )
        for _ in range(3000)
    ]
    async with conn.producer(batch_bytes=16 * 1024) as producer:
        for i in range(0, len(sent), 500):
            await producer.send_batch("t", sent[i : i + 500])
    by_records = conn.consumer(auto_offset_reset="earliest")
    by_blocks = conn.consumer(auto_offset_reset="earliest")
    for consumer in (by_records, by_blocks):
        consumer.assign([TP("t", p) for p in range(3)])
    want, got = [], []
    while len(want) < len(sent):
        batches = await by_records.getmany(timeout_ms=1000, max_records=700)
        assert batches
        want += [r for records in batches.values() for r in records]
    while len(got) < len(sent):
        blocks = await by_blocks.getmany_blocks(timeout_ms=1000, max_records=700)
        assert blocks and sum(map(len, blocks.values())) <= 700
        for tp, block in blocks.items():
            assert (block.topic, block.partition) == (tp.topic, tp.partition)
            assert by_blocks.position(tp) == block.offsets[-1] + 1
            got += block.records()
    key = lambda r: (r.partition, r.offset)  # noqa: E731
    assert sorted(got, key=key) == sorted(want, key=key)
    for consumer in (by_records, by_blocks):
        await consumer.close()


async def test_getmany_and_getmany_blocks_take_turns_without_a_gap(conn):
    await conn.admin().create_topic("t", 1)
    async with conn.producer() as producer:
        await producer.send_batch("t", [Record(None, b"%d" % i) for i in range(1000)])
        await producer.send_batch("t", [Record(None, b"%d" % i) for i in range(1000, 1010)])
    consumer = conn.consumer(auto_offset_reset="earliest")
    consumer.assign([TP("t", 0)])
    got = []
    for turn in range(40):
        if turn % 3 == 0:  # the default, made from getmany
            blocks = await Consumer.getmany_blocks(consumer, timeout_ms=1000, max_records=37)
        else:
            blocks = await consumer.getmany_blocks(timeout_ms=1000, max_records=37)
        got += [int(v) for block in blocks.values() for v in block.values]
        records = await consumer.getmany(timeout_ms=1000, max_records=11)
        got += [int(r.value) for batch in records.values() for r in batch]
        if len(got) >= 1010:
            break
    assert got == list(range(1010))
    await consumer.close()


async def test_what_a_block_leaves_of_a_batch_is_read_next_by_every_way(conn):
    await conn.admin().create_topic("t", 1)
    async with conn.producer() as producer:
        await producer.send_batch("t", [Record(None, b"%d" % i) for i in range(100)])
    consumer = conn.consumer(auto_offset_reset="earliest")
    consumer.assign([TP("t", 0)])

    async def block(n):
        got = await consumer.getmany_blocks(timeout_ms=1000, max_records=n)
        return [int(v) for v in got[TP("t", 0)].values]

    assert await block(10) == list(range(10))
    assert int((await consumer.__anext__()).value) == 10
    assert await block(5) == list(range(11, 16))
    assert await block(3) == [16, 17, 18]
    got = await consumer.getmany(timeout_ms=1000, max_records=2)
    assert [int(r.value) for r in got[TP("t", 0)]] == [19, 20]
    assert await block(1000) == list(range(21, 100))
    assert consumer.position(TP("t", 0)) == 100
    await consumer.close()


async def test_seeking(conn):
    await conn.admin().create_topic("t", 1)
    await produce(conn, "t", 10, timestamp=1_000)
    await produce(conn, "t", 10, start=10, timestamp=2_000)
    tp = TP("t", 0)
    consumer = conn.consumer()
    consumer.assign([tp])
    consumer.seek(tp, 15)
    assert values(await consumer.getmany(timeout_ms=100)) == list(range(15, 20))
    await consumer.seek_to_beginning()
    assert consumer.position(tp) == 0
    await consumer.seek_to_end(tp)
    assert consumer.position(tp) == 20
    await consumer.seek_to_timestamp(1_500)
    assert consumer.position(tp) == 10
    await consumer.seek_to_timestamp(9_999)
    assert consumer.position(tp) == 20
    consumer.seek(tp, 1_000)  # clamped into the log
    assert consumer.position(tp) == 20
    with pytest.raises(InvalidOffsetError, match="an offset is an int >= 0"):
        consumer.seek(tp, -1)
    with pytest.raises(StoreError, match="t-1 is not assigned"):
        consumer.seek(TP("t", 1), 0)


async def test_seeking_drops_what_was_buffered(conn):
    await conn.admin().create_topic("t", 1)
    await produce(conn, "t", 10)
    consumer = conn.consumer(auto_offset_reset="earliest")
    consumer.assign([TP("t", 0)])
    assert values(await consumer.getmany(max_records=2)) == [0, 1]
    consumer.seek(TP("t", 0), 8)
    assert values(await consumer.getmany()) == [8, 9]


async def test_offset_reset_none_refuses_to_guess(conn):
    await conn.admin().create_topic("t", 1)
    await produce(conn, "t", 3)
    consumer = conn.consumer(["t"], group="g", auto_offset_reset="none")
    with pytest.raises(InvalidOffsetError, match="no committed offset.*auto_offset_reset"):
        await consumer.getmany()
    with pytest.raises(ValueError, match="valid: earliest, latest, none"):
        conn.consumer(auto_offset_reset="sometimes")


async def test_two_members_split_the_partitions_and_rebalance_when_one_leaves(conn):
    await conn.admin().create_topic("t", 4)
    a = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
    b = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
    assert a.assignment() | b.assignment() == {TP("t", p) for p in range(4)}
    assert len(a.assignment()) == len(b.assignment()) == 2
    assert not a.assignment() & b.assignment()
    await produce(conn, "t", 40, spread=4)
    got_a = await drain(a, 20)
    got_b = await drain(b, 20)
    assert len(got_a) == len(got_b) == 20
    assert sorted(got_a + got_b) == list(range(40))
    await a.commit()
    await b.close()
    assert a.assignment() == {TP("t", p) for p in range(4)}
    await produce(conn, "t", 8, start=40, spread=4)
    # b's partitions restart at b's last position, which b never committed
    assert sorted(await drain(a, 8 + len(got_b))) == sorted(got_b + list(range(40, 48)))
    await a.close()


async def test_a_revoked_partition_is_no_longer_read_nor_committed(conn):
    await conn.admin().create_topic("t", 2)
    await produce(conn, "t", 10, partition=0)
    await produce(conn, "t", 10, start=10, partition=1)
    a = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
    first = await a.getmany(max_records=12)
    assert {tp: len(r) for tp, r in first.items()} == {TP("t", 0): 10, TP("t", 1): 2}
    b = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
    assert b.assignment() == {TP("t", 1)}
    assert a.assignment() == {TP("t", 0)}
    # a consumed from t-1, which moved to b: that progress cannot be committed any more,
    # but a's progress in t-0, which it still owns, is
    with pytest.raises(
        CommitFailedError, match=r"cannot commit t-1 for group 'g'.*rebalance.*committed: t-0$"
    ):
        await a.commit()
    assert await a.committed(TP("t", 0)) == 10
    assert await a.committed(TP("t", 1)) is None
    # the 8 records a had buffered from t-1 are not returned by a; b reads all of t-1
    assert await a.getmany(timeout_ms=50) == {}
    assert values(await b.getmany(timeout_ms=1000)) == list(range(10, 20))
    await a.commit()  # nothing left to commit, nothing refused
    assert await a.committed(TP("t", 0)) == 10
    assert await a.committed(TP("t", 1)) is None
    await a.close()
    await b.close()


async def test_committing_given_offsets_after_a_rebalance_stores_those_still_owned(conn):
    await conn.admin().create_topic("t", 3)
    a = conn.consumer(["t"], group="g")
    assert a.assignment() == {TP("t", 0), TP("t", 1), TP("t", 2)}
    b = conn.consumer(["t"], group="g")  # takes t-1
    with pytest.raises(CommitFailedError) as refused:
        await a.commit({TP("t", 0): 4, TP("t", 1): 5, TP("t", 2): 6})
    assert str(refused.value).startswith("cannot commit t-1 for group 'g'")
    assert str(refused.value).endswith("committed: t-0, t-2")
    assert [await a.committed(TP("t", p)) for p in range(3)] == [4, None, 6]
    with pytest.raises(CommitFailedError, match=r"cannot commit t-1 .*committed: nothing$"):
        await a.commit({TP("t", 1): 5})
    await b.commit({TP("t", 1): 7})
    assert await a.committed(TP("t", 1)) == 7
    await a.close()
    await b.close()


async def test_a_new_topic_partition_is_picked_up_by_the_group(conn):
    admin = conn.admin()
    await admin.create_topic("t", 1)
    consumer = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
    await admin.alter_topic("t", partitions=2)
    assert consumer.assignment() == {TP("t", 0), TP("t", 1)}
    await produce(conn, "t", 1, partition=1)
    assert values(await consumer.getmany(timeout_ms=1000)) == [0]


async def test_a_consumer_that_assigns_commits_only_to_an_idle_group(conn):
    await conn.admin().create_topic("t", 1)
    await produce(conn, "t", 3)
    tp = TP("t", 0)
    solo = conn.consumer(group="g", auto_offset_reset="earliest")
    solo.assign([tp])
    await drain(solo, 3)
    await solo.commit()
    assert await solo.committed(tp) == 3
    member = conn.consumer(["t"], group="g")
    with pytest.raises(CommitFailedError, match="live member"):
        await solo.commit({tp: 1})
    await member.close()
    await solo.commit({tp: 1})
    assert await solo.committed(tp) == 1


async def test_errors_name_the_problem(conn):
    consumer = conn.consumer()
    with pytest.raises(UnknownTopicError, match="unknown topic 'nope'"):
        consumer.subscribe(["nope"])
    with pytest.raises(StoreError, match="no group"):
        await consumer.commit()
    await consumer.close()
    await consumer.close()
    with pytest.raises(StoreClosedError):
        await consumer.getmany()


async def test_a_subscription_without_a_group_reads_every_partition(conn):
    await conn.admin().create_topic("t", 3)
    consumer = conn.consumer(["t"], auto_offset_reset="earliest")
    await produce(conn, "t", 9)
    assert sorted(await drain(consumer, 9)) == list(range(9))
    assert len(consumer.assignment()) == 3


async def test_members_coming_and_going_lose_nothing(conn):
    """Consumers join, read, commit and leave while records arrive: every record is read at
    least once and the group ends with no lag."""
    await conn.admin().create_topic("t", 6)
    rng = random.Random(7)
    total = 6000
    seen: set[int] = set()
    stop = asyncio.Event()

    async def member(name):
        while not stop.is_set():
            consumer = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
            for _ in range(rng.randint(1, 10)):
                batches = await consumer.getmany(timeout_ms=20, max_records=rng.randint(1, 300))
                seen.update(int(r.value) for records in batches.values() for r in records)
                with contextlib.suppress(CommitFailedError):  # a rebalance moved a partition
                    await consumer.commit()
            await consumer.close()

    members = [asyncio.ensure_future(member(n)) for n in range(3)]
    async with conn.producer() as producer:
        for i in range(total):
            producer.send("t", b"%d" % i, key=b"%d" % (i % 50))
            if i % 500 == 0:
                await asyncio.sleep(0.005)
    for _ in range(200):
        if len(seen) == total:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*members)
    assert len(seen) == total
    # what a member read but could not commit before a rebalance is read again, never lost
    final = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
    while batches := await final.getmany(timeout_ms=50):
        assert {int(r.value) for records in batches.values() for r in records} <= seen
    await final.commit()
    await final.close()
    described = await conn.admin().describe_group("g")
    assert [o.lag for o in described.offsets] == [0] * 6
