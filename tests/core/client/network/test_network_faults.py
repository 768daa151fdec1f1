"""The network transport when the broker goes away: retries with idempotence write every
record once, in order, across a kill -9 of the broker; a group member carries on after a
restart."""

from __future__ import annotations

import asyncio

from millstream.core.client import connect
from millstream.core.record import TopicPartition


def crash(broker) -> None:
    broker.kill()
    broker.start()


async def test_a_broker_crash_loses_and_duplicates_nothing(broker) -> None:
    async with await connect(f"millstream://{broker.bootstrap}") as conn:
        await conn.admin().create_topic("steady", partitions=2)
        producer = conn.producer(linger_ms=2, batch_bytes=2048)
        deliveries = []
        for i in range(3000):
            deliveries.append(producer.send("steady", b"%06d" % i, key=b"%d" % (i % 10)))
            if i % 200 == 0:
                await asyncio.sleep(0.005)
            if i == 1500:  # kill -9 in the middle: batches in flight are lost with it
                await asyncio.get_running_loop().run_in_executor(None, crash, broker)
        await producer.flush()
        metas = [await d for d in deliveries]
        await producer.close()
        assert len({(m.partition, m.offset) for m in metas}) == 3000
        consumer = conn.consumer()
        consumer.assign([TopicPartition("steady", 0), TopicPartition("steady", 1)])
        await consumer.seek_to_beginning()
        got = []
        while batch := await consumer.getmany(timeout_ms=500):
            got += [r for records in batch.values() for r in records]
        await consumer.close()
    values = [int(r.value) for r in got]
    assert sorted(values) == list(range(3000))  # each exactly once
    for p in (0, 1):
        mine = [int(r.value) for r in got if r.partition == p]
        assert mine == sorted(mine)  # retries kept each partition's order


async def test_a_group_member_resumes_from_its_commit_after_a_restart(broker) -> None:
    async with await connect(f"millstream://{broker.bootstrap}") as conn:
        await conn.admin().create_topic("resume")
        async with conn.producer() as producer:
            for i in range(10):
                producer.send("resume", b"%d" % i)
        consumer = conn.consumer(["resume"], group="g", auto_offset_reset="earliest")
        first = []
        while len(first) < 10:
            got = await consumer.getmany(timeout_ms=10_000, max_records=10 - len(first))
            first += [r.value for records in got.values() for r in records]
        await consumer.commit({TopicPartition("resume", 0): 6})
        await asyncio.get_running_loop().run_in_executor(None, broker.restart)
        async with conn.producer() as producer:
            await producer.send("resume", b"10")
        rest = []
        while len(rest) < 1:
            got = await consumer.getmany(timeout_ms=10_000)
            rest += [r.value for records in got.values() for r in records]
        assert rest == [b"10"]  # the member carried on from its position
        await consumer.close()
        again = conn.consumer(["resume"], group="g", auto_offset_reset="earliest")
        later = []
        while len(later) < 5:
            got = await again.getmany(timeout_ms=10_000)
            later += [r.value for records in got.values() for r in records]
        assert later == [b"6", b"7", b"8", b"9", b"10"]  # a new member starts at the commit
        await again.close()
