"""Retention by time and by size: whole old segments go, acknowledged data only."""

from __future__ import annotations

from millstream.core.log import LogStore, encode_batch
from millstream.core.record import Record

DAY = 86_400_000
NOW = 1_800_000_000_000


def _batch(start: int, n: int, timestamp: int) -> bytearray:
    return encode_batch(
        [Record(None, f"r{start + i}".encode().ljust(100, b"."), (), timestamp) for i in range(n)]
    )


async def _fill(p, segments: int, timestamp_of) -> None:
    for s in range(segments):
        result = p.append(_batch(s * 10, 10, timestamp_of(s)))
        await p.durable(result.last_offset + 1)
        p.roll()


async def test_segments_older_than_retention_ms_are_deleted(store: LogStore) -> None:
    p = store.create_topic("t", config={"retention.ms": str(DAY)}).partitions[0]
    # segments 0-4 are three days old, 5-9 are an hour old
    await _fill(p, 10, lambda s: NOW - 3 * DAY if s < 5 else NOW - 3_600_000)
    assert p.log_start_offset == 0
    deleted = p.enforce_retention(NOW)
    assert deleted == 5
    assert p.log_start_offset == 50
    assert [r.offset for r in p.read_records(50)][:2] == [50, 51]
    assert not (p.directory / "00000000000000000000.log").exists()


async def test_an_expired_active_segment_is_rolled_then_deleted(store: LogStore) -> None:
    p = store.create_topic("t", config={"retention.ms": str(DAY)}).partitions[0]
    result = p.append(_batch(0, 10, NOW - 2 * DAY))
    await p.durable(result.last_offset + 1)
    assert p.enforce_retention(NOW) == 1
    assert (p.log_start_offset, p.log_end_offset) == (10, 10)
    result = p.append(_batch(10, 1, NOW))
    assert result.base_offset == 10


async def test_retention_bytes_keeps_the_newest_segments_under_the_limit(store: LogStore) -> None:
    p = store.create_topic("t", config={"retention.bytes": "3000"}).partitions[0]
    await _fill(p, 10, lambda s: NOW)
    per_segment = p.segments[0].size
    p.enforce_retention(NOW)
    assert p.size_bytes < 3000 + per_segment
    assert p.size_bytes >= 3000 - per_segment
    assert p.log_end_offset == 100
    assert p.read_records(p.log_start_offset)[0].offset == p.log_start_offset


async def test_unacknowledged_data_is_never_deleted(store: LogStore) -> None:
    p = store.create_topic("t", config={"retention.ms": "0"}).partitions[0]
    p.append(_batch(0, 10, NOW - DAY))  # not yet synced: not acknowledged
    assert p.enforce_retention(NOW) == 0
    assert p.log_end_offset == 10


async def test_compacted_only_topics_are_not_deleted_by_time(store: LogStore) -> None:
    p = store.create_topic(
        "t", config={"retention.ms": "1", "cleanup.policy": "compact"}
    ).partitions[0]
    await _fill(p, 3, lambda s: NOW - DAY)
    assert p.enforce_retention(NOW) == 0


async def test_store_maintenance_applies_retention_everywhere(store: LogStore) -> None:
    topic = store.create_topic("t", 2, {"retention.ms": str(DAY)})
    for p in topic.partitions:
        await _fill(p, 3, lambda s: NOW - 2 * DAY)
    done = store.run_maintenance(NOW)
    assert done["segments_deleted"] == 6
    assert [p.log_start_offset for p in topic.partitions] == [30, 30]
