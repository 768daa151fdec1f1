"""The http sink: requests per event or batched, retries, dead letters, idempotency keys."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from millstream.connectors.http import HttpSink, HttpSinkConfig
from millstream.connectors.memory import channel, reset_channels
from millstream.core import ConnectorContext, ConnectorError, Event, EventsRejected
from millstream.core.client import connect
from millstream.core.plugins import get_registry
from millstream.core.record import TopicPartition
from millstream.core.testing import SinkConformance
from millstream.pipelines.runtime import Runtime
from millstream.pipelines.spec import load_pipeline

CONTEXT = ConnectorContext("p", "out")
MILLSTREAM = Path(sys.executable).with_name("millstream")


@dataclass
class Received:
    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return orjson.loads(self.body)


@dataclass
class Receiver:
    """A real HTTP endpoint that keeps what it receives; ``answer`` decides each status."""

    answer: Callable[[Received], web.Response | None] = lambda r: None
    delay: float = 0.0
    got: list[Received] = field(default_factory=list)
    in_flight: int = 0
    most_in_flight: int = 0
    port: int = 0
    _runner: web.AppRunner | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            received = Received(
                request.method,
                request.rel_url.raw_path,
                request.query_string,
                dict(request.headers),
                await request.read(),
            )
            if self.delay:
                await asyncio.sleep(self.delay)
            answer = self.answer(received)
            if answer is not None:
                return answer
            self.got.append(received)
            return web.Response(status=201, text="ok")
        finally:
            self.in_flight -= 1

    async def start(self, port: int = 0) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port or self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def bodies(self) -> list[Any]:
        return [r.json() for r in self.got]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    found = Receiver()
    await found.start()
    yield found
    await found.stop()


def events(count: int, start: int = 0, topic: str = "orders", partition: int = 0) -> list[Event]:
    return [
        Event(
            {"n": n, "shop": f"s{n % 2}"},
            key=b"k%d" % n,
            topic=topic,
            partition=partition,
            offset=n,
        )
        for n in range(start, start + count)
    ]


async def deliver(settings: dict[str, Any], batch: list[Event]) -> HttpSink:
    sink = HttpSink(HttpSinkConfig(**settings), CONTEXT)
    await sink.open()
    try:
        await sink.write(batch)
        await sink.flush()
    finally:
        await sink.close()
    return sink


async def test_one_request_per_event_with_a_stable_idempotency_key(receiver: Receiver) -> None:
    await deliver({"url": receiver.url + "/in"}, events(3))
    assert receiver.bodies() == [
        {"n": 0, "shop": "s0"},
        {"n": 1, "shop": "s1"},
        {"n": 2, "shop": "s0"},
    ]
    got = receiver.got
    assert all(r.method == "POST" and r.path == "/in" for r in got)
    assert got[0].headers["Content-Type"] == "application/json"
    assert [r.headers["Idempotency-Key"] for r in got] == ["orders-0-0", "orders-0-1", "orders-0-2"]
    await deliver({"url": receiver.url + "/in"}, events(3))  # delivered again: the same keys
    assert [r.headers["Idempotency-Key"] for r in got[3:]] == [
        r.headers["Idempotency-Key"] for r in got[:3]
    ]


async def test_the_url_template_is_filled_from_each_event(receiver: Receiver) -> None:
    url = receiver.url + "/{topic}/{value.shop}/{key}?p={partition}&o={offset}"
    odd = Event({"n": 9, "shop": "a/b"}, key=b"x y", topic="t", partition=1, offset=4)
    batch = [*events(2), odd]
    await deliver({"url": url, "method": "put", "headers": {"X-Token": "t1"}}, batch)
    assert [(r.method, r.path, r.query) for r in receiver.got] == [
        ("PUT", "/orders/s0/k0", "p=0&o=0"),
        ("PUT", "/orders/s1/k1", "p=0&o=1"),
        ("PUT", "/t/a%2Fb/x%20y", "p=1&o=4"),  # each placeholder percent-encoded
    ]
    assert {r.headers["X-Token"] for r in receiver.got} == {"t1"}


async def test_an_event_the_template_cannot_fill_is_rejected(receiver: Receiver) -> None:
    batch = [*events(1), Event({"other": 1}, topic="orders", partition=0, offset=1)]
    with pytest.raises(EventsRejected) as caught:
        await deliver({"url": receiver.url + "/{value.shop}"}, batch)
    [rejection] = caught.value.rejections
    assert rejection.event.offset == 1 and "{value.shop}" in rejection.reason
    assert receiver.bodies() == [{"n": 0, "shop": "s0"}]


def test_a_bad_template_is_a_config_error() -> None:
    with pytest.raises(ValueError, match=r"unknown placeholder \{vlaue.x\}"):
        HttpSinkConfig(url="http://h/{vlaue.x}")


async def test_batches_as_a_json_array_or_ndjson_cut_at_offset_multiples(
    receiver: Receiver,
) -> None:
    await deliver({"url": receiver.url + "/a", "batch": 4}, events(7, start=2))
    assert [[v["n"] for v in r.json()] for r in receiver.got] == [[2, 3], [4, 5, 6, 7], [8]]
    assert [r.headers["Idempotency-Key"] for r in receiver.got] == [
        "orders-0-2-3",
        "orders-0-4-7",
        "orders-0-8",
    ]
    receiver.got.clear()
    await deliver(
        {"url": receiver.url + "/{value.shop}", "batch": 10, "batch_format": "ndjson"}, events(5)
    )
    by_path = {r.path: r for r in receiver.got}
    assert by_path["/s0"].headers["Content-Type"] == "application/x-ndjson"
    assert by_path["/s0"].body == b'{"n":0,"shop":"s0"}\n{"n":2,"shop":"s0"}\n{"n":4,"shop":"s0"}\n'
    assert [orjson.loads(line)["n"] for line in by_path["/s1"].body.splitlines()] == [1, 3]


async def test_503_is_retried_until_it_succeeds(receiver: Receiver) -> None:
    failures = iter([503, 502, 500])
    receiver.answer = lambda r: (
        web.Response(status=status) if (status := next(failures, None)) else None
    )
    await deliver({"url": receiver.url, "backoff": "10ms"}, events(1))
    assert receiver.bodies() == [{"n": 0, "shop": "s0"}]


async def test_retry_after_is_honoured(receiver: Receiver) -> None:
    asked: list[float] = []

    def answer(r: Received) -> web.Response | None:
        asked.append(time.monotonic())
        if len(asked) == 1:
            return web.Response(status=429, headers={"Retry-After": "1"})
        return None

    receiver.answer = answer
    await deliver({"url": receiver.url, "backoff": "10ms"}, events(1))
    assert len(asked) == 2 and asked[1] - asked[0] >= 0.95
    assert len(receiver.got) == 1


async def test_when_tries_run_out_flush_fails_and_a_retry_skips_what_was_delivered(
    receiver: Receiver,
) -> None:
    receiver.answer = lambda r: web.Response(status=503) if r.json()["n"] == 1 else None
    sink = HttpSink(HttpSinkConfig(url=receiver.url, max_attempts=2, backoff="10ms"), CONTEXT)
    await sink.open()
    try:
        await sink.write(events(3))
        with pytest.raises(ConnectorError, match=r"answered 503.*\(2 tries\)"):
            await sink.flush()
        assert sorted(receiver.bodies(), key=str) == [
            {"n": 0, "shop": "s0"},
            {"n": 2, "shop": "s0"},
        ]
        receiver.answer = lambda r: None  # the endpoint recovers; the runtime writes again
        await sink.write(events(3))
        await sink.flush()
    finally:
        await sink.close()
    assert sorted(v["n"] for v in receiver.bodies()) == [0, 1, 2]


async def test_a_4xx_is_rejected_for_good_with_the_answer(receiver: Receiver) -> None:
    def answer(r: Received) -> web.Response | None:
        if r.json()["n"] == 1:
            return web.json_response({"error": "shop s1 is closed"}, status=422)
        return None

    receiver.answer = answer
    with pytest.raises(EventsRejected) as caught:
        await deliver({"url": receiver.url + "/in"}, events(3))
    [rejection] = caught.value.rejections
    assert rejection.event.offset == 1
    assert rejection.reason == (
        f'POST {receiver.url}/in answered 422: {{"error": "shop s1 is closed"}}'
    )
    assert sorted(v["n"] for v in receiver.bodies()) == [0, 2]  # the others were delivered


async def test_secrets_in_the_url_are_not_printed_in_reasons_or_errors(
    receiver: Receiver,
) -> None:
    """The user info and a token in the query still reach the endpoint, but a dead letter's
    reason and a failed flush's error show neither."""
    secret_url = receiver.url.replace("://", "://shop:pw-9f3@") + "/in?n=1&access_token=tk-9f3"
    seen: list[Received] = []

    def refuse(received: Received) -> web.Response:
        seen.append(received)
        return web.json_response({"error": "no"}, status=422)

    receiver.answer = refuse
    with pytest.raises(EventsRejected) as caught:
        await deliver({"url": secret_url}, events(1))
    [rejection] = caught.value.rejections
    assert "9f3" not in rejection.reason
    assert "access_token=***" in rejection.reason and "n=1" in rejection.reason
    assert seen[0].headers["Authorization"].startswith("Basic ")
    assert seen[0].query == "n=1&access_token=tk-9f3"
    receiver.answer = lambda r: web.Response(status=503)
    with pytest.raises(ConnectorError) as failed:
        await deliver({"url": secret_url, "max_attempts": 1}, events(1))
    assert "9f3" not in str(failed.value) and "answered 503" in str(failed.value)


def test_validate_does_not_print_header_values_or_url_passwords(tmp_path: Path) -> None:
    """``millstream validate --format json`` shows each connector's settings: a bearer token
    in ``headers`` or a password in the URL must not be in them."""
    pipeline = tmp_path / "p.yaml"
    pipeline.write_text(
        """
pipeline: p
store: file:./store
topics:
  a: {partitions: 1}
sources:
  poll:
    connector: http-poll
    config:
      url: "https://shop:pw-9f3@api.example/orders?api_key=ak-9f3&page=1"
      headers: {Authorization: "Bearer tk-9f3"}
    to: a
sinks:
  out:
    from: a
    connector: http
    config:
      url: "https://hooks.example/in?token=tk-9f3"
      headers: {X-Api-Key: "xk-9f3"}
"""
    )
    done = subprocess.run(
        [str(MILLSTREAM), "validate", str(pipeline), "--format", "json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "9f3" not in done.stdout + done.stderr
    assert "https://***@api.example/orders?api_key=***&page=1" in done.stdout


async def test_the_concurrency_limit_is_respected(receiver: Receiver) -> None:
    receiver.delay = 0.05
    started = time.monotonic()
    await deliver({"url": receiver.url, "concurrency": 3}, events(12))
    assert receiver.most_in_flight == 3
    assert time.monotonic() - started >= 4 * 0.05
    assert len(receiver.got) == 12


async def test_a_timeout_is_retried(receiver: Receiver) -> None:
    slow = iter([True])
    receiver.answer = lambda r: None
    receiver.delay = 0.0

    async def handle(request: web.Request) -> web.Response:
        if next(slow, False):
            await asyncio.sleep(1)
        return await Receiver.handle(receiver, request)

    receiver.handle = handle  # type: ignore[method-assign]
    await receiver.stop()
    await receiver.start(receiver.port)
    await deliver({"url": receiver.url, "timeout": "200ms", "backoff": "10ms"}, events(1))
    assert len(receiver.got) == 1


# -- in a pipeline, with the endpoint going down and coming back ------------------------------


async def test_an_endpoint_down_in_the_middle_of_a_run_loses_nothing(
    tmp_path: Path, receiver: Receiver
) -> None:
    reset_channels()
    (tmp_path / "p.yaml").write_text(
        f"""
pipeline: out
dead_letter: dead
topics:
  orders: {{partitions: 2}}
  dead: {{partitions: 1}}
sources:
  feed: {{connector: memory, config: {{channel: in, batch_size: 10}}, to: orders, key: value.n}}
sinks:
  hook:
    connector: http
    from: orders
    config: {{url: "{receiver.url}/in", max_attempts: 2, backoff: 50ms, max_backoff: 100ms}}
    retry: {{max_attempts: 100, initial: 50ms, max: 200ms}}
"""
    )
    pipeline = load_pipeline(tmp_path / "p.yaml", env={})
    stop = asyncio.Event()
    url = f"file:{tmp_path / 'store'}"
    async with await connect(url) as conn:
        runtime = Runtime([pipeline], conn, get_registry())
        await runtime.prepare()
        running = asyncio.create_task(runtime.run(stop))
        channel("in").append(Event({"n": n}) for n in range(100))

        async def received(count: int) -> None:
            while len({r.json()["n"] for r in receiver.got}) < count:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(received(100), 10)
        await receiver.stop()  # down: refused connections
        channel("in").append(Event({"n": n}) for n in range(100, 200))
        await asyncio.sleep(0.5)
        assert len({r.json()["n"] for r in receiver.got}) == 100
        await receiver.start(receiver.port)  # back, on the same port
        await asyncio.wait_for(received(200), 15)
        stop.set()
        assert await asyncio.wait_for(running, 10) == "stopped"
        assert sum(part.errors for part in runtime.stats.parts) > 0  # it did fail meanwhile
        consumer = conn.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition("dead", 0)])
        assert await consumer.getmany(timeout_ms=100) == {}
        await consumer.close()
    numbers = [r.json()["n"] for r in receiver.got]
    assert sorted(set(numbers)) == list(range(200))
    keys: dict[int, set[str]] = {}
    for r in receiver.got:
        keys.setdefault(r.json()["n"], set()).add(r.headers["Idempotency-Key"])
    assert all(len(k) == 1 for k in keys.values())  # a copy sent again carries the same key


# -- the conformance kit ----------------------------------------------------------------------


class _ThreadedReceiver:
    """A Receiver on its own event loop in a thread (the kit reads back from plain code)."""

    def __init__(self) -> None:
        self.receiver = Receiver()
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self.loop).result(5)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class TestHttpSinkConformance(SinkConformance):
    sink = HttpSink

    @pytest.fixture(autouse=True)
    def _endpoint(self) -> Iterator[None]:
        self.endpoint = _ThreadedReceiver()
        yield
        self.endpoint.close()

    def settings(self) -> dict[str, Any]:
        return {"url": self.endpoint.receiver.url + "/{topic}"}

    def read_back(self) -> list[Any]:
        return self.endpoint.receiver.bodies()

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        return [
            ({"url": "ftp://x"}, "url"),
            ({"url": "http://x/{nope}"}, "url"),
            ({"url": "http://x", "batch": 0}, "batch"),
            ({"url": "http://x", "concurrency": 0}, "concurrency"),
        ]


class TestBatchedHttpSinkConformance(TestHttpSinkConformance):
    def settings(self) -> dict[str, Any]:
        return {"url": self.endpoint.receiver.url, "batch": 8, "batch_format": "ndjson"}

    def read_back(self) -> list[Any]:
        return [
            orjson.loads(line) for r in self.endpoint.receiver.got for line in r.body.splitlines()
        ]
