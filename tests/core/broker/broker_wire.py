"""A minimal Kafka-protocol client for broker tests, built on core.protocol: one connection,
requests encoded with ``encode_request``, responses read back in order."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from typing import Any

from millstream.core.log import encode_batch
from millstream.core.protocol import (
    RequestHeader,
    decode_response,
    encode_request,
    read_frame,
    request_class,
)
from millstream.core.record import Record

__all__ = ["Wire", "batch", "request"]


def request(api_key: int, **fields: Any) -> Any:
    """A request body of ``api_key`` with ``fields``."""
    return request_class(api_key)(**fields)


def batch(*values: bytes, key: bytes | None = None, **kwargs: Any) -> bytes:
    """One RecordBatch v2 of records with ``values``."""
    return bytes(encode_batch([Record(key=key, value=v) for v in values], **kwargs))


class Wire:
    """One TCP connection to a broker."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self._correlation = itertools.count(1)

    @classmethod
    async def connect(cls, host: str, port: int) -> Wire:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    def send(self, api_key: int, version: int, body: Any) -> RequestHeader:
        """Write a request without waiting; its header (to read the answer with)."""
        header = RequestHeader(api_key, version, next(self._correlation), "broker-test")
        self.writer.write(encode_request(header, body))
        return header

    async def receive(self, header: RequestHeader, timeout: float = 10) -> Any:
        """The response to ``header`` (the next frame on the connection)."""
        frame = await asyncio.wait_for(read_frame(self.reader), timeout)
        assert frame is not None, "the broker closed the connection"
        response_header, body = decode_response(header.api_key, header.api_version, frame)
        assert response_header.correlation_id == header.correlation_id
        return body

    async def call(self, api_key: int, version: int, body: Any, timeout: float = 10) -> Any:
        header = self.send(api_key, version, body)
        await self.writer.drain()
        return await self.receive(header, timeout)

    async def closed(self, timeout: float = 5) -> bool:
        """True when the broker closes the connection within ``timeout``: EOF, or a reset
        (what the peer's kernel sends when it closes with requests still unread)."""
        try:
            data = await asyncio.wait_for(self.reader.read(1 << 16), timeout)
        except ConnectionError:
            return True
        except TimeoutError:
            return False
        return data == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()
