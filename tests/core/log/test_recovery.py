"""Recovery on open: a torn or scribbled tail is cut off and never served."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from millstream.core.errors import CorruptBatchError
from millstream.core.log import LogStore, encode_batch
from millstream.core.log.batch import iter_batches
from millstream.core.record import Record

BATCHES = 12
PER_BATCH = 5


def _value(offset: int) -> bytes:
    return f"record-{offset}".encode() * 3


async def _write(path: Path, *, clean: bool) -> list[int]:
    store = LogStore.open(path)
    p = store.create_topic("t", config={"index.interval.bytes": "200"}).partitions[0]
    ends = []
    for b in range(BATCHES):
        recs = [Record(b"k", _value(b * PER_BATCH + i)) for i in range(PER_BATCH)]
        result = p.append(encode_batch(recs))
        ends.append(p.segments[-1].size)
        await p.durable(result.last_offset + 1)
    if clean:
        await store.close()
    else:  # leave as a crash would: no clean-shutdown marker, lock released by the OS
        await store.committer.close()
        for partition in store.topic("t").partitions:
            for segment in partition.segments:
                segment.close()
        store._unlock()
    return ends


def _damage(log: Path, cut: int | None, scribble: tuple[int, bytes] | None) -> None:
    with open(log, "r+b") as f:
        if scribble is not None:
            pos, junk = scribble
            f.seek(pos)
            f.write(junk)
        if cut is not None:
            f.truncate(cut)


async def _check(
    path: Path, ends: list[int], damaged_from: int, clean: bool, cut_only: bool
) -> None:
    store = LogStore.open(path)
    p = store.topic("t").partitions[0]
    whole = sum(1 for end in ends if end <= damaged_from)
    served: list = []
    refused = None
    offset = 0
    while offset < p.high_watermark:
        try:
            got = p.read_records(offset)
        except CorruptBatchError as exc:
            refused = exc
            break
        served.extend(got)
        offset = got[-1].offset + 1
    # Nothing damaged is ever served: every record read is exactly what was written there.
    assert [r.offset for r in served] == list(range(len(served)))
    assert all(r.value == _value(r.offset) for r in served)
    # Every batch that ends before the damage is still served. (A scribble may land on bytes
    # that carry no data, such as partitionLeaderEpoch, and harm nothing.)
    assert len(served) >= whole * PER_BATCH
    if cut_only:
        assert len(served) == whole * PER_BATCH
    if not clean:
        # After a crash the active segment is walked in full: the log ends at the damage.
        assert refused is None
        assert p.log_end_offset == len(served)
        data = p.segments[-1].path.read_bytes()
        assert sum(1 for _ in iter_batches(data)) * PER_BATCH == len(served)
    # The log accepts writes again.
    end = p.log_end_offset
    result = p.append(encode_batch([Record(None, b"after")]))
    await p.durable(result.last_offset + 1)
    assert result.base_offset == end
    assert p.read_records(result.base_offset)[0].value == b"after"
    await store.close()


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    cut_fraction=st.floats(min_value=0.0, max_value=1.0),
    scribble=st.one_of(
        st.none(),
        st.tuples(st.floats(min_value=0.0, max_value=1.0), st.binary(min_size=1, max_size=40)),
    ),
    clean=st.booleans(),
)
def test_a_damaged_tail_is_cut_at_the_last_good_batch(cut_fraction, scribble, clean) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        ends = asyncio.run(_write(path, clean=clean))
        total = ends[-1]
        # Damage only the tail (after the first batch), as a torn write or bad sector would.
        first_end = ends[0]
        cut = first_end + int((total - first_end) * cut_fraction)
        damage = None
        damaged_from = cut
        if scribble is not None:
            fraction, junk = scribble
            pos = first_end + int((cut - first_end) * fraction)
            original = (path / "t-0" / "00000000000000000000.log").read_bytes()
            if original[pos : pos + len(junk)] != junk[: max(0, cut - pos)]:
                damage = (pos, junk)
                damaged_from = min(cut, pos)
        _damage(path / "t-0" / "00000000000000000000.log", cut, damage)
        asyncio.run(_check(path, ends, damaged_from, clean, damage is None))


async def test_a_torn_index_is_rebuilt(tmp_path: Path) -> None:
    await _write(tmp_path, clean=True)
    index = tmp_path / "t-0" / "00000000000000000000.index"
    with open(index, "r+b") as f:
        f.truncate(os.path.getsize(index) - 3)
    store = LogStore.open(tmp_path)
    p = store.topic("t").partitions[0]
    assert p.log_end_offset == BATCHES * PER_BATCH
    assert [r.offset for r in p.read_records(33)][:2] == [33, 34]
    await store.close()
    assert os.path.getsize(index) % 8 == 0


async def test_a_missing_index_is_rebuilt(tmp_path: Path) -> None:
    await _write(tmp_path, clean=True)
    (tmp_path / "t-0" / "00000000000000000000.index").unlink()
    (tmp_path / "t-0" / "00000000000000000000.timeindex").unlink()
    store = LogStore.open(tmp_path)
    p = store.topic("t").partitions[0]
    assert p.log_end_offset == BATCHES * PER_BATCH
    assert p.read_records(47)[0].value == _value(47)
    await store.close()
