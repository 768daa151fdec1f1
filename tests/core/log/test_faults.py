"""Real faults: a writer killed with SIGKILL at random moments, and a disk that fills up.

A SIGKILL leaves the kernel's page cache intact, so these tests prove recovery from a crashed
process (torn batches, half-rolled segments, stale indexes), not durability against a power
loss; that acknowledgements wait for fsync is checked in test_partition.py
(``test_every_acknowledged_write_was_synced_first``).
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from millstream.core.errors import StoreWriteError
from millstream.core.log import LogStore, encode_batch
from millstream.core.record import Record

WRITER = textwrap.dedent(
    """
    import asyncio, random, sys
    from millstream.core.log import LogStore, encode_batch
    from millstream.core.record import Record

    def value(p, o):
        return f"{p}:{o}:".encode().ljust(60, b"x")

    async def write(p, rng):
        n = p.log_end_offset
        while True:
            k = rng.randint(1, 40)
            batch = encode_batch([Record(None, value(p.index, n + i)) for i in range(k)])
            result = p.append(batch)
            await p.durable(result.last_offset + 1)
            sys.stdout.write(f"ack {p.index} {result.last_offset}\\n")
            sys.stdout.flush()
            n = result.last_offset + 1

    async def main(path, seed):
        store = LogStore.open(path)
        if not store.has_topic("t"):
            store.create_topic("t", 3, {"segment.bytes": "32768"})
        rng = random.Random(seed)
        await asyncio.gather(*(write(p, rng) for p in store.topic("t").partitions))

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


def _value(partition: int, offset: int) -> bytes:
    return f"{partition}:{offset}:".encode().ljust(60, b"x")


async def _verify(path: Path, acked: dict[int, int]) -> int:
    store = LogStore.open(path)
    total = 0
    for p in store.topic("t").partitions:
        assert p.high_watermark >= acked.get(p.index, -1) + 1, "an acknowledged record was lost"
        offset = 0
        while offset < p.high_watermark:
            got = p.read_records(offset, max_bytes=1 << 22)
            for record in got:
                assert record.offset == offset, "offsets must be contiguous"
                assert record.value == _value(p.index, offset), "a corrupt record was served"
                offset += 1
        total += offset
    await store.close()
    return total


@pytest.mark.slow
def test_kill_9_never_loses_an_acknowledged_record(tmp_path: Path) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    data = tmp_path / "data"
    rng = random.Random(20261125)
    acked: dict[int, int] = {}
    kills = 0
    for round_ in range(20):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(data), str(round_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("ack"), proc.stderr.read() if proc.stderr else first
        time.sleep(rng.uniform(0.0, 0.4))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        kills += 1
        # A kill can cut the last line short: only whole lines (ending in a newline) count.
        for line in [first, *out.split("\n")[:-1]]:
            if line.startswith("ack "):
                _, part, last = line.split()
                acked[int(part)] = max(acked.get(int(part), -1), int(last))
        total = asyncio.run(_verify(data, acked))
        assert total >= sum(v + 1 for v in acked.values())
    assert kills == 20


async def test_a_full_disk_refuses_the_write_and_keeps_the_log_whole(small_disk: Path) -> None:
    store = LogStore.open(small_disk / "data")
    p = store.create_topic("t").partitions[0]
    ballast = small_disk / "ballast"
    ballast.write_bytes(b"\0" * 400_000)
    acked = 0
    error = None
    for _ in range(10_000):
        batch = encode_batch([Record(None, b"%08d" % (acked + j) + b"." * 92) for j in range(50)])
        try:
            result = p.append(batch)
        except StoreWriteError as exc:
            error = exc
            break
        await p.durable(result.last_offset + 1)
        acked = result.last_offset + 1
    assert error is not None, "the disk never filled"
    message = str(error)
    assert "\n" not in message
    assert "No space left on device" in message and "nothing was written" in message
    assert p.log_end_offset == acked
    # The log is consistent: everything acknowledged reads back.
    got = p.read_records(0, max_bytes=1 << 22)
    while got[-1].offset + 1 < acked:
        got += p.read_records(got[-1].offset + 1, max_bytes=1 << 22)
    assert [r.value[:8] for r in got] == [b"%08d" % i for i in range(acked)]
    # Space comes back: writing resumes where it stopped.
    ballast.unlink()
    result = p.append(encode_batch([Record(None, b"%08d" % acked + b"." * 92)]))
    await p.durable(result.last_offset + 1)
    assert result.base_offset == acked
    await store.close()
    store = LogStore.open(small_disk / "data")
    assert store.topic("t").partitions[0].log_end_offset == acked + 1
    await store.close()


async def test_a_disk_full_while_rolling_segments_never_hangs_a_writer(small_disk: Path) -> None:
    # Tiny segments: the disk fills while writing logs, indexes and new segment files alike.
    store = LogStore.open(small_disk / "data")
    p = store.create_topic("t", config={"segment.bytes": "1024"}).partitions[0]
    acked = refused = 0
    for i in range(3000):
        batch = encode_batch([Record(None, b"%08d" % i + b"." * 200)])
        try:
            result = p.append(batch)
            await asyncio.wait_for(p.durable(result.last_offset + 1), 10)
            acked += 1
        except StoreWriteError as exc:
            assert "\n" not in str(exc)
            refused += 1
            if refused > 20:
                break
    assert refused, "the disk never filled"
    assert p.high_watermark == acked
    await store.close()
    store = LogStore.open(small_disk / "data")
    p = store.topic("t").partitions[0]
    assert p.log_end_offset >= acked
    await store.close()
