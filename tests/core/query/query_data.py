"""The records of the query tests' store (see conftest.py)."""

from __future__ import annotations

from pathlib import Path

import orjson

from millstream.core.client import connect
from millstream.core.record import Record

T0 = 1_700_000_000_000
READINGS = 2_000
CODECS = ("gzip", "snappy", "lz4", "zstd")  # "zipped": readings 0-39, ten per codec


def reading(n: int) -> Record:
    value = {
        "device_id": f"dev-{n % 5}",
        "temp": 20 + n % 10,
        "n": n,
        "location": {"lat": n / 100, "lon": -n / 100},
    }
    if n % 100 == 0:
        value["extra"] = "x"
    headers = (("src", b"gen"),) if n % 50 == 0 else ()
    return Record(f"dev-{n % 5}".encode(), orjson.dumps(value), headers, T0 + n * 1000)


async def fill(path: Path) -> None:
    async with await connect(f"file:{path}") as conn:
        admin = conn.admin()
        await admin.create_topic(
            "readings", 2, config={"segment.bytes": "8192", "retention.ms": "-1"}
        )
        await admin.create_topic("logs", 1, config={"codec": "text"})
        await admin.create_topic("blobs", 1, config={"codec": "bytes"})
        await admin.create_topic("mixed", 1)
        await admin.create_topic("empty", 1)
        await admin.create_topic("stamped", 1, config={"message.timestamp.type": "LogAppendTime"})
        async with conn.producer() as producer:
            records = [reading(n) for n in range(READINGS)]
            for start in range(0, READINGS, 50):  # n // 50 even → partition 0, odd → 1
                await producer.send_batch(
                    "readings", records[start : start + 50], partition=(start // 50) % 2
                )
            await producer.send_batch(
                "logs", [Record(None, b"started"), Record(b"dev-1", b"dev-1 is hot")]
            )
            await producer.send_batch("blobs", [Record(b"dev-1", b"\x00\xff\x01")])
            mixed = [b'{"a": 1}', b'{"a": 1.5, "b": "x"}', b'{"a": "s"}', b'{"c": {"d": [1, 2]}}']
            await producer.send_batch("mixed", [Record(None, v) for v in [*mixed, b"not json"]])
            await producer.send_batch("blobs", [Record(b"\xffkey", b"", (("h", b"\xfe"),))])
            await producer.send_batch("stamped", [Record(None, b"{}", (), 1000)])
        await admin.create_topic("zipped", 1)
        for i, codec in enumerate(CODECS):
            async with conn.producer(compression=codec) as producer:
                await producer.send_batch(
                    "zipped", [reading(n) for n in range(i * 10, i * 10 + 10)]
                )
