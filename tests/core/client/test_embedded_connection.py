"""The embedded connection: opening, closing, upkeep, and sharing a directory with another
process that owns it."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap

import pytest

from millstream.core.client import connect
from millstream.core.client.embedded import EmbeddedConnection
from millstream.core.errors import (
    ReadOnlyStoreError,
    StoreClosedError,
    StoreError,
    StoreLockedError,
)
from millstream.core.record import TopicPartition as TP

OWNER = textwrap.dedent(
    """
    import asyncio, sys
    from millstream.core.client import connect

    async def main(url):
        async with await connect(url) as conn:
            admin = conn.admin()
            await admin.create_topic("t", 2)
            async with conn.producer() as producer:
                for i in range(100):
                    producer.send("t", b"%d" % i)
            consumer = conn.consumer(["t"], group="g", auto_offset_reset="earliest")
            await consumer.commit({c: 10 for c in consumer.assignment()})
            print("ready", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
            async with conn.producer() as producer:
                for i in range(100, 150):
                    producer.send("t", b"%d" % i)
            await consumer.commit({c: 20 for c in consumer.assignment()})
            print("more", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

    asyncio.run(main(sys.argv[1]))
    """
)


@pytest.fixture
def owner(url):
    """Another process that owns the store at ``url`` and has written 100 records to t."""
    proc = subprocess.Popen(
        [sys.executable, "-c", OWNER, url],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "ready"
    yield proc
    proc.stdin.close()
    proc.wait(timeout=30)


async def read_all(consumer, n):
    got = []
    while len(got) < n:
        batches = await consumer.getmany(timeout_ms=3000)
        if not batches:
            break
        got += [int(r.value) for records in batches.values() for r in records]
    return sorted(got)


async def test_a_second_writer_is_told_the_directory_is_in_use(owner, url):
    with pytest.raises(StoreLockedError, match=r"in use by process \d+.*millstream broker"):
        await connect(url)


async def test_a_reader_shares_the_directory_with_its_owner(owner, url):
    async with await connect(url, read_only=True) as conn:
        assert conn.read_only
        admin = conn.admin()
        assert await admin.list_topics() == ["t"]
        described = await admin.describe_topic("t")
        assert sum(p.latest_offset for p in described.partitions) == 100
        group = await admin.describe_group("g")
        assert {(o.partition, o.committed) for o in group.offsets} == {(0, 10), (1, 10)}

        consumer = conn.consumer(auto_offset_reset="earliest")
        consumer.assign([TP("t", 0), TP("t", 1)])
        assert await read_all(consumer, 100) == list(range(100))
        owner.stdin.write("go\n")
        owner.stdin.flush()
        assert owner.stdout.readline().strip() == "more"
        # what the owner writes later shows up too, records and commits
        assert await read_all(consumer, 50) == list(range(100, 150))
        grouped = conn.consumer(group="g")
        assert await grouped.committed(TP("t", 1)) == 20


async def test_a_reader_cannot_write(owner, url):
    in_use = r"in use by another process.*`millstream broker`"
    async with await connect(url, read_only=True) as conn:
        with pytest.raises(ReadOnlyStoreError, match=in_use):
            conn.producer()
        admin = conn.admin()
        with pytest.raises(ReadOnlyStoreError, match=in_use):
            await admin.create_topic("u")
        with pytest.raises(ReadOnlyStoreError, match=in_use):
            await admin.reset_group_offsets("g", "t", "earliest")
        with pytest.raises(ReadOnlyStoreError, match=in_use):
            await admin.delete_topic("t")
        consumer = conn.consumer(["t"], group="g")
        assert await consumer.committed(TP("t", 0)) == 10
        with pytest.raises(ReadOnlyStoreError, match=in_use):
            await consumer.commit({TP("t", 0): 11})
    async with await connect(url, read_only=True) as conn:
        group = await conn.admin().describe_group("g")
        assert {o.committed for o in group.offsets} == {10}


async def test_closing_flushes_producers_and_is_idempotent(url):
    conn = await connect(url)
    await conn.admin().create_topic("t", 1)
    producer = conn.producer(linger_ms=60_000)
    delivery = producer.send("t", b"v")
    await conn.close()
    assert (await delivery).offset == 0
    await conn.close()
    with pytest.raises(StoreClosedError, match="closed"):
        conn.producer()
    with pytest.raises(StoreClosedError):
        producer.send("t", b"v")
    async with await connect(url) as again:
        assert (await again.admin().describe_topic("t")).partitions[0].latest_offset == 1


async def test_upkeep_runs_in_the_background(url, monkeypatch):
    monkeypatch.setattr(EmbeddedConnection, "maintenance_interval_s", 0.05)
    async with await connect(url) as conn:
        admin = conn.admin()
        await admin.create_topic("t", 1, config={"segment.bytes": "1024", "retention.ms": "1"})
        async with conn.producer(batch_bytes=500) as producer:
            for i in range(100):
                producer.send("t", b"x" * 50, timestamp=1_000 + i)
        before = (await admin.describe_topic("t")).partitions[0]
        assert before.segments > 2
        for _ in range(100):
            await asyncio.sleep(0.02)
            after = (await admin.describe_topic("t")).partitions[0]
            if after.earliest_offset > 0:
                break
        assert after.earliest_offset > 0
        assert after.segments < before.segments


async def test_upkeep_runs_as_soon_as_a_writer_opens_the_store(url):
    # a short-lived command (one `millstream produce`) never lives to see the periodic round
    async with await connect(url) as conn:
        await conn.admin().create_topic(
            "t", 1, config={"segment.bytes": "1024", "retention.ms": "60000"}
        )
        async with conn.producer(batch_bytes=500) as producer:
            for i in range(100):
                producer.send("t", b"x" * 50, timestamp=1_000 + i)
        before = (await conn.admin().describe_topic("t")).partitions[0]
    assert before.earliest_offset == 0 and before.segments > 2
    async with await connect(url, read_only=True) as reader:  # readers leave the store be
        assert (await reader.admin().describe_topic("t")).partitions[0] == before
    async with await connect(url) as conn:
        after = (await conn.admin().describe_topic("t")).partitions[0]
    assert after.earliest_offset > 0
    assert after.segments < before.segments


async def test_the_offsets_topic_rolls_at_kafkas_segment_size(conn):
    described = await conn.admin().describe_topic("__consumer_offsets")
    assert described.configs["segment.bytes"] == "104857600"
    assert described.configs["cleanup.policy"] == "compact"


async def test_a_store_is_made_only_where_it_may_be(tmp_path):
    missing = tmp_path / "typo"
    with pytest.raises(StoreError, match=r"no millstream store at .*typo"):
        await connect(f"file:{missing}", create=False)
    assert not missing.exists()
    with pytest.raises(StoreError, match=r"no millstream store at .*typo"):
        await connect(f"file:{missing}", read_only=True)
    assert not missing.exists()
    async with await connect(f"file:{missing}") as conn:  # create=True is the default
        await conn.admin().create_topic("t")
    async with await connect(f"file:{missing}", create=False) as conn:
        assert await conn.admin().list_topics() == ["t"]
