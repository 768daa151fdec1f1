"""One TCP connection to one broker: pipelined requests matched to responses by correlation id.

:class:`BrokerConnection` writes each request as soon as it is made and keeps a future per
correlation id; one reader task decodes responses as they arrive (a broker answers the requests
of a connection in order, but nothing here relies on it). When the connection opens it asks
the broker's API versions (ApiVersions v3, falling back to the version the broker names when it
answers UNSUPPORTED_VERSION in v0) and from then on speaks, per API, the highest version both
sides know: the same client talks to a millstream broker and to Apache Kafka.

A lost connection fails every pending request with :class:`BrokerUnavailableError`; the caller
(the cluster) opens a new one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import struct
from typing import Any

from ...errors import ProtocolError, StoreError
from ...protocol import (
    API_KEYS,
    ApiKey,
    ErrorCode,
    RequestHeader,
    decode_response,
    encode_request,
    read_frame,
    request_class,
    response_correlation_id,
)

__all__ = ["BrokerConnection", "BrokerUnavailableError"]

log = logging.getLogger(__name__)

_ERROR_AT = struct.Struct(">h")
_CLIENT_SOFTWARE = "millstream"


class BrokerUnavailableError(StoreError):
    """A broker could not be reached, or the connection to it was lost (retriable)."""


class BrokerConnection:
    """A connection to the broker at ``host:port`` (``node_id`` -1 for a bootstrap address)."""

    def __init__(self, host: str, port: int, *, client_id: str, node_id: int = -1) -> None:
        self.host = host
        self.port = port
        self.node_id = node_id
        self.client_id = client_id
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, tuple[int, int, asyncio.Future[Any]]] = {}
        self._ids = itertools.count(1)
        self._versions: dict[int, int] = {}
        self._task: asyncio.Task[None] | None = None
        self._lost: BaseException | None = None
        self.timeout_s = 30.0
        """How long a request may wait for its answer (Kafka's ``request.timeout.ms``)."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._writer is not None and self._lost is None

    async def open(self, timeout_s: float = 10.0) -> None:
        """Connect and negotiate API versions; BrokerUnavailableError when it cannot."""
        try:
            self._reader, self._writer = await asyncio.wait_for(
                asyncio.open_connection(self.host, self.port), timeout_s
            )
        except (OSError, TimeoutError) as exc:
            reason = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
            raise BrokerUnavailableError(
                f"cannot connect to broker {self.address}: {reason}; is `millstream broker` "
                "running there?"
            ) from None
        self._task = asyncio.get_running_loop().create_task(
            self._read_responses(), name=f"millstream-broker-{self.address}"
        )
        try:
            await asyncio.wait_for(self._negotiate(), timeout_s)
        except TimeoutError:
            await self.close()
            raise BrokerUnavailableError(
                f"broker {self.address} accepted the connection but did not answer ApiVersions "
                f"within {timeout_s:g} s; is it a Kafka broker, and is it responsive?"
            ) from None
        except BaseException:
            await self.close()
            raise

    async def _negotiate(self) -> None:
        """Learn the broker's API versions: v3 first, else the version it says it serves."""
        low, high = API_KEYS[ApiKey.API_VERSIONS].versions.low, 3
        body = request_class(ApiKey.API_VERSIONS)(
            client_software_name=_CLIENT_SOFTWARE, client_software_version="1"
        )
        version = high
        for _ in range(2):
            answer = await self.request(ApiKey.API_VERSIONS, body, version=version)
            if answer.error_code == ErrorCode.UNSUPPORTED_VERSION:
                theirs = {e.api_key: e.max_version for e in answer.api_keys}
                version = max(low, min(high, theirs.get(ApiKey.API_VERSIONS, 0)))
                continue
            if answer.error_code:
                raise BrokerUnavailableError(
                    f"broker {self.address} refused ApiVersions: "
                    f"{ErrorCode.for_code(answer.error_code).name}"
                )
            versions = {}
            for entry in answer.api_keys:
                schema = API_KEYS.get(entry.api_key)
                if schema is None:
                    continue
                top = min(entry.max_version, schema.versions.high)
                if top >= max(entry.min_version, schema.versions.low):
                    versions[entry.api_key] = top
            self._versions = versions
            return
        raise BrokerUnavailableError(f"broker {self.address} shares no ApiVersions version")

    def version(self, api_key: int) -> int:
        """The highest version of ``api_key`` both sides speak; StoreError when none."""
        found = self._versions.get(api_key)
        if found is None:
            name = ApiKey(api_key).name if api_key in API_KEYS else str(api_key)
            raise StoreError(
                f"broker {self.address} does not speak {name} in a version this client knows"
            )
        return found

    def supports(self, api_key: int) -> bool:
        return api_key in self._versions

    async def request(
        self,
        api_key: int,
        body: Any,
        *,
        version: int | None = None,
        expect_response: bool = True,
        timeout_s: float | None = None,
    ) -> Any:
        """Send ``body`` as a request of ``api_key`` (in the negotiated version unless given)
        and return the decoded response body (None when ``expect_response`` is False).

        A broker that does not answer within ``timeout_s`` (default :attr:`timeout_s`) is
        taken for lost: the connection is closed, failing every request pending on it with
        BrokerUnavailableError (the caller retries on a new one)."""
        future = self.send(api_key, body, version=version, expect_response=expect_response)
        if future is None:
            return None
        return await self.response(api_key, future, timeout_s=timeout_s)

    async def response(
        self, api_key: int, future: asyncio.Future[Any], *, timeout_s: float | None = None
    ) -> Any:
        """The response body of a request of ``api_key`` written with :meth:`send`, waited for
        as :meth:`request` does (the connection is taken for lost after ``timeout_s``)."""
        limit = self.timeout_s if timeout_s is None else timeout_s
        try:
            return await asyncio.wait_for(asyncio.shield(future), limit)
        except TimeoutError:
            self._fail_all(
                BrokerUnavailableError(
                    f"broker {self.address} did not answer {ApiKey(api_key).name} within "
                    f"{limit:g} s"
                )
            )
            return await future

    def send(
        self, api_key: int, body: Any, *, version: int | None = None, expect_response: bool = True
    ) -> asyncio.Future[Any] | None:
        """Write a request now and return the future of its response body (pipelining)."""
        writer = self._writer
        if writer is None or self._lost is not None:
            raise BrokerUnavailableError(
                f"the connection to broker {self.address} is closed"
                + (f" ({self._lost})" if self._lost else "")
            )
        if version is None:
            version = self.version(api_key)
        correlation = next(self._ids) & 0x7FFFFFFF
        header = RequestHeader(api_key, version, correlation, self.client_id)
        frame = encode_request(header, body)
        future: asyncio.Future[Any] | None = None
        if expect_response:
            future = asyncio.get_running_loop().create_future()
            self._pending[correlation] = (api_key, version, future)
        writer.write(frame)
        return future

    async def drain(self) -> None:
        """Wait until the written requests are handed to the OS (backpressure)."""
        if self._writer is not None:
            try:
                await self._writer.drain()
            except (OSError, RuntimeError) as exc:
                self._fail_all(BrokerUnavailableError(f"broker {self.address}: {exc}"))

    async def _read_responses(self) -> None:
        assert self._reader is not None
        reason: BaseException
        try:
            while True:
                frame = await read_frame(self._reader)
                if frame is None:
                    reason = BrokerUnavailableError(f"broker {self.address} closed the connection")
                    break
                correlation = response_correlation_id(frame)
                entry = self._pending.pop(correlation, None)
                if entry is None:
                    log.warning(
                        "broker %s answered unknown correlation id %d", self.address, correlation
                    )
                    continue
                api_key, version, future = entry
                if future.done():
                    continue
                try:
                    if api_key == ApiKey.API_VERSIONS and _is_unsupported(frame):
                        _, body = decode_response(api_key, 0, frame)
                    else:
                        _, body = decode_response(api_key, version, frame)
                except ProtocolError as exc:
                    future.set_exception(exc)
                    continue
                future.set_result(body)
        except asyncio.CancelledError:
            reason = BrokerUnavailableError(f"the connection to broker {self.address} was closed")
        except (OSError, ProtocolError) as exc:
            reason = BrokerUnavailableError(f"lost the connection to broker {self.address}: {exc}")
        self._fail_all(reason)

    def _fail_all(self, reason: BaseException) -> None:
        if self._lost is None:
            self._lost = reason
        pending, self._pending = self._pending, {}
        for _, _, future in pending.values():
            if not future.done():
                future.set_exception(reason)
                future.exception()  # a waiter may be gone: do not warn about it
        if self._writer is not None:
            self._writer.close()

    async def close(self) -> None:
        """Close the connection; pending requests fail. Idempotent."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._fail_all(BrokerUnavailableError(f"the connection to broker {self.address} is closed"))
        writer = self._writer
        if writer is not None:
            with contextlib.suppress(OSError, RuntimeError):
                await writer.wait_closed()

    def __repr__(self) -> str:
        return f"<BrokerConnection node {self.node_id} {self.address}>"


def _is_unsupported(frame: bytes) -> bool:
    """Whether an ApiVersions response frame carries UNSUPPORTED_VERSION (its first field in
    every version, after the 4-byte correlation id of header v0)."""
    return len(frame) >= 6 and _ERROR_AT.unpack_from(frame, 4)[0] == ErrorCode.UNSUPPORTED_VERSION
