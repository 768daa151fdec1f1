"""The http-poll source: items from a polled URL, a cursor or validators as the position."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import orjson
import pytest
from aiohttp import web

from millstream.connectors.http import HttpPollConfig, HttpPollSource
from millstream.core import ConnectorContext, ConnectorError, SourceBatch
from millstream.core.testing import SourceConformance

CONTEXT = ConnectorContext("p", "poll")


class Api:
    """A real HTTP API with the shapes a poller meets; ``requests`` keeps what it was asked."""

    def __init__(self, count: int = 10, page: int = 4) -> None:
        self.items: list[dict[str, Any]] = [
            {"id": n, "name": f"item {n}"} for n in range(1, count + 1)
        ]
        self.page = page
        self.version = 1
        self.requests: list[web.Request] = []
        self.failures: list[int] = []
        self.port = 0
        self._runner: web.AppRunner | None = None

    def _after(self, request: web.Request) -> list[dict[str, Any]]:
        after = int(request.query.get("after", 0))
        return [i for i in self.items if i["id"] > after]

    async def _cursor(self, request: web.Request) -> web.Response:
        return web.json_response({"data": {"items": self._after(request)[: self.page]}})

    async def _etag(self, request: web.Request) -> web.Response:
        etag = f'"v{self.version}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304)
        items = self.items[: self.version * 2]
        return web.json_response(items, headers={"ETag": etag})

    async def _modified(self, request: web.Request) -> web.Response:
        stamp = f"Wed, 0{self.version} Jan 2025 00:00:00 GMT"
        if request.headers.get("If-Modified-Since") == stamp:
            return web.Response(status=304)
        return web.json_response(self.items[: self.version], headers={"Last-Modified": stamp})

    async def _linked(self, request: web.Request) -> web.Response:
        start = int(request.query.get("start", 0))
        headers = {}
        if start + self.page < len(self.items):
            headers["Link"] = f'</linked?start={start + self.page}>; rel="next", </x>; rel="last"'
        return web.json_response(self.items[start : start + self.page], headers=headers)

    async def _tokens(self, request: web.Request) -> web.Response:
        start = int(request.query.get("token", 0))
        following = start + self.page if start + self.page < len(self.items) else None
        return web.json_response(
            {"results": self.items[start : start + self.page], "meta": {"next": following}}
        )

    async def _odd(self, request: web.Request) -> web.Response:
        return web.Response(text="<html>maintenance</html>", content_type="text/html")

    @web.middleware
    async def _record(self, request: web.Request, handler: Any) -> web.StreamResponse:
        self.requests.append(request)
        if self.failures:
            return web.Response(status=self.failures.pop(0), headers={"Retry-After": "0"})
        return await handler(request)

    async def start(self) -> None:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/cursor", self._cursor)
        app.router.add_get("/etag", self._etag)
        app.router.add_get("/modified", self._modified)
        app.router.add_get("/linked", self._linked)
        app.router.add_get("/tokens", self._tokens)
        app.router.add_get("/odd", self._odd)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
async def api() -> AsyncIterator[Api]:
    found = Api()
    await found.start()
    yield found
    await found.stop()


async def opened(settings: dict[str, Any], position: Any = None) -> HttpPollSource:
    source = HttpPollSource(HttpPollConfig(**{"interval": "50ms", **settings}), CONTEXT)
    await source.open(position)
    return source


async def take(source: HttpPollSource, count: int) -> tuple[list[Any], Any]:
    """``count`` item ids and the position after the last batch read."""
    ids: list[Any] = []
    position = None
    while len(ids) < count:
        batch = await asyncio.wait_for(source.read(), 5)
        ids += [e.value["id"] for e in batch.events]
        position = orjson.loads(orjson.dumps(batch.position))
    return ids, position


async def test_a_cursor_field_is_the_position_and_a_restart_resumes_after_it(api: Api) -> None:
    settings = {
        "url": api.url("/cursor"),
        "items": "data.items",
        "cursor_field": "id",
        "cursor_param": "after",
        "batch_size": 2,
    }
    source = await opened(settings)
    try:
        ids, position = await take(source, 6)
    finally:
        await source.close()
    assert ids == [1, 2, 3, 4, 5, 6] and position == {"cursor": 6}
    assert "after" not in api.requests[0].query  # no cursor yet: from the start
    assert api.requests[-1].query["after"] == "4"  # the second page asked after the first
    again = await opened(settings, position)
    try:
        rest, position = await take(again, 4)
        api.items.append({"id": 11, "name": "new"})
        newer, _ = await take(again, 1)
    finally:
        await again.close()
    assert rest == [7, 8, 9, 10] and position == {"cursor": 10}
    assert newer == [11]


async def test_etag_304_means_nothing_new(api: Api) -> None:
    source = await opened({"url": api.url("/etag")})
    try:
        ids, position = await take(source, 2)
        assert ids == [1, 2] and position == {"etag": '"v1"'}
        reading = asyncio.create_task(source.read())
        async with asyncio.timeout(5):
            while len(api.requests) < 4:  # the first answer, then polls answered 304
                await asyncio.sleep(0.01)
        assert not reading.done()
        assert api.requests[-1].headers["If-None-Match"] == '"v1"'
        api.version = 2
        batch = await asyncio.wait_for(reading, 5)
        assert [e.value["id"] for e in batch.events] == [1, 2, 3, 4]  # the whole new answer
        assert batch.position == {"etag": '"v2"'}
    finally:
        await source.close()
    again = await opened({"url": api.url("/etag")}, {"etag": '"v2"'})  # after a restart
    try:
        reading = asyncio.create_task(again.read())
        await asyncio.sleep(0.2)
        assert not reading.done()
        reading.cancel()
    finally:
        await again.close()


async def test_last_modified_is_sent_back_as_if_modified_since(api: Api) -> None:
    source = await opened({"url": api.url("/modified")})
    try:
        ids, position = await take(source, 1)
        assert ids == [1] and position == {"last_modified": "Wed, 01 Jan 2025 00:00:00 GMT"}
        reading = asyncio.create_task(source.read())
        await asyncio.sleep(0.2)
        assert not reading.done()
        assert api.requests[-1].headers["If-Modified-Since"] == position["last_modified"]
        api.version = 2
        batch = await asyncio.wait_for(reading, 5)
        assert [e.value["id"] for e in batch.events] == [1, 2]
    finally:
        await source.close()


async def test_link_headers_are_followed_and_validators_wait_for_the_last_page(
    api: Api,
) -> None:
    source = await opened({"url": api.url("/linked"), "batch_size": 100})
    try:
        batches: list[SourceBatch] = []
        while sum(len(b.events) for b in batches) < 10:
            batches.append(await asyncio.wait_for(source.read(), 5))
    finally:
        await source.close()
    assert [[e.value["id"] for e in b.events] for b in batches] == [
        [1, 2, 3, 4],
        [5, 6, 7, 8],
        [9, 10],
    ]
    assert [r.query.get("start") for r in api.requests] == [None, "4", "8"]


async def test_a_next_token_field_is_sent_back(api: Api) -> None:
    source = await opened(
        {
            "url": api.url("/tokens"),
            "items": "results",
            "next_field": "meta.next",
            "next_param": "token",
        }
    )
    try:
        ids, _ = await take(source, 10)
    finally:
        await source.close()
    assert ids == list(range(1, 11))
    assert [r.query.get("token") for r in api.requests[:3]] == [None, "4", "8"]


async def test_an_answer_that_is_not_json_is_rejected_input(api: Api) -> None:
    source = await opened({"url": api.url("/odd")})
    try:
        batch = await asyncio.wait_for(source.read(), 5)
    finally:
        await source.close()
    assert batch.events == []
    [rejected] = batch.rejected
    assert rejected.event.value == b"<html>maintenance</html>"
    assert rejected.reason.startswith("the answer is not JSON")


async def test_5xx_is_retried_and_a_404_is_an_error(api: Api) -> None:
    api.failures = [503, 500]
    source = await opened({"url": api.url("/linked")})
    try:
        ids, _ = await take(source, 4)
    finally:
        await source.close()
    assert ids == [1, 2, 3, 4] and len(api.requests) >= 3
    missing = await opened({"url": api.url("/nothing-here")})
    try:
        with pytest.raises(
            ConnectorError, match=r"http-poll 'poll': GET .*/nothing-here answered 404"
        ):
            await missing.read()
    finally:
        await missing.close()


def test_an_interval_of_nothing_is_refused() -> None:
    """Polling back to back would hammer the server: the interval must be above zero."""
    with pytest.raises(ValueError, match="interval.*more than 0"):
        HttpPollConfig(url="http://h/x", interval="0s")
    assert HttpPollConfig(url="http://h/x", interval="1ms").interval.total_seconds() == 0.001


async def test_secrets_in_the_url_are_not_in_warnings_or_errors(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    """A password in the URL and a token in its query reach the server, not the log or the
    error of a 404."""
    secret = api.url("/nothing-here?api_key=ak-9f3&page=1").replace("://", "://shop:pw-9f3@")
    api.failures = [503]
    source = await opened({"url": secret, "headers": {"X-Api-Key": "xk-9f3"}})
    try:
        with pytest.raises(ConnectorError, match="answered 404") as caught:
            await source.read()
    finally:
        await source.close()
    assert api.requests[0].headers["X-Api-Key"] == "xk-9f3"
    assert api.requests[0].query_string == "api_key=ak-9f3&page=1"
    shown = str(caught.value) + "\n".join(r.getMessage() for r in caplog.records)
    assert "answered 503" in shown and "9f3" not in shown
    assert "http://***@127.0.0.1" in shown and "api_key=***&page=1" in shown


# -- the conformance kit ----------------------------------------------------------------------


class TestHttpPollConformance(SourceConformance):
    source = HttpPollSource

    @pytest.fixture(autouse=True)
    def _api(self) -> Iterator[None]:
        self.loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        thread.start()
        self.api: Api | None = None
        yield
        if self.api is not None:
            asyncio.run_coroutine_threadsafe(self.api.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        thread.join(5)
        self.loop.close()

    def prepare(self, count: int) -> dict[str, Any]:
        self.api = Api(count, page=7)
        asyncio.run_coroutine_threadsafe(self.api.start(), self.loop).result(5)
        return {
            "url": self.api.url("/cursor"),
            "items": "data.items",
            "cursor_field": "id",
            "cursor_param": "after",
            "interval": "10ms",
            "batch_size": 5,
        }

    def identity(self, event: Any) -> Any:
        return event.value

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        return [
            ({"url": "ftp://x"}, "url"),
            ({"url": "http://x", "items": "a..b"}, "items"),
            ({"url": "http://x", "interval": "-1s"}, "interval"),
        ]


def test_validate_calls_a_poll_without_a_cursor_or_validators_best_effort(tmp_path) -> None:
    from millstream.core.plugins import load_registry
    from millstream.pipelines.spec import guarantees, load_pipeline

    (tmp_path / "p.yaml").write_text(
        "pipeline: polled\ntopics: {a: {}, b: {}, c: {}}\nsources:\n"
        "  by-cursor: {connector: http-poll, to: a,\n"
        "              config: {url: 'http://x/items', cursor_field: id, conditional: false}}\n"
        "  by-etag: {connector: http-poll, to: b, config: {url: 'http://x/items'}}\n"
        "  neither: {connector: http-poll, to: c,\n"
        "            config: {url: 'http://x/items', conditional: false}}\n"
    )
    pipeline = load_pipeline(tmp_path / "p.yaml", registry=load_registry(), env={})
    levels = {g.name: g.level for g in guarantees(pipeline)}
    assert levels == {
        "by-cursor": "at-least-once",
        "by-etag": "at-least-once",
        "neither": "best-effort",
    }
