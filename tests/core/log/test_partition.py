"""Partitions: offsets, reads, segment rolls, time lookups and durability policies."""

from __future__ import annotations

import asyncio
import errno
import os

import pytest

from millstream.core.errors import (
    InvalidOffsetError,
    RecordTooLargeError,
    StoreClosedError,
    StoreWriteError,
)
from millstream.core.log import LogStore, commit, decode_records, encode_batch
from millstream.core.record import Record


async def append_all(partition, batches):
    results = [partition.append(encode_batch(b)) for b in batches]
    await partition.durable(results[-1].last_offset + 1)
    return results


async def test_offsets_are_assigned_in_order(store: LogStore, records) -> None:
    p = store.create_topic("t").partitions[0]
    results = await append_all(p, [records(3), records(2, start=3), records(1, start=5)])
    assert [(r.base_offset, r.last_offset) for r in results] == [(0, 2), (3, 4), (5, 5)]
    assert (p.log_start_offset, p.log_end_offset, p.high_watermark) == (0, 6, 6)
    values = [r.value for r in p.read_records(0)]
    assert values == [rec.value for rec in records(6)]


async def test_read_returns_the_whole_batch_holding_the_offset(store: LogStore, records) -> None:
    p = store.create_topic("t").partitions[0]
    await append_all(p, [records(5), records(5, start=5)])
    batches = p.read(7)
    assert len(batches) == 1
    assert [r.offset for r in decode_records(batches[0])] == [5, 6, 7, 8, 9]
    assert [r.offset for r in p.read_records(7)] == [7, 8, 9]
    assert p.read(10) == []


async def test_iter_records_reads_to_the_high_watermark_across_reads(
    store: LogStore, records
) -> None:
    p = store.create_topic("t", config={"segment.bytes": "1024"}).partitions[0]
    await append_all(p, [records(50, start=i * 50) for i in range(6)])
    assert [r.offset for r in p.iter_records(7)] == list(range(7, 300))
    assert list(p.iter_records(300)) == []


async def test_max_bytes_still_returns_one_whole_batch(store: LogStore, records) -> None:
    p = store.create_topic("t").partitions[0]
    await append_all(p, [records(50, size=100), records(50, start=50, size=100)])
    batches = p.read(0, max_bytes=10)
    assert len(batches) == 1
    assert len(decode_records(batches[0])) == 50


async def test_offsets_outside_the_log_are_refused_with_the_valid_range(
    store: LogStore, records
) -> None:
    p = store.create_topic("t").partitions[0]
    await append_all(p, [records(3)])
    with pytest.raises(InvalidOffsetError, match=r"offset -1 .* valid offsets are 0 to 3"):
        p.read(-1)
    with pytest.raises(InvalidOffsetError, match="offset 4"):
        p.read(4)


async def test_oversized_batch_is_refused_and_leaves_the_log_as_it_was(
    store: LogStore, records
) -> None:
    p = store.create_topic("t", config={"max.message.bytes": "1000"}).partitions[0]
    await append_all(p, [records(2)])
    with pytest.raises(RecordTooLargeError, match=r"max.message.bytes=1000"):
        p.append(encode_batch([Record(None, b"x" * 2000)]))
    assert p.log_end_offset == 2
    await append_all(p, [records(1, start=2)])
    assert [r.offset for r in p.read_records(0)] == [0, 1, 2]


async def test_segments_roll_at_segment_bytes_and_reads_cross_them(
    store: LogStore, records
) -> None:
    p = store.create_topic("t", config={"segment.bytes": "2048"}).partitions[0]
    await append_all(p, [records(10, start=i * 10, size=50) for i in range(20)])
    assert p.segment_count > 5
    assert [s.base_offset for s in p.segments] == sorted(s.base_offset for s in p.segments)
    seen = []
    offset = 0
    while offset < p.high_watermark:
        got = p.read_records(offset)
        seen.extend(r.offset for r in got)
        offset = got[-1].offset + 1
    assert seen == list(range(200))
    files = sorted(f.name for f in p.directory.iterdir())
    assert all(f.endswith((".log", ".index", ".timeindex")) for f in files)


async def test_segments_roll_at_segment_ms(store: LogStore, records) -> None:
    p = store.create_topic("t", config={"segment.ms": "1000"}).partitions[0]
    p.append(encode_batch(records(1)), now_ms=None)
    p.segments[-1].created_ms -= 5_000
    p.append(encode_batch(records(1, start=1)))
    assert p.segment_count == 2


async def test_offset_for_timestamp_finds_the_first_record_at_or_after(
    store: LogStore, records
) -> None:
    p = store.create_topic("t", config={"segment.bytes": "1024"}).partitions[0]
    await append_all(p, [records(10, start=i * 10, size=40) for i in range(10)])
    base = 1_700_000_000_000
    assert p.offset_for_timestamp(0) == 0
    assert p.offset_for_timestamp(base + 42) == 42
    assert p.offset_for_timestamp(base + 99) == 99
    assert p.offset_for_timestamp(base + 100) is None


async def test_commit_policy_hides_records_until_synced(store: LogStore, records) -> None:
    p = store.create_topic("t").partitions[0]
    result = p.append(encode_batch(records(3)))
    assert p.log_end_offset == 3
    assert p.high_watermark == 0
    assert p.read(0) == []
    await p.durable(result.last_offset + 1)
    assert p.high_watermark == 3
    assert len(p.read_records(0)) == 3


async def test_group_commit_shares_one_fsync_among_many_writers(store: LogStore, records) -> None:
    topic = store.create_topic("t", partitions=4)
    waits = []
    for i in range(200):
        p = topic.partitions[i % 4]
        result = p.append(encode_batch(records(1, start=i)))
        waits.append(p.durable(result.last_offset + 1))
    await asyncio.gather(*waits)
    assert store.committer.rounds < 20
    assert sum(p.high_watermark for p in topic.partitions) == 200


async def test_never_policy_acknowledges_on_write(store: LogStore, records) -> None:
    p = store.create_topic("t", config={"flush.policy": "never"}).partitions[0]
    p.append(encode_batch(records(2)))
    assert p.high_watermark == 2
    assert store.committer.rounds == 0


async def test_interval_policy_acknowledges_after_the_interval(store: LogStore, records) -> None:
    p = store.create_topic("t", config={"flush.policy": "interval", "flush.ms": "500"})
    partition = p.partitions[0]
    loop = asyncio.get_running_loop()
    start = loop.time()
    result = partition.append(encode_batch(records(2)))
    await asyncio.sleep(0.05)
    assert partition.high_watermark == 0 or loop.time() - start >= 0.5
    await partition.durable(result.last_offset + 1)
    assert loop.time() - start >= 0.49
    assert partition.high_watermark == 2


async def test_wait_for_data_wakes_on_acknowledgement(store: LogStore, records) -> None:
    p = store.create_topic("t").partitions[0]
    waiter = asyncio.create_task(p.wait_for_data(0, 5))
    await asyncio.sleep(0.01)
    assert not waiter.done()
    p.append(encode_batch(records(1)))
    assert await waiter is True
    assert await p.wait_for_data(5, 0.05) is False


async def test_log_append_time_topics_stamp_the_batch(store: LogStore, records) -> None:
    p = store.create_topic("t", config={"message.timestamp.type": "LogAppendTime"}).partitions[0]
    result = p.append(encode_batch(records(3)), now_ms=1_800_000_000_000)
    await p.durable(result.last_offset + 1)
    assert result.log_append_time == 1_800_000_000_000
    assert {r.timestamp for r in p.read_records(0)} == {1_800_000_000_000}


async def test_appends_survive_a_clean_reopen(tmp_path, records) -> None:
    store = LogStore.open(tmp_path)
    p = store.create_topic("t", config={"segment.bytes": "4096"}).partitions[0]
    await append_all(p, [records(10, start=i * 10, size=60) for i in range(30)])
    segments = p.segment_count
    await store.close()
    store = LogStore.open(tmp_path)
    p = store.topic("t").partitions[0]
    assert (p.log_end_offset, p.high_watermark, p.segment_count) == (300, 300, segments)
    assert [r.offset for r in p.read_records(150)][:3] == [150, 151, 152]
    result = p.append(encode_batch(records(1, start=300)))
    assert result.base_offset == 300
    await store.close()


async def test_a_reader_follows_the_writer_across_segment_rolls(store: LogStore, records) -> None:
    p = store.create_topic("t", config={"segment.bytes": "2048"}).partitions[0]
    reader = LogStore.open(store.path, read_only=True)
    rp = reader.topic("t").partitions[0]
    seen: list[int] = []
    for round_ in range(5):
        # between two looks the writer fills and rolls several segments
        await append_all(p, [records(10, start=round_ * 200 + i * 10, size=60) for i in range(20)])
        reader.refresh()
        while seen[-1:] != [rp.high_watermark - 1] and rp.high_watermark:
            got = rp.read_records(seen[-1] + 1 if seen else 0)
            seen.extend(r.offset for r in got)
    assert p.segment_count > 10
    assert seen == list(range(1000))
    await reader.close()


async def test_a_compacted_topic_switched_to_delete_keeps_its_data(tmp_path, records) -> None:
    store = LogStore.open(tmp_path)
    p = store.create_topic("t", config={"cleanup.policy": "compact"}).partitions[0]
    for i in range(4):
        await append_all(p, [records(10, start=i * 10)])
        p.roll()
    store.run_maintenance()
    kept = [(r.offset, r.value) for r in p.read_records(p.log_start_offset, max_bytes=1 << 20)]
    assert len(kept) < 40  # compaction left gaps between offsets
    store.alter_topic("t", config={"cleanup.policy": "delete"})
    await store.close()
    store = LogStore.open(tmp_path)
    p = store.topic("t").partitions[0]
    got = []
    offset = p.log_start_offset
    while offset < p.high_watermark:
        batch = p.read_records(offset)
        got.extend((r.offset, r.value) for r in batch)
        offset = batch[-1].offset + 1
    assert got == kept
    await store.close()


async def test_reading_a_deleted_topics_partition_is_an_error(store: LogStore, records) -> None:
    p = store.create_topic("a").partitions[0]
    await append_all(p, [records(2)])
    store.delete_topic("a")
    q = store.create_topic("b").partitions[0]
    await append_all(q, [records(2, start=100)])
    with pytest.raises(StoreClosedError, match="a-0 is closed"):
        p.read(0)


async def test_a_failed_sync_is_never_acknowledged_and_stops_writes(
    tmp_path, records, monkeypatch
) -> None:
    # fsync failing (an I/O error) cannot be caused on a healthy disk: it is injected.
    store = LogStore.open(tmp_path)
    p = store.create_topic("t").partitions[0]
    await append_all(p, [records(2)])
    real_fsync = commit.os.fsync

    def failing(fd: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(commit.os, "fsync", failing)
    result = p.append(encode_batch(records(1, start=2)))
    with pytest.raises(StoreWriteError, match="fsync failed: Input/output error"):
        await p.durable(result.last_offset + 1)
    monkeypatch.setattr(commit.os, "fsync", real_fsync)
    with pytest.raises(StoreWriteError, match="refuses writes after a failed disk sync"):
        p.append(encode_batch(records(1, start=3)))
    assert p.high_watermark == 2
    assert [r.offset for r in p.read_records(0)] == [0, 1]
    await store.close()


async def test_every_acknowledged_write_was_synced_first(store: LogStore, monkeypatch) -> None:
    synced: dict[int, int] = {}  # descriptor -> file size at its last fsync
    real_fsync = commit.os.fsync

    def recording(fd: int) -> None:
        size = os.fstat(fd).st_size
        real_fsync(fd)
        synced[fd] = max(synced.get(fd, 0), size)

    monkeypatch.setattr(commit.os, "fsync", recording)
    topic = store.create_topic("t", 3)
    waits = []
    for i in range(300):
        p = topic.partitions[i % 3]
        result = p.append(encode_batch([Record(None, b"r%d" % i)]))
        end = p.segments[-1].size
        fd = p.segments[-1].fd

        async def check(p=p, result=result, fd=fd, end=end) -> None:
            await p.durable(result.last_offset + 1)
            assert synced.get(fd, 0) >= end, "acknowledged before its bytes were synced"

        waits.append(check())
        if i % 7 == 0:
            await asyncio.sleep(0)
    await asyncio.gather(*waits)


async def test_offset_for_timestamp_in_the_middle_of_a_large_segment(store, records) -> None:
    p = store.create_topic("t", config={"index.interval.bytes": "100"}).partitions[0]
    await append_all(p, [records(10, start=i * 10, size=40) for i in range(30)])
    assert p.segment_count == 1
    base = 1_700_000_000_000
    for wanted in (0, 1, 57, 150, 299):
        assert p.offset_for_timestamp(base + wanted) == wanted
