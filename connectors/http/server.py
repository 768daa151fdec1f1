"""The ``http-server`` source: webhooks, answered only once the log holds their events.

Each POST (or PUT) to one of the configured paths carries one JSON object, a JSON array or
NDJSON (see :mod:`._body`). The request is checked (size, token or signature, body), its
events wait in a bounded queue, :meth:`HttpServerSource.read` hands them out, and the request
handler answers ``200 {"accepted": N}`` only when :meth:`HttpServerSource.ack` says the log
has acknowledged them. Until then the sender waits; if anything goes wrong it gets no 2xx, so
a sender that retries until it gets one loses nothing: delivery is at-least-once (a request
the log took but whose answer was lost or late is sent again and stored twice).

A position is the sequence number of the last request whose events a batch completes; the
runtime acknowledges positions in order, so ``ack(n)`` answers every request up to ``n``.
Positions mean nothing after a restart (the senders hold what was not answered), so the
source is not resumable; it *redelivers* instead, as the connector contract says.

Answers other than 2xx, each with a JSON body ``{"error": "..."}`` and never a traceback:
400 (the body is not JSON, with the reason; nothing of it is written), 401 (token or
signature wrong), 404/405 (another path or method), 413 (above ``max_body_bytes``), 429 with
``Retry-After`` (too many requests or events waiting), 503 with ``Retry-After`` (shutting
down, or not acknowledged within ``ack_timeout``).
"""

from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import orjson
from pydantic import Field, SecretStr, field_validator, model_validator

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    Source,
    SourceBatch,
)
from millstream.core.duration import Duration

from ._body import BodyError, BodyFormat, split_body
from ._signature import SignatureStyle, bearer_ok, signature_problem

if TYPE_CHECKING:
    from aiohttp import web

__all__ = ["HttpServerConfig", "HttpServerSource"]

_DEFAULT_SIGNATURE_HEADER = {"github": "X-Hub-Signature-256", "stripe": "Stripe-Signature"}
_METHODS = frozenset({"POST", "PUT"})


class HttpServerConfig(ConnectorConfig):
    host: str = Field("127.0.0.1", description="the address to listen on (0.0.0.0: every one)")
    port: int = Field(
        ge=0, le=65535, description="the TCP port to listen on (0: any free port, logged)"
    )
    path: str | list[str] = Field(
        "/", description="the URL path, or a list of paths, that accept events"
    )
    format: BodyFormat = Field(
        "auto",
        description="how bodies are read: json (an object or an array), ndjson (one value a "
        "line), or auto (NDJSON when the Content-Type says so or the body has several lines)",
    )
    max_body_bytes: int = Field(
        10 * 1024 * 1024, ge=1, description="the largest body accepted; larger ones get 413"
    )
    max_pending_requests: int = Field(
        1000,
        ge=1,
        description="requests that may wait for the log at once; more get 429 with Retry-After",
    )
    max_pending_events: int = Field(
        100_000,
        ge=1,
        description="events that may wait for the log at once; more get 429 with Retry-After",
    )
    batch_size: int = Field(
        5000, ge=1, le=10_000, description="the most events handed to the log in one batch"
    )
    ack_timeout: Duration = Field(
        "30s",  # validated into a timedelta
        gt=timedelta(0),
        validate_default=True,
        description="how long a request waits for the log before it gets 503 (send it again)",
    )
    retry_after: int = Field(
        1, ge=0, description="the Retry-After seconds sent with 429 and 503 answers"
    )
    status: Literal[200, 202] = Field(200, description="the status of a successful answer")
    bearer_token: SecretStr | None = Field(
        None, description="when set, requests must carry 'Authorization: Bearer <token>'"
    )
    hmac_secret: SecretStr | None = Field(
        None, description="when set, requests must carry an HMAC-SHA256 signature of the body"
    )
    hmac_style: SignatureStyle = Field(
        "github",
        description="github: 'sha256=<hex>' of the body; stripe: 't=<time>,v1=<hex>' of "
        "'<time>.<body>'",
    )
    hmac_header: str | None = Field(
        None,
        description="the header holding the signature (default: X-Hub-Signature-256 for "
        "github, Stripe-Signature for stripe)",
    )
    hmac_tolerance: Duration = Field(
        "5m",
        gt=timedelta(0),
        validate_default=True,
        description="stripe style: how far the signed time may be from now",
    )
    headers: list[str] = Field(
        [], description="request headers copied into each event's headers (when present)"
    )
    key_header: str | None = Field(
        None, description="a request header whose value becomes each event's key"
    )

    @field_validator("path")
    @classmethod
    def _paths_start_with_a_slash(cls, value: str | list[str]) -> str | list[str]:
        paths = [value] if isinstance(value, str) else value
        if not paths:
            raise ValueError("give at least one path, such as /hooks")
        for path in paths:
            if not path.startswith("/"):
                raise ValueError(f"a path starts with '/', such as '/{path}'; got {path!r}")
        return value

    @model_validator(mode="after")
    def _one_check_at_a_time(self) -> HttpServerConfig:
        if self.bearer_token is not None and self.hmac_secret is not None:
            raise ValueError("set bearer_token or hmac_secret, not both")
        return self


@dataclass(slots=True, eq=False)
class _Request:
    """One accepted request: its events, how many are handed out, and its waiting handler."""

    seq: int
    events: list[Event]
    answered: asyncio.Future[bool | None]
    taken: int = 0


class HttpServerSource(Source):
    """Receives webhooks over HTTP (a JSON object, an array or NDJSON per request) and answers
    2xx only once the log holds their events; optional bearer token or HMAC signature."""

    name = "http-server"
    Config: ClassVar[type[ConnectorConfig]] = HttpServerConfig
    resumable = False
    redelivers = True
    """A sender that got no 2xx sends again (webhook senders retry)."""

    def __init__(self, config: HttpServerConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: HttpServerConfig = config
        paths = config.path
        self._paths = frozenset([paths] if isinstance(paths, str) else paths)
        self._copied = tuple(config.headers)
        self._ack_timeout = config.ack_timeout.total_seconds()
        self._signature_header = config.hmac_header or _DEFAULT_SIGNATURE_HEADER[config.hmac_style]
        self._queue: deque[_Request] = deque()  # accepted, not all handed out
        self._handed: deque[_Request] = deque()  # handed out, not acknowledged
        self._arrived = asyncio.Event()
        self._requests = 0  # being read, queued or handed out
        self._events = 0  # queued or handed out
        self._seq = 0
        self._closing = False
        self._runner: web.ServerRunner | None = None
        self.port: int | None = None
        """The port listened on, once open (the one chosen when ``port`` is 0)."""

    @property
    def url(self) -> str:
        """``http://host:port`` once open."""
        return f"http://{self.config.host}:{self.port}"

    async def open(self, position: Any) -> None:
        from aiohttp import web  # here, not at import: loading aiohttp costs every command

        server = web.Server(self._handle, access_log=None)
        runner = web.ServerRunner(server, shutdown_timeout=2.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port, backlog=1024)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ConnectorError(
                f"http-server {self.context.name!r}: cannot listen on host {self.config.host} "
                f"port {self.config.port}: {exc.strerror or exc}"
            ) from None
        self._runner = runner
        self.port = runner.addresses[0][1]
        self.context.log.info(
            "http-server %r listening on %s%s", self.context.name, self.url, sorted(self._paths)
        )

    async def read(self) -> SourceBatch | None:
        while not self._queue:
            if self._closing:
                return None
            self._arrived.clear()
            await self._arrived.wait()
        room = self.config.batch_size
        events: list[Event] = []
        position = 0
        queue = self._queue
        while queue and room > 0:
            request = queue[0]
            left = len(request.events) - request.taken
            if left <= room:
                events += request.events[request.taken :] if request.taken else request.events
                room -= left
                queue.popleft()
                self._handed.append(request)
                position = request.seq
            else:
                events += request.events[request.taken : request.taken + room]
                request.taken += room
                position = request.seq - 1  # this request is not complete yet
                break
        return SourceBatch(events, position)

    async def ack(self, position: Any) -> None:
        handed = self._handed
        while handed and handed[0].seq <= position:
            request = handed.popleft()
            self._release(request)
            if not request.answered.done():
                request.answered.set_result(True)

    async def close(self) -> None:
        self._closing = True
        self._arrived.set()
        for request in (*self._handed, *self._queue):
            self._release(request)
            if not request.answered.done():
                request.answered.set_result(False)
        self._handed.clear()
        self._queue.clear()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # -- requests ---------------------------------------------------------------------------

    def _release(self, request: _Request) -> None:
        self._requests -= 1
        self._events -= len(request.events)

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._answer(request)
        except Exception as exc:  # never a traceback to the sender
            self.context.log.exception("http-server %r: %s", self.context.name, exc)
            return _error(500, "the server failed to handle the request")

    async def _answer(self, request: web.BaseRequest) -> web.StreamResponse:
        from aiohttp import web

        if request.path not in self._paths:
            return _error(404, f"no events are accepted at {request.path}")
        if request.method not in _METHODS:
            response = _error(405, f"{request.method} is not accepted; use POST")
            response.headers["Allow"] = "POST, PUT"
            return response
        if self._closing:
            return self._busy(503, "the server is shutting down")
        config = self.config
        if config.bearer_token is not None and not bearer_ok(
            request.headers.get("Authorization"), config.bearer_token.get_secret_value()
        ):
            return _error(401, "a valid 'Authorization: Bearer <token>' header is required")
        size = request.content_length
        if size is not None and size > config.max_body_bytes:
            return _error(413, f"the body is {size} bytes; at most {config.max_body_bytes}")
        if self._requests >= config.max_pending_requests:
            return self._busy(429, "too many requests are waiting for the log")
        self._requests += 1
        accepted = False
        try:
            body = await _read_body(request, config.max_body_bytes)
            if body is None:
                return _error(413, f"the body is larger than {config.max_body_bytes} bytes")
            if config.hmac_secret is not None:
                problem = signature_problem(
                    config.hmac_style,
                    request.headers.get(self._signature_header),
                    body,
                    config.hmac_secret.get_secret_value(),
                    tolerance_s=config.hmac_tolerance.total_seconds(),
                )
                if problem is not None:
                    return _error(401, f"{self._signature_header}: {problem}")
            try:
                values = split_body(body, config.format, request.content_type)
            except BodyError as exc:
                return _error(400, str(exc))
            if not values:  # an empty array: nothing to wait for
                return web.Response(
                    status=config.status, body=b'{"accepted":0}', content_type="application/json"
                )
            if self._events + len(values) > config.max_pending_events and self._events:
                return self._busy(429, "too many events are waiting for the log")
            if self._closing:
                return self._busy(503, "the server is shutting down")
            answered = self._accept(request, values)
            accepted = True
        finally:
            if not accepted:
                self._requests -= 1
        # one timer, not wait_for: a request costs a future and a timer handle, no task
        timer = asyncio.get_running_loop().call_later(self._ack_timeout, _time_out, answered)
        try:
            stored = await answered
        finally:
            timer.cancel()
        if stored is None:
            reason = f"the log did not acknowledge the events within {self._ack_timeout:g}s"
            return self._busy(503, f"{reason}; send them again")
        if not stored:
            return self._busy(503, "the server is shutting down; send them again")
        return web.Response(
            status=config.status,
            body=b'{"accepted":%d}' % len(values),
            content_type="application/json",
        )

    def _accept(self, request: web.BaseRequest, values: list[bytes]) -> asyncio.Future[bool | None]:
        """Queue the events of ``request``; the future resolves to True once they are
        acknowledged, False at shutdown, None when ``ack_timeout`` passed first."""
        headers = request.headers
        copied = tuple(
            (name, value.encode())
            for name in self._copied
            if (value := headers.get(name)) is not None
        )
        key_header = self.config.key_header
        key = None
        if key_header is not None and (found := headers.get(key_header)) is not None:
            key = found.encode()
        events = [Event(value, key, copied) for value in values]
        self._seq += 1
        answered: asyncio.Future[bool | None] = asyncio.get_running_loop().create_future()
        self._queue.append(_Request(self._seq, events, answered))
        self._events += len(events)
        self._arrived.set()
        return answered

    def _busy(self, status: int, reason: str) -> web.Response:
        response = _error(status, reason)
        response.headers["Retry-After"] = str(self.config.retry_after)
        return response


async def _read_body(request: web.BaseRequest, limit: int) -> bytes | None:
    """The whole body, or None once it grows beyond ``limit`` bytes."""
    if request.content_length is not None:
        return await request.content.read()
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_any():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def _time_out(answered: asyncio.Future[bool | None]) -> None:
    """The request's wait is over; its events stay queued and may still reach the log."""
    if not answered.done():
        answered.set_result(None)


def _error(status: int, reason: str) -> web.Response:
    from aiohttp import web

    return web.Response(
        status=status, body=orjson.dumps({"error": reason}), content_type="application/json"
    )
