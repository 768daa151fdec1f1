"""Compaction: the newest record per key survives, offsets never change."""

from __future__ import annotations

from pathlib import Path

from millstream.core.log import LogStore, encode_batch
from millstream.core.record import Record

NOW = 1_800_000_000_000
HOUR = 3_600_000


async def _append(p, rows, timestamp=NOW) -> None:
    batch = encode_batch([Record(k, v, (), timestamp) for k, v in rows])
    result = p.append(batch)
    await p.durable(result.last_offset + 1)


def _contents(p) -> list[tuple[int, bytes | None, bytes | None]]:
    out = []
    offset = p.log_start_offset
    while offset < p.high_watermark:
        got = p.read_records(offset)
        if not got:
            break
        out.extend((r.offset, r.key, r.value) for r in got)
        offset = got[-1].offset + 1
    return out


async def test_newest_value_per_key_survives_with_its_offset(store: LogStore) -> None:
    p = store.create_topic("t", config={"cleanup.policy": "compact"}).partitions[0]
    await _append(p, [(b"a", b"1"), (b"b", b"1"), (b"a", b"2")])  # offsets 0-2
    p.roll()
    await _append(p, [(b"c", b"1"), (b"b", b"2"), (None, b"no key")])  # offsets 3-5
    p.roll()
    await _append(p, [(b"a", b"3")])  # offset 6, in the active segment
    removed = store.run_maintenance(NOW)["records_compacted"]
    assert removed == 3
    assert _contents(p) == [
        (3, b"c", b"1"),
        (4, b"b", b"2"),
        (5, None, b"no key"),
        (6, b"a", b"3"),
    ]
    assert p.log_end_offset == 7


async def test_tombstones_stay_until_delete_retention_passes(store: LogStore) -> None:
    p = store.create_topic(
        "t", config={"cleanup.policy": "compact", "delete.retention.ms": str(HOUR)}
    ).partitions[0]
    await _append(p, [(b"a", b"1"), (b"b", b"1")], NOW - 2 * HOUR)
    await _append(p, [(b"a", None)], NOW - 10_000)  # tombstone, recent
    p.roll()
    await _append(p, [(b"z", b"1")])
    store.run_maintenance(NOW)
    assert _contents(p) == [(1, b"b", b"1"), (2, b"a", None), (3, b"z", b"1")]
    store.run_maintenance(NOW + 2 * HOUR)
    assert _contents(p) == [(1, b"b", b"1"), (3, b"z", b"1")]


async def test_a_compacted_log_reopens_and_keeps_appending(tmp_path: Path) -> None:
    store = LogStore.open(tmp_path)
    p = store.create_topic("t", config={"cleanup.policy": "compact"}).partitions[0]
    for i in range(5):
        await _append(p, [(b"k%d" % (j % 3), b"v%d-%d" % (i, j)) for j in range(6)])
        p.roll()
    store.run_maintenance(NOW)
    before = _contents(p)
    assert [k for _, k, _ in before] == [b"k0", b"k1", b"k2"]
    await store.close()
    (tmp_path / "t-0" / "00000000000000000000.log.cleaned").write_bytes(b"leftover")
    store = LogStore.open(tmp_path)
    p = store.topic("t").partitions[0]
    assert _contents(p) == before
    assert not (tmp_path / "t-0" / "00000000000000000000.log.cleaned").exists()
    await _append(p, [(b"k0", b"new")])
    assert _contents(p)[-1] == (30, b"k0", b"new")
    await store.close()
