"""The ``http`` sink: events sent as HTTP requests, one each or batched.

Each event's value is encoded with its topic's codec (JSON by default) and sent to ``url``,
a template (:mod:`._template`) filled from the event. With ``batch`` above 1, events bound
for the same URL from the same partition share a request: a JSON array, or NDJSON. Batches
are cut at offsets that are multiples of ``batch``, so an event read again after a restart
tends to land in a request like the one before.

Requests go out when :meth:`HttpSink.flush` is called, at most ``concurrency`` at a time (so
with more than one, requests may arrive out of order). Each carries an ``Idempotency-Key``
header made of topic, partition and offset(s), the same every time that event (or that
batch) is sent again. An answer below 400 delivers the request. 408, 429, 5xx, a timeout or a
refused connection are tried again, up to ``max_attempts`` times, waiting as ``Retry-After``
asks (at most ``max_backoff``) or with doubling backoff; when tries run out, ``flush`` raises
and the pipeline's own ``retry`` takes over (events already delivered by that flush are not
sent again by this instance). Any other 4xx refuses the events for good: they go to the
dead-letter topic with the status and the start of the answer as the reason.

The sink is at-least-once, not idempotent by content: after a restart, or when an answer is
lost, a request is sent again; a receiver that keeps the Idempotency-Keys it has seen can
drop the repeats.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, ClassVar, Literal

from pydantic import Field, SecretStr, field_serializer, field_validator

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    EventsRejected,
    Rejection,
    Sink,
)
from millstream.core.duration import Duration

from .._backoff import backoff
from ._retry import retry_after, worth_retrying
from ._shown import answer_start, redact
from ._template import TemplateError, UrlTemplate

if TYPE_CHECKING:
    import aiohttp

__all__ = ["HttpSink", "HttpSinkConfig"]

_CONTENT_TYPES = {"json": "application/json", "text": "text/plain; charset=utf-8"}


class HttpSinkConfig(ConnectorConfig):
    url: str = Field(
        description="where to send, a template: {topic}, {partition}, {offset}, {key} and "
        "{value.FIELD} are filled from each event (percent-encoded)"
    )
    method: str = Field("POST", description="the HTTP method")
    headers: dict[str, SecretStr] | None = Field(
        None,
        description="headers sent with every request, such as Authorization (their values are "
        "kept secret: never printed)",
    )
    batch: int = Field(
        1, ge=1, le=10_000, description="events per request (1: one request per event)"
    )
    batch_format: Literal["json", "ndjson"] = Field(
        "json", description="the body of a batched request: a JSON array, or one value a line"
    )
    concurrency: int = Field(4, ge=1, le=256, description="the most requests in flight at once")
    timeout: Duration = Field(
        "30s",  # validated into a timedelta
        gt=timedelta(0),
        validate_default=True,
        description="how long one request may take",
    )
    max_attempts: int = Field(
        5,
        ge=1,
        description="tries of one request (on 408, 429, 5xx, timeouts, refused connections) "
        "before the flush fails and the pipeline's retry takes over",
    )
    backoff: Duration = Field(
        "200ms",
        gt=timedelta(0),
        validate_default=True,
        description="the wait before the first retry; doubled for each next one",
    )
    max_backoff: Duration = Field(
        "10s",
        gt=timedelta(0),
        validate_default=True,
        description="the longest wait between tries (a longer Retry-After is cut to it)",
    )
    idempotency_header: str | None = Field(
        "Idempotency-Key",
        description="the header carrying topic-partition-offset(s) of the request's events "
        "(null: none)",
    )

    @field_validator("url")
    @classmethod
    def _template(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"a URL starts with http:// or https://; got {value!r}")
        UrlTemplate(value)
        return value

    @field_serializer("url")
    def _shown_url(self, value: str) -> str:
        return redact(value)  # what validate prints: no password or token

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if not value.isalpha():
            raise ValueError(f"{value!r} is not an HTTP method such as POST or PUT")
        return value.upper()


class _Refused(Exception):
    """A request refused for good (a 4xx); the message is the dead letters' reason."""


class HttpSink(Sink):
    """Sends events as HTTP requests (one each, or batched as a JSON array or NDJSON) to a URL
    template; retries 5xx/429 with backoff; 4xx answers go to the dead-letter topic."""

    name = "http"
    Config: ClassVar[type[ConnectorConfig]] = HttpSinkConfig
    idempotent = False

    def __init__(self, config: HttpSinkConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: HttpSinkConfig = config
        self._template = UrlTemplate(config.url)
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(config.concurrency)
        self._written: list[Event] = []
        self._delivered: set[tuple[str, int, int]] = set()
        """Events delivered by a flush that failed: the retry that writes them again skips
        them. Emptied by a flush that succeeds."""

    async def open(self) -> None:
        import aiohttp  # here, not at import: loading aiohttp costs every command

        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=self.config.concurrency),
            timeout=aiohttp.ClientTimeout(total=self.config.timeout.total_seconds()),
            headers={k: v.get_secret_value() for k, v in (self.config.headers or {}).items()},
        )

    async def close(self) -> None:
        self._written = []
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    async def write(self, events: Sequence[Event]) -> None:
        delivered = self._delivered
        if not delivered:
            self._written.extend(events)
            return
        self._written.extend(e for e in events if _place(e) not in delivered)

    async def flush(self) -> None:
        written, self._written = self._written, []
        if not written:
            return
        if self._session is None:
            raise ConnectorError(f"http sink {self.context.name!r}: flush before open")
        rejections: list[Rejection] = []
        requests = self._requests(written, rejections)
        outcomes = await asyncio.gather(
            *(self._deliver(url, events) for url, events in requests), return_exceptions=True
        )
        failed: list[BaseException] = []
        for (_, events), outcome in zip(requests, outcomes, strict=True):
            if outcome is None:
                self._delivered.update(p for e in events if (p := _place(e)) is not None)
            elif isinstance(outcome, _Refused):
                rejections += (Rejection(e, str(outcome)) for e in events)
            else:
                failed.append(outcome)
        if failed:
            for error in failed:
                if not isinstance(error, Exception):
                    raise error  # cancelled: let it through
            raise ConnectorError(
                f"http sink {self.context.name!r}: {len(failed)} of {len(requests)} requests "
                f"failed; the first: {failed[0]}"
            )
        self._delivered.clear()
        if rejections:
            raise EventsRejected(rejections)

    # -- requests ---------------------------------------------------------------------------

    def _requests(
        self, events: list[Event], rejections: list[Rejection]
    ) -> list[tuple[str, list[Event]]]:
        """The requests to send: (url, events), events of one URL and partition together,
        cut at offsets that are multiples of ``batch``."""
        size = self.config.batch
        template = self._template
        if size == 1:
            if template.fixed:
                return [(template.text, [event]) for event in events]
            single: list[tuple[str, list[Event]]] = []
            for event in events:
                try:
                    single.append((template.render(event), [event]))
                except TemplateError as exc:
                    rejections.append(Rejection(event, str(exc)))
            return single
        groups: dict[tuple[str, str | None, int | None, int], list[Event]] = {}
        count = 0
        for event in events:
            try:
                url = template.render(event)
            except TemplateError as exc:
                rejections.append(Rejection(event, str(exc)))
                continue
            if event.offset is not None:
                slot = event.offset // size
            else:
                slot = count // size
                count += 1
            groups.setdefault((url, event.topic, event.partition, slot), []).append(event)
        return [(url, group) for (url, *_), group in groups.items()]

    def _body(self, events: list[Event]) -> tuple[bytes, str]:
        """The request body for ``events`` and its content type."""
        context = self.context
        if len(events) == 1 and self.config.batch == 1:
            event = events[0]
            codec = context.codec(event.topic)
            return codec.encode(event.value), _content_type(codec.name)
        encoded = [context.codec(e.topic).encode(e.value) for e in events]
        if self.config.batch_format == "ndjson":
            return b"\n".join(encoded) + b"\n", "application/x-ndjson"
        return b"[" + b",".join(encoded) + b"]", "application/json"

    async def _deliver(self, url: str, events: list[Event]) -> None:
        """Send one request until it is delivered; _Refused on a 4xx; ConnectorError when
        the tries run out."""
        import aiohttp

        session = self._session
        assert session is not None
        config = self.config
        body, content_type = self._body(events)
        headers = {"Content-Type": content_type}
        key = _idempotency_key(events)
        if config.idempotency_header and key is not None:
            headers[config.idempotency_header] = key
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                async with (
                    self._slots,
                    session.request(config.method, url, data=body, headers=headers) as answer,
                ):
                    status = answer.status
                    if status < 400:
                        await answer.release()
                        return
                    content = await answer.content.read(300)
                    if not worth_retrying(status):
                        raise _Refused(
                            f"{config.method} {redact(url)} answered {status}: "
                            f"{redact(answer_start(content))}"
                        )
                    wait = retry_after(answer.headers.get("Retry-After"))
                    problem = f"answered {status}: {answer_start(content)}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = (
                    f"failed: {type(exc).__name__}: {redact(exc)}" if str(exc) else "timed out"
                )
            if attempt >= config.max_attempts:
                raise ConnectorError(f"{config.method} {redact(url)} {problem} ({attempt} tries)")
            most = config.max_backoff.total_seconds()
            delay = (
                backoff(attempt, config.backoff.total_seconds(), most)
                if wait is None
                else min(wait, most)
            )
            self.context.log.warning(
                "http sink %r: %s %s %s; trying again in %.1fs",
                self.context.name,
                config.method,
                redact(url),
                problem,
                delay,
            )
            await asyncio.sleep(delay)


def _place(event: Event) -> tuple[str, int, int] | None:
    if event.topic is None or event.partition is None or event.offset is None:
        return None
    return (event.topic, event.partition, event.offset)


def _idempotency_key(events: list[Event]) -> str | None:
    """``topic-partition-offset`` for one event, ``topic-partition-first-last`` for several
    of one partition; None for events not read from a topic."""
    first, last = events[0], events[-1]
    if _place(first) is None or _place(last) is None:
        return None
    if len(events) == 1:
        return f"{first.topic}-{first.partition}-{first.offset}"
    return f"{first.topic}-{first.partition}-{first.offset}-{last.offset}"


def _content_type(codec: str) -> str:
    return _CONTENT_TYPES.get(codec, "application/octet-stream")
