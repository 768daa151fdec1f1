"""Segment files are Kafka's format: an independent parser reads them with every CRC valid."""

from __future__ import annotations

import struct

import pytest
from kafka.record.default_records import DefaultRecordBatch

from millstream.core.log import Compression, LogStore, encode_batch
from millstream.core.record import Record


@pytest.mark.parametrize("codec", list(Compression))
async def test_kafka_python_reads_our_segment_files(store: LogStore, codec: Compression) -> None:
    p = store.create_topic("t", config={"segment.bytes": "1024"}).partitions[0]
    sent = []
    for b in range(30):
        recs = [
            Record(
                f"key-{b}-{i}".encode() if i % 3 else None,
                f"value {b}/{i}".encode() * 5,
                (("trace", f"{b}.{i}".encode()),) if i % 2 else (),
                1_700_000_000_000 + b,
            )
            for i in range(10)
        ]
        sent.extend(recs)
        result = p.append(encode_batch(recs, compression=codec))
        await p.durable(result.last_offset + 1)
    assert p.segment_count > 1
    seen = []
    for segment in p.segments:
        data = segment.path.read_bytes()
        pos = 0
        while pos < len(data):
            (length,) = struct.unpack_from(">i", data, pos + 8)
            batch = DefaultRecordBatch(data[pos : pos + 12 + length])
            assert batch.validate_crc()
            assert batch.compression_type == int(codec)
            seen.extend(batch)
            pos += 12 + length
    assert [r.offset for r in seen] == list(range(300))
    assert [(r.key, r.value, r.timestamp) for r in seen] == [
        (s.key, s.value, s.timestamp) for s in sent
    ]
    assert [list(r.headers) for r in seen] == [list(s.headers) for s in sent]
