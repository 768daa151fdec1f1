"""The Millstream demo: sensor readings through the embedded store, end to end.

It creates a topic, produces a few thousand keyed JSON readings, reads them back as a consumer
group, and prints what a user would want to see: where the records landed, a few of them, and the
group's lag before and after it commits. It runs in a temporary directory unless --data-dir is
given (then the store stays for ``millstream --data-dir DIR topics describe readings``).

    python examples/demo.py [--data-dir DIR] [--records N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from millstream.core.client import Admin, Connection, connect
from millstream.core.errors import MillstreamError

TOPIC = "readings"
GROUP = "dashboard"
SENSORS = [f"sensor-{n:02d}" for n in range(1, 13)]


def render_table(headers: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    """Columns padded to their widest cell."""
    cells = [headers, *[tuple("-" if v is None else str(v) for v in row) for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in cells
    )


async def produce(conn: Connection, count: int) -> float:
    """Send ``count`` readings keyed by sensor; returns the seconds it took."""
    rng = random.Random(7)
    started = time.perf_counter()
    async with conn.producer() as producer:
        base = int(time.time() * 1000) - count * 10
        for i in range(count):
            sensor = SENSORS[i % len(SENSORS)]
            reading = {
                "sensor": sensor,
                "seq": i,
                "temperature": round(18 + rng.gauss(3, 1.5), 2),
                "humidity": round(rng.uniform(30, 60), 1),
            }
            producer.send(
                TOPIC, json.dumps(reading).encode(), key=sensor.encode(), timestamp=base + i * 10
            )
        await producer.flush()
    return time.perf_counter() - started


async def lag(admin: Admin) -> tuple[int, list[tuple[int, int | None, int, int]]]:
    """The group's total lag, and per partition (partition, committed, end, lag)."""
    group = await admin.describe_group(GROUP)
    topic = await admin.describe_topic(TOPIC)
    committed = {o.partition: o.committed for o in group.offsets if o.topic == TOPIC}
    rows = []
    for p in topic.partitions:
        done = committed.get(p.partition)
        behind = p.latest_offset - (p.earliest_offset if done is None else done)
        rows.append((p.partition, done, p.latest_offset, behind))
    return sum(row[3] for row in rows), rows


async def run(data_dir: Path, count: int) -> None:
    print(f"millstream demo: embedded store in {data_dir}\n")
    async with await connect(f"file:{data_dir}") as conn, conn.admin() as admin:
        await admin.create_topic(TOPIC, partitions=3)
        seconds = await produce(conn, count)
        print(f"produced {count} readings from {len(SENSORS)} sensors in {seconds:.2f} s\n")

        topic = await admin.describe_topic(TOPIC)
        keys_per_partition: dict[int, set[str]] = {p.partition: set() for p in topic.partitions}
        consumer = conn.consumer([TOPIC], group=GROUP, auto_offset_reset="earliest")
        async with consumer:
            seen, samples, temperatures = 0, [], []
            deadline = time.monotonic() + 10
            while seen < count and time.monotonic() < deadline:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    for record in records:
                        keys_per_partition[tp.partition].add((record.key or b"").decode())
                        temperatures.append(json.loads(record.value or b"{}")["temperature"])
                        if len(samples) < 4 and record.offset < 2:
                            samples.append(record)
                    seen += len(records)

            print("where the records landed (a sensor's readings all go to one partition):")
            print(
                render_table(
                    ("PARTITION", "RECORDS", "SIZE-BYTES", "SENSORS"),
                    [
                        (
                            p.partition,
                            p.latest_offset - p.earliest_offset,
                            p.size_bytes,
                            ", ".join(sorted(keys_per_partition[p.partition])),
                        )
                        for p in topic.partitions
                    ],
                )
            )
            print("\na few records:")
            for record in samples:
                print(
                    f"  {TOPIC}-{record.partition} @ {record.offset}  "
                    f"key={(record.key or b'').decode()}  {(record.value or b'').decode()}"
                )
            mean = sum(temperatures) / max(1, len(temperatures))
            print(f"\nconsumer group {GROUP!r} read {seen} records; mean temperature {mean:.2f} C")

            total, rows = await lag(admin)
            print(f"\nlag before commit: {total}")
            await consumer.commit()
            total_after, rows_after = await lag(admin)
            print(f"lag after commit:  {total_after}")
            print(
                render_table(
                    ("PARTITION", "COMMITTED", "END", "LAG-BEFORE", "LAG-AFTER"),
                    [
                        (p, after[1], p_end, before_lag, after[3])
                        for (p, _, p_end, before_lag), after in zip(rows, rows_after, strict=True)
                    ],
                )
            )
    if seen != count or total_after != 0:
        raise SystemExit(f"demo failed: read {seen} of {count}, lag after commit {total_after}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, help="keep the store here (default: temporary)")
    parser.add_argument("--records", type=int, default=5000, help="readings to produce")
    args = parser.parse_args()
    try:
        if args.data_dir is not None:
            asyncio.run(run(args.data_dir, args.records))
            print(
                f"\nthe store stays: millstream --data-dir {args.data_dir} topics describe {TOPIC}"
            )
        else:
            with tempfile.TemporaryDirectory(prefix="millstream-demo-") as tmp:
                asyncio.run(run(Path(tmp) / "store", args.records))
    except MillstreamError as exc:
        print(f"millstream: error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
