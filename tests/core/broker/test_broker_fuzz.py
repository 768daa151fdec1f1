"""Malformed requests thrown at a live broker, which must then still serve a normal client.

Valid request frames of the broker's APIs are mutated (bytes flipped, cut, lengths changed,
garbage spliced in) and sent on a few connections, pipelined; a connection the broker closes
for a malformed frame is opened again. Requests that still decode are answered (with error
codes); the others close their connection. ``MILLSTREAM_FUZZ_REQUESTS`` sets how many are
sent: 100,000 by default, in the regular suite too (about 45 seconds on a quiet two-core
machine, a few minutes under load: most malformed frames close their connection, so the run is
mostly connections opened and closed); a smaller count is for trying a change quickly.
"""

from __future__ import annotations

import asyncio
import os
import random

import pytest
from broker_server import BrokerServer
from broker_wire import Wire, batch, request

from millstream.core.protocol import ApiKey, RequestHeader, encode_request

REQUESTS = int(os.environ.get("MILLSTREAM_FUZZ_REQUESTS", "100000"))
CONNECTIONS = 8
PER_CONNECTION = 20


def seeds() -> list[bytes]:
    """Valid frames of many APIs and versions, without the size prefix."""
    produce = request(ApiKey.PRODUCE).__class__
    fetch = request(ApiKey.FETCH).__class__
    metadata = request(ApiKey.METADATA).__class__
    bodies = [
        (ApiKey.API_VERSIONS, 3, request(ApiKey.API_VERSIONS)),
        (ApiKey.API_VERSIONS, 0, request(ApiKey.API_VERSIONS)),
        (ApiKey.METADATA, 8, metadata(topics=[metadata.Topics("fuzz")])),
        (ApiKey.METADATA, 1, metadata(topics=None)),
        (
            ApiKey.PRODUCE,
            8,
            produce(
                acks=1,
                timeout_ms=100,
                topic_data=[
                    produce.TopicData(
                        "fuzz", [produce.TopicData.PartitionData(0, batch(b"v", key=b"k"))]
                    )
                ],
            ),
        ),
        (
            ApiKey.FETCH,
            11,
            fetch(
                max_wait_ms=0,
                min_bytes=0,
                topics=[fetch.Topics("fuzz", [fetch.Topics.Partitions(0, -1, 0, -1, 1024)])],
            ),
        ),
        (ApiKey.INIT_PRODUCER_ID, 1, request(ApiKey.INIT_PRODUCER_ID, transactional_id=None)),
        (ApiKey.DESCRIBE_LOG_DIRS, 1, request(ApiKey.DESCRIBE_LOG_DIRS, topics=None)),
        (ApiKey.LIST_GROUPS, 2, request(ApiKey.LIST_GROUPS)),
    ]
    return [
        encode_request(RequestHeader(key, version, 1, "fuzz"), body)[4:]
        for key, version, body in bodies
    ]


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """``frame`` damaged: most often one byte of the body changed (which mostly still decodes,
    into values the handlers must refuse), else cut, grown, given lying lengths or replaced."""
    data = bytearray(frame)
    if rng.random() < 0.7:
        # header bytes (key, version) kept: a request of a known API with a damaged body
        at = rng.randrange(8, len(data)) if len(data) > 8 else 0
        data[at] = rng.randrange(256)
        return bytes(data)
    for _ in range(rng.randint(1, 4)):
        choice = rng.random()
        if choice < 0.45 and data:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif choice < 0.6:
            del data[rng.randrange(len(data) + 1) :]
        elif choice < 0.75:
            at = rng.randrange(len(data) + 1)
            data[at:at] = rng.randbytes(rng.randint(1, 16))
        elif choice < 0.9 and len(data) > 12:
            at = rng.randrange(8, len(data) - 3)  # a length field somewhere: make it lie
            data[at : at + 4] = rng.choice(
                [b"\x7f\xff\xff\xff", b"\xff\xff\xff\xfe", b"\x00\x00\xff\xff"]
            )
        else:
            data = bytearray(rng.randbytes(rng.randint(0, 64)))
    return bytes(data)


async def count_answers(reader: asyncio.StreamReader) -> int:
    """Response frames read until the broker closes the connection."""
    answers = 0
    try:
        while True:
            size = int.from_bytes(await reader.readexactly(4), "big")
            await reader.readexactly(size)
            answers += 1
    except (asyncio.IncompleteReadError, ConnectionError):
        return answers


async def hammer(server: BrokerServer, frames: list[bytes], worker: int, count: int) -> int:
    """Send mutated frames until ``count`` of them were dealt with by the broker: answered, or
    refused by closing the connection. Returns how many were."""
    rng = random.Random(worker)
    handled = 0
    while handled < count:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        answers = asyncio.ensure_future(count_answers(reader))
        try:
            for _ in range(PER_CONNECTION):
                payload = mutate(rng, rng.choice(frames))
                writer.write(len(payload).to_bytes(4, "big") + payload)
            writer.write_eof()  # the broker answers or refuses what came, then sees the end
            await writer.drain()
        except OSError:  # the broker closed it already
            pass
        answered = await answers
        writer.close()
        # every answer was a request handled; the frame after the last answer (if any was
        # left) was the malformed one that closed the connection
        handled += answered + (1 if answered < PER_CONNECTION else 0)
    return handled


@pytest.mark.timeout(max(300, REQUESTS // 40))
async def test_a_broker_survives_malformed_requests(tmp_path):
    server = BrokerServer(tmp_path / "data", None, "--no-auto-create-topics").start()
    try:
        frames = seeds()
        share = REQUESTS // CONNECTIONS
        handled = await asyncio.gather(
            *(hammer(server, frames, w, share) for w in range(CONNECTIONS))
        )
        assert sum(handled) >= REQUESTS - CONNECTIONS
        assert server.process is not None and server.process.poll() is None
        wire = await Wire.connect(server.host, server.port)
        try:
            response = await wire.call(ApiKey.API_VERSIONS, 3, request(ApiKey.API_VERSIONS))
            assert response.error_code == 0
            metadata = await wire.call(ApiKey.METADATA, 8, request(ApiKey.METADATA, topics=None))
            assert metadata.brokers[0].port == server.port
        finally:
            await wire.close()
        assert server.stop() == 0
        assert "Traceback" not in server.log()  # refused or answered, never a handler failure
    finally:
        server.kill()
