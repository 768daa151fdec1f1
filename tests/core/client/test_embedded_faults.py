"""A producing process killed with SIGKILL at random moments loses no acknowledged record."""

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

from millstream.core.client import connect
from millstream.core.record import TopicPartition

PRODUCER = textwrap.dedent(
    """
    import asyncio, random, sys
    from millstream.core.client import connect

    async def main(path, round_):
        rng = random.Random(round_)
        async with await connect(f"file:{path}") as conn:
            admin = conn.admin()
            if "events" not in await admin.list_topics():
                await admin.create_topic("events", 3, config={"segment.bytes": "16384"})
            producer = conn.producer(linger_ms=rng.choice([0, 1, 5]))
            seq = round_ * 10_000_000
            while True:
                burst = []
                for _ in range(rng.randint(1, 200)):
                    key = f"k{rng.randint(0, 20)}".encode() if rng.random() < 0.5 else None
                    burst.append((seq, producer.send("events", b"seq-%d-" % seq + b"v" * 40, key)))
                    seq += 1
                lines = []
                for n, delivery in burst:
                    meta = await delivery
                    lines.append(f"ack {meta.partition} {meta.offset} {n}\\n")
                sys.stdout.write("".join(lines))
                sys.stdout.flush()

    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
    """
)


async def _read_all(path: Path) -> dict[tuple[int, int], bytes]:
    found: dict[tuple[int, int], bytes] = {}
    async with await connect(f"file:{path}") as conn:
        consumer = conn.consumer()
        tps = [TopicPartition("events", p) for p in range(3)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        while True:
            batches = await consumer.getmany(timeout_ms=200)
            if not batches:
                break
            for tp, records in batches.items():
                for record in records:
                    assert record.value is not None
                    found[(tp.partition, record.offset)] = record.value
        await consumer.close()
    return found


@pytest.mark.slow
def test_kill_9_of_a_producer_never_loses_an_acknowledged_record(tmp_path: Path) -> None:
    script = tmp_path / "producer.py"
    script.write_text(PRODUCER)
    data = tmp_path / "data"
    rng = random.Random(1125)
    acked: dict[tuple[int, int], int] = {}
    for round_ in range(1, 21):
        proc = subprocess.Popen(
            [sys.executable, str(script), str(data), str(round_)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None and proc.stderr is not None
        first = proc.stdout.readline()
        assert first.startswith("ack "), proc.stderr.read()
        time.sleep(rng.uniform(0.0, 0.3))
        proc.send_signal(signal.SIGKILL)
        out, _ = proc.communicate()
        assert proc.returncode == -signal.SIGKILL
        # A kill can cut the last line short: only whole lines (ending in a newline) count.
        for line in [first, *out.split("\n")[:-1]]:
            if line.startswith("ack "):
                _, partition, offset, seq = line.split()
                acked[(int(partition), int(offset))] = int(seq)
        stored = asyncio.run(_read_all(data))
        # Every acknowledged record is there, at the offset it was acknowledged with.
        for place, seq in acked.items():
            assert stored.get(place, b"").startswith(b"seq-%d-" % seq), place
        # Nothing served is corrupt: every record is one the producer wrote, whole.
        for value in stored.values():
            assert value.startswith(b"seq-") and value.endswith(b"v" * 40)
        # Offsets are dense in every partition.
        for p in range(3):
            offsets = sorted(o for (q, o) in stored if q == p)
            assert offsets == list(range(len(offsets)))
