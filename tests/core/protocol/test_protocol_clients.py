"""Real Kafka clients talk to a stub that speaks only through the protocol package: they accept
our ApiVersions and Metadata answers (they go on to their next request) and we decode every
request they send. kafka-python asks for ApiVersions v4 first and gets the v0 fallback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

import confluent_kafka
import pytest
from kafka import KafkaProducer

from millstream.core.protocol import (
    SUPPORTED_VERSIONS,
    ApiKey,
    advertised_api_keys,
    api_versions_fallback,
    decode_request,
    decode_request_header,
    encode_response,
    read_frame,
    response_class,
)


@dataclass
class Stub:
    """Answers ApiVersions and Metadata; records every request as (key, version)."""

    port: int = 0
    seen: list[tuple[int, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while (frame := await read_frame(reader)) is not None:
                header, _ = decode_request_header(frame)
                self.seen.append((header.api_key, header.api_version))
                support = SUPPORTED_VERSIONS[ApiKey.API_VERSIONS]
                if header.api_key == ApiKey.API_VERSIONS and not support.serves(header.api_version):
                    writer.write(api_versions_fallback(header))
                    continue
                header, body = decode_request(frame)
                if header.api_key == ApiKey.API_VERSIONS:
                    answer = response_class(ApiKey.API_VERSIONS)(api_keys=advertised_api_keys())
                    writer.write(encode_response(header, answer))
                elif header.api_key == ApiKey.METADATA:
                    writer.write(encode_response(header, self.metadata(body)))
                await writer.drain()
        except Exception as exc:  # the test reports it
            self.errors.append(repr(exc))
        finally:
            writer.close()

    def metadata(self, request: object) -> object:
        meta = response_class(ApiKey.METADATA)
        topics = getattr(request, "topics", None) or []
        return meta(
            brokers=[meta.Brokers(node_id=1, host="127.0.0.1", port=self.port)],
            cluster_id="stub",
            controller_id=1,
            topics=[
                meta.Topics(
                    name=t.name,
                    partitions=[
                        meta.Topics.Partitions(leader_id=1, replica_nodes=[1], isr_nodes=[1])
                    ],
                )
                for t in topics
            ],
        )


@pytest.fixture
async def stub() -> AsyncIterator[Stub]:
    stub = Stub()
    server = await asyncio.start_server(stub.serve, "127.0.0.1", 0)
    stub.port = server.sockets[0].getsockname()[1]
    yield stub
    server.close()


async def _until(stub: Stub, done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        await asyncio.sleep(0.05)


def _after_metadata(stub: Stub) -> bool:
    keys = [k for k, _ in stub.seen]
    return ApiKey.METADATA in keys and len(keys) > keys.index(ApiKey.METADATA) + 1


async def test_librdkafka_accepts_our_answers(stub: Stub) -> None:
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": f"127.0.0.1:{stub.port}", "enable.idempotence": True}
    )
    producer.produce("orders", b"v")
    await _until(stub, lambda: (producer.poll(0), _after_metadata(stub))[1])
    producer.purge()
    producer.flush(0)
    assert not stub.errors
    assert stub.seen[0] == (ApiKey.API_VERSIONS, 3)
    assert ApiKey.METADATA in [k for k, _ in stub.seen]  # it accepted our ApiVersions answer
    assert _after_metadata(stub), stub.seen  # and our Metadata answer (InitProducerId follows)


async def test_kafka_python_falls_back_and_accepts_our_answers(stub: Stub) -> None:
    def run_client() -> None:
        producer = KafkaProducer(
            bootstrap_servers=f"127.0.0.1:{stub.port}", request_timeout_ms=3000, max_block_ms=3000
        )
        try:
            producer.partitions_for("orders")
        finally:
            producer.close(timeout=1)

    await asyncio.to_thread(run_client)
    assert not stub.errors
    first, retry = stub.seen[0], stub.seen[1]
    assert first[0] == ApiKey.API_VERSIONS and first[1] > 3  # a version we do not serve
    assert retry == (ApiKey.API_VERSIONS, 3)  # what our fallback told it to use
    assert (ApiKey.METADATA, 8) in stub.seen
