"""The wire codec: decoding Produce requests, encoding Fetch and Metadata responses.

Each figure is beside kafka-python's own message classes doing the same work on the same bytes
(its codec is also compiled from schemas, so it is a fair baseline). ``records`` sets the size
of a round: ``records // 100`` messages (at least 1,000).
"""

from __future__ import annotations

from collections.abc import Callable

from kafka.protocol.consumer import FetchResponse
from kafka.protocol.metadata import MetadataResponse
from kafka.protocol.producer import ProduceRequest

from millstream.core.log import encode_batch
from millstream.core.protocol import (
    ApiKey,
    RequestHeader,
    decode_request,
    encode_request,
    encode_response,
    request_class,
    response_class,
)
from millstream.core.record import Record

from ._harness import Result, median, timed

PARTITIONS = 6
TOPICS = 50


def _batch() -> bytes:
    return encode_batch([Record(b"k%d" % i, b"v" * 100, (), 1_700_000_000_000) for i in range(100)])


def _produce_frame(batch: bytes) -> bytes:
    produce = request_class(ApiKey.PRODUCE)
    body = produce(
        acks=1,
        timeout_ms=30000,
        topic_data=[
            produce.TopicData(
                name="orders",
                partition_data=[
                    produce.TopicData.PartitionData(index=p, records=batch)
                    for p in range(PARTITIONS)
                ],
            )
        ],
    )
    return encode_request(RequestHeader(ApiKey.PRODUCE, 7, 1, "bench"), body)


def _fetch_body(batch: bytes) -> object:
    fetch = response_class(ApiKey.FETCH)
    return fetch(
        responses=[
            fetch.Responses(
                topic="orders",
                partitions=[
                    fetch.Responses.Partitions(
                        partition_index=p,
                        high_watermark=1000,
                        last_stable_offset=1000,
                        log_start_offset=0,
                        records=batch,
                    )
                    for p in range(PARTITIONS)
                ],
            )
        ]
    )


def _metadata_body() -> object:
    meta = response_class(ApiKey.METADATA)
    return meta(
        brokers=[meta.Brokers(node_id=1, host="localhost", port=9092)],
        cluster_id="bench",
        controller_id=1,
        topics=[
            meta.Topics(
                name=f"topic-{t}",
                partitions=[
                    meta.Topics.Partitions(
                        partition_index=p, leader_id=1, replica_nodes=[1], isr_nodes=[1]
                    )
                    for p in range(PARTITIONS)
                ],
            )
            for t in range(TOPICS)
        ],
    )


def _rates(count: int, runs: int, ours: Callable[[], object], theirs: Callable[[], object]):
    def loop(fn: Callable[[], object]) -> Callable[[], None]:
        def go() -> None:
            for _ in range(count):
                fn()

        return go

    mine = [count / timed(loop(ours)) for _ in range(runs)]
    base = [count / timed(loop(theirs)) for _ in range(runs)]
    return mine, base


def run(runs: int, records: int) -> list[Result]:
    count = max(1000, records // 100)
    batch = _batch()
    results = []

    frame = _produce_frame(batch)[4:]
    header_len = 2 + 2 + 4 + 2 + len("bench")
    mine, base = _rates(
        count,
        runs,
        lambda: decode_request(frame),
        lambda: ProduceRequest.decode(frame[header_len:], version=7),
    )
    results.append(
        Result(
            f"decode Produce v7 request ({PARTITIONS} partitions of {len(batch):,}-byte batches)",
            "requests/s",
            median(mine),
            "(reported)",
            True,
            median(base),
            "kafka-python's ProduceRequest.decode (body only)",
            mine,
            base,
        )
    )

    fetch = _fetch_body(batch)
    fetch_bytes = encode_response(RequestHeader(ApiKey.FETCH, 11, 1), fetch)
    theirs_fetch = FetchResponse.decode(fetch_bytes, version=11, header=True, framed=True)
    mine, base = _rates(
        count,
        runs,
        lambda: encode_response(RequestHeader(ApiKey.FETCH, 11, 1), fetch),
        lambda: theirs_fetch.encode(),
    )
    results.append(
        Result(
            f"encode Fetch v11 response ({PARTITIONS} partitions)",
            "responses/s",
            median(mine),
            "(reported)",
            True,
            median(base),
            "kafka-python's FetchResponse.encode",
            mine,
            base,
        )
    )

    meta = _metadata_body()
    meta_bytes = encode_response(RequestHeader(ApiKey.METADATA, 8, 1), meta)
    theirs_meta = MetadataResponse.decode(meta_bytes, version=8, header=True, framed=True)
    mine, base = _rates(
        max(100, count // 10),
        runs,
        lambda: encode_response(RequestHeader(ApiKey.METADATA, 8, 1), meta),
        lambda: theirs_meta.encode(),
    )
    results.append(
        Result(
            f"encode Metadata v8 response ({TOPICS} topics × {PARTITIONS} partitions)",
            "responses/s",
            median(mine),
            "(reported)",
            True,
            median(base),
            "kafka-python's MetadataResponse.encode",
            mine,
            base,
        )
    )
    return results


if __name__ == "__main__":
    for result in run(3, 200_000):
        print(f"{result.name}: {result.value:,.0f} {result.unit} (baseline {result.baseline:,.0f})")
