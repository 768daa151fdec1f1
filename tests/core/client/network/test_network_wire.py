"""One broker connection against a stub that speaks through the protocol package: API versions
are negotiated, and a broker that stops answering is taken for lost, not waited on forever."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from millstream.core.client.network import BrokerUnavailableError
from millstream.core.client.network.wire import BrokerConnection
from millstream.core.protocol import (
    SUPPORTED_VERSIONS,
    ApiKey,
    ErrorCode,
    RequestHeader,
    advertised_api_keys,
    decode_request,
    decode_request_header,
    encode_response,
    read_frame,
    request_class,
    response_class,
)


class Stub:
    """Answers ApiVersions (only up to ``top``) and nothing else."""

    def __init__(self, top: int) -> None:
        self.top = top
        self.asked: list[int] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while (frame := await read_frame(reader)) is not None:
            header, _ = decode_request_header(frame)
            if header.api_key != ApiKey.API_VERSIONS:
                continue  # never answered
            self.asked.append(header.api_version)
            if header.api_version > self.top:  # Kafka's answer: v0, naming what it serves
                answer = response_class(ApiKey.API_VERSIONS)
                writer.write(
                    encode_response(
                        RequestHeader(ApiKey.API_VERSIONS, 0, header.correlation_id),
                        answer(
                            error_code=ErrorCode.UNSUPPORTED_VERSION,
                            api_keys=[answer.ApiKeys(ApiKey.API_VERSIONS, 0, self.top)],  # type: ignore[attr-defined]
                        ),
                    )
                )
                continue
            header, _ = decode_request(frame)
            keys = [k for k in advertised_api_keys() if k.api_key != ApiKey.API_VERSIONS]
            keys.append(
                response_class(ApiKey.API_VERSIONS).ApiKeys(ApiKey.API_VERSIONS, 0, self.top)
            )  # type: ignore[attr-defined]
            writer.write(
                encode_response(header, response_class(ApiKey.API_VERSIONS)(api_keys=keys))
            )
            await writer.drain()


@pytest.fixture
async def stub() -> AsyncIterator[tuple[Stub, int]]:
    found = Stub(top=2)
    server = await asyncio.start_server(found.serve, "127.0.0.1", 0)
    yield found, server.sockets[0].getsockname()[1]
    server.close()


async def test_versions_are_negotiated_down_and_a_silent_broker_is_dropped(stub) -> None:
    found, port = stub
    connection = BrokerConnection("127.0.0.1", port, client_id="test")
    await connection.open(timeout_s=5)
    assert found.asked == [3, 2]  # v3 first, then the version the broker said it serves
    assert connection.version(ApiKey.METADATA) == SUPPORTED_VERSIONS[ApiKey.METADATA].served[1]
    body = request_class(ApiKey.METADATA)(topics=None)
    with pytest.raises(BrokerUnavailableError, match="did not answer METADATA within 0.3 s"):
        await connection.request(ApiKey.METADATA, body, timeout_s=0.3)
    assert not connection.connected
    await connection.close()


async def test_nothing_listening_is_a_clear_error() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    with pytest.raises(BrokerUnavailableError, match=f"127.0.0.1:{port}.*millstream broker"):
        await BrokerConnection("127.0.0.1", port, client_id="test").open(timeout_s=5)
