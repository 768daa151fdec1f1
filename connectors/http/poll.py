"""The ``http-poll`` source: a URL asked on an interval, its items as events.

Each poll sends ``method`` to ``url`` and takes the list at ``items`` (a dotted path into the
JSON answer; ``$`` for the whole answer) as events, one per item, their decoded values. It then
follows pagination (a ``Link: <…>; rel="next"`` header, or a next-page token at ``next_field``
sent back as the query parameter ``next_param``) until the last page, and waits for the next
interval.

What is new is told by the position, one of:

- a **cursor**: ``cursor_field`` is a field of the items (an id, a timestamp) in ascending
  order; the value of the last item handed out is the position, and every poll sends it as
  the query parameter ``cursor_param``, so the server answers with what came after it. A
  restart resumes just after the last acknowledged item.
- **validators**: without a cursor, the ``ETag`` and ``Last-Modified`` of the first page are
  sent back as ``If-None-Match`` / ``If-Modified-Since``; ``304 Not Modified`` (or the same
  ETag again) means nothing new. They become the position once every item of that answer
  was handed out, so a restart in the middle of an answer reads all of it again.
- neither: every poll delivers everything again.

A poll that fails for a while (connection refused, a timeout, 408, 429 or 5xx) is retried with
backoff, honouring ``Retry-After``, without ending the source. An answer that is not JSON, or
has nothing at ``items``, goes to the dead-letter topic as rejected input. Any other 4xx (a
wrong URL or credentials) raises :class:`~millstream.core.ConnectorError` naming the status.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from datetime import timedelta
from typing import TYPE_CHECKING, Any, ClassVar

import orjson
from pydantic import Field, SecretStr, field_serializer, field_validator

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    Rejection,
    Source,
    SourceBatch,
)
from millstream.core.duration import Duration

from .._backoff import backoff
from .._paths import MISSING, check_path, lookup
from ._retry import retry_after, worth_retrying
from ._shown import answer_start, redact

if TYPE_CHECKING:
    import aiohttp
    from yarl import URL

__all__ = ["HttpPollConfig", "HttpPollSource"]

_MOST_BACKOFF_S = 60.0


class HttpPollConfig(ConnectorConfig):
    url: str = Field(description="the URL to poll (http:// or https://)")
    method: str = Field("GET", description="the HTTP method of each poll")
    headers: dict[str, SecretStr] | None = Field(
        None,
        description="headers sent with every request, such as Authorization (their values are "
        "kept secret: never printed)",
    )
    body: Any = Field(None, description="a JSON body sent with every request (for POST)")
    interval: Duration = Field(
        "1m",  # validated into a timedelta
        validate_default=True,
        description="the time between the starts of two polls (more than 0s)",
    )
    items: str = Field(
        "$",
        description="the dotted path to the list of items in the JSON answer ('$': the whole "
        "answer; a single object there is one item)",
    )
    cursor_field: str | None = Field(
        None,
        description="a dotted path in each item to a value that grows (id, updated_at); the "
        "last one handed out is the position and is sent with the next poll",
    )
    cursor_param: str | None = Field(
        None,
        description="the query parameter that carries the cursor (default: the last name of "
        "cursor_field)",
    )
    conditional: bool = Field(
        True,
        description="without a cursor, send ETag / Last-Modified back (If-None-Match, "
        "If-Modified-Since); 304 means nothing new",
    )
    follow_links: bool = Field(True, description='follow Link: <...>; rel="next" headers')
    next_field: str | None = Field(
        None,
        description="a dotted path in the answer to the next page's token (or its URL); "
        "empty or missing on the last page",
    )
    next_param: str | None = Field(
        None,
        description="the query parameter that carries the next page's token (default: the "
        "last name of next_field)",
    )
    max_pages: int = Field(1000, ge=1, description="the most pages followed in one poll")
    timeout: Duration = Field(
        "30s",
        gt=timedelta(0),
        validate_default=True,
        description="how long one request may take",
    )
    batch_size: int = Field(1000, ge=1, le=10_000, description="the most events in one batch")

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError(f"a URL starts with http:// or https://; got {value!r}")
        return value

    @field_serializer("url")
    def _shown_url(self, value: str) -> str:
        return redact(value)  # what validate prints: no password or token

    @field_validator("interval")
    @classmethod
    def _some_interval(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(
                "interval must be more than 0s (polls back to back would hammer the server); "
                "use a duration such as 30s or 5m"
            )
        return value

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        if not value.isalpha():
            raise ValueError(f"{value!r} is not an HTTP method such as GET or POST")
        return value.upper()

    @field_validator("items", "cursor_field", "next_field")
    @classmethod
    def _dotted(cls, value: str | None) -> str | None:
        return value if value is None else check_path(value)


class HttpPollSource(Source):
    """Polls a URL on an interval and emits the items of each JSON answer; resumable by a
    cursor field, or by ETag / Last-Modified; follows Link or next-token pagination."""

    name = "http-poll"
    Config: ClassVar[type[ConnectorConfig]] = HttpPollConfig
    resumable = True

    @classmethod
    def resumable_for(cls, config: HttpPollConfig) -> bool:
        """Only with something to remember: a cursor field, or the answer's ETag/Last-Modified
        (``conditional``, when the server sends them). Without either, every poll and every
        restart hands out the whole answer again."""
        return config.cursor_field is not None or config.conditional

    def __init__(self, config: HttpPollConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: HttpPollConfig = config
        self._cursor_param = config.cursor_param or _last_name(config.cursor_field)
        self._interval = config.interval.total_seconds()
        self._next_param = config.next_param or _last_name(config.next_field)
        self._session: aiohttp.ClientSession | None = None
        self._cursor: Any = None
        self._validators: dict[str, str] = {}  # of the last answer handed out whole
        self._fresh: dict[str, str] = {}  # of the answer being handed out
        self._page: URL | None = None  # the next page of this poll; None: poll done
        self._pages = 0
        self._items: deque[Any] = deque()
        self._due = 0.0

    async def open(self, position: Any) -> None:
        if position is not None:
            if not isinstance(position, dict):
                raise ConnectorError(
                    f"http-poll {self.context.name!r}: a position is an object with cursor, "
                    f"etag or last_modified, not {position!r}"
                )
            self._cursor = position.get("cursor")
            self._validators = {
                k: v for k, v in position.items() if k in ("etag", "last_modified") and v
            }
        import aiohttp  # here, not at import: loading aiohttp costs every command

        self._session = aiohttp.ClientSession(
            timeout=aiohttp.ClientTimeout(total=self.config.timeout.total_seconds()),
            headers={k: v.get_secret_value() for k, v in (self.config.headers or {}).items()},
        )

    async def close(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            await session.close()

    def _position(self) -> dict[str, Any]:
        position: dict[str, Any] = dict(self._validators)
        if self.config.cursor_field is not None:
            position["cursor"] = self._cursor
        return position

    async def read(self) -> SourceBatch | None:
        while True:
            if self._items:
                return self._batch()
            if self._page is not None:  # the next page of this poll
                rejected = await self._fetch(self._page)
                if rejected is not None:
                    return SourceBatch([], self._position(), [rejected])
                continue
            if self._fresh:  # an answer without items: its validators still count
                self._validators, self._fresh = self._fresh, {}
                return SourceBatch([], self._position())
            await asyncio.sleep(max(0.0, self._due - time.monotonic()))
            self._due = time.monotonic() + self._interval
            self._page = self._first_page()
            self._pages = 0

    def _batch(self) -> SourceBatch:
        items = self._items
        field = self.config.cursor_field
        events: list[Event] = []
        for _ in range(min(len(items), self.config.batch_size)):
            item = items.popleft()
            events.append(Event(item))
            if field is not None:
                cursor = lookup(item, field)
                if cursor is not MISSING and cursor is not None:
                    self._cursor = cursor
        if not items and self._page is None and self._fresh:  # the answer's last batch
            self._validators, self._fresh = self._fresh, {}
        return SourceBatch(events, self._position())

    def _first_page(self) -> URL:
        from yarl import URL

        url = URL(self.config.url)
        if self.config.cursor_field is not None and self._cursor is not None:
            url = url.update_query({self._cursor_param: _query_value(self._cursor)})
        return url

    async def _fetch(self, url: URL) -> Rejection | None:
        """Ask for ``url`` (retrying while it fails for a while); queue its items and find
        the next page. A rejection when the answer is not what ``items`` expects."""
        first = self._pages == 0
        headers: dict[str, str] = {}
        conditional = first and self.config.conditional and self.config.cursor_field is None
        if conditional:
            if "etag" in self._validators:
                headers["If-None-Match"] = self._validators["etag"]
            if "last_modified" in self._validators:
                headers["If-Modified-Since"] = self._validators["last_modified"]
        status, body, answer_headers, links, final_url = await self._request(url, headers)
        self._pages += 1
        self._page = None
        if status == 304:
            return None
        if conditional:
            fresh = {}
            if etag := answer_headers.get("ETag"):
                fresh["etag"] = etag
            if modified := answer_headers.get("Last-Modified"):
                fresh["last_modified"] = modified
            if fresh and fresh.get("etag") and fresh.get("etag") == self._validators.get("etag"):
                return None  # the server ignored If-None-Match: the same answer again
            self._fresh = fresh
        try:
            document = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            self._fresh = {}
            return self._rejected(body, url, f"the answer is not JSON: {exc}")
        found = lookup(document, self.config.items)
        if found is MISSING:
            self._fresh = {}
            return self._rejected(body, url, f"the answer has nothing at {self.config.items!r}")
        items = found if isinstance(found, list) else [found]
        self._items.extend(items)
        following = self._following(document, links, final_url)
        if following is not None and self._pages < self.config.max_pages:
            self._page = following
        elif following is not None:
            self.context.log.warning(
                "http-poll %r: stopped after %d pages (max_pages)", self.context.name, self._pages
            )
        return None

    def _following(self, document: Any, links: Any, url: URL) -> URL | None:
        """The next page of this poll, or None on the last."""
        if self.config.next_field is not None:
            token = lookup(document, self.config.next_field)
            if token is MISSING or token is None or token == "":
                return None
            if isinstance(token, str) and token.startswith(("http://", "https://", "/")):
                return url.join(type(url)(token))
            return url.update_query({self._next_param: _query_value(token)})
        if self.config.follow_links and links is not None:
            link = links.get("next")
            if link is not None:
                return url.join(link["url"])
        return None

    def _rejected(self, body: bytes, url: URL, reason: str) -> Rejection:
        headers = (("http.url", redact(url).encode()),)
        return Rejection(Event(body, headers=headers), reason)

    async def _request(self, url: URL, headers: dict[str, str]) -> tuple[int, bytes, Any, Any, URL]:
        """Send the request until it gets an answer that is not worth retrying."""
        import aiohttp

        session = self._session
        if session is None:
            raise ConnectorError(f"http-poll {self.context.name!r}: read before open")
        body = orjson.dumps(self.config.body) if self.config.body is not None else None
        if body is not None:
            headers = {**headers, "Content-Type": "application/json"}
        attempt = 0
        while True:
            attempt += 1
            wait: float | None = None
            try:
                async with session.request(
                    self.config.method, url, headers=headers, data=body
                ) as response:
                    status = response.status
                    content = await response.read()
                    if status < 400 or not worth_retrying(status):
                        if status >= 400:
                            raise ConnectorError(
                                f"http-poll {self.context.name!r}: {self.config.method} "
                                f"{redact(url)} answered {status}: {redact(answer_start(content))}"
                            )
                        return status, content, response.headers, response.links, response.url
                    wait = retry_after(response.headers.get("Retry-After"))
                    problem = f"answered {status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = f"failed: {type(exc).__name__}: {redact(exc)}"
            most = max(5.0, min(self._interval, _MOST_BACKOFF_S))
            delay = backoff(attempt, 0.5, most) if wait is None else min(wait, _MOST_BACKOFF_S)
            self.context.log.warning(
                "http-poll %r: %s %s %s; trying again in %.1fs",
                self.context.name,
                self.config.method,
                redact(url),
                problem,
                delay,
            )
            await asyncio.sleep(delay)


def _last_name(path: str | None) -> str:
    return path.rsplit(".", 1)[-1] if path else ""


def _query_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()
