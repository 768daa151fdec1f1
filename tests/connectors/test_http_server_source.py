"""The http-server source: webhooks answered once the log holds their events."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import signal
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from millstream.connectors.http import HttpServerConfig, HttpServerSource
from millstream.connectors.http._body import BodyError, split_body
from millstream.connectors.http._signature import signature_problem
from millstream.core import ConnectorContext, ConnectorError, SourceBatch
from millstream.core.client import connect
from millstream.core.plugins import get_registry
from millstream.core.record import TopicPartition
from millstream.core.testing import SourceConformance
from millstream.pipelines.runtime import Runtime
from millstream.pipelines.spec import load_pipeline

CONTEXT = ConnectorContext("p", "hooks")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- bodies and signatures -----------------------------------------------------------------


def test_a_body_is_an_object_an_array_or_ndjson() -> None:
    assert split_body(b' {"a": 1}\n') == [b'{"a": 1}']
    assert split_body(b'[{"a":1}, {"b": [2]}, 3]') == [b'{"a":1}', b'{"b":[2]}', b"3"]
    assert split_body(b'{"a":1}\n\n{"b":2}\r\n') == [b'{"a":1}', b'{"b":2}']
    assert split_body(b'{"a":1}', "ndjson") == [b'{"a":1}']
    # the content type says NDJSON: a one-line array is one event
    assert split_body(b"[1,2]", content_type="application/x-ndjson") == [b"[1,2]"]


@pytest.mark.parametrize(
    ("body", "fmt", "reason"),
    [
        (b"not json", "auto", "the body is not JSON"),
        (b"", "auto", "the body is empty"),
        (b'"text"', "auto", "a JSON str, not an object or an array"),
        (b'{"a":1}\n{"b":\n{"c":3}', "auto", "line 2 is not JSON"),
        (b'{"a":1}\n{"b":2}', "json", "the body is not JSON"),
        (b"\n\n", "ndjson", "holds no JSON lines"),
    ],
)
def test_a_malformed_body_is_refused_with_the_reason(body: bytes, fmt: Any, reason: str) -> None:
    with pytest.raises(BodyError, match=reason) as caught:
        split_body(body, fmt)
    assert "\n" not in str(caught.value)


def test_github_and_stripe_signatures() -> None:
    body = b'{"zen": "keep it simple"}'
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    assert signature_problem("github", good, body, "s3cret") is None
    assert signature_problem("github", good, body + b" ", "s3cret") == (
        "the signature does not match the body"
    )
    assert signature_problem("github", None, body, "s3cret") == "the signature header is missing"
    now = 1_700_000_000
    v1 = hmac.new(b"whsec", f"{now}.".encode() + body, hashlib.sha256).hexdigest()
    header = f"t={now},v1=deadbeef,v1={v1}"
    assert signature_problem("stripe", header, body, "whsec", now=now + 10) is None
    assert "away from now" in str(signature_problem("stripe", header, body, "whsec", now=now + 900))
    assert "t=<time> and v1" in str(signature_problem("stripe", "v1=ab", body, "whsec", now=now))


# -- the source on its own ------------------------------------------------------------------


@pytest.fixture
async def hooks(request: pytest.FixtureRequest) -> AsyncIterator[HttpServerSource]:
    settings = {"port": 0, "path": ["/hooks", "/other"], **getattr(request, "param", {})}
    source = HttpServerSource(HttpServerConfig(**settings), CONTEXT)
    await source.open(None)
    try:
        yield source
    finally:
        await source.close()


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def post(
    client: aiohttp.ClientSession, url: str, body: bytes, **headers: str
) -> tuple[int, Any, Any]:
    async with client.post(url, data=body, headers=headers) as answer:
        return answer.status, orjson.loads(await answer.read()), answer.headers


async def test_the_answer_waits_for_the_acknowledgement(
    hooks: HttpServerSource, client: aiohttp.ClientSession
) -> None:
    sending = asyncio.create_task(post(client, hooks.url + "/hooks", b'{"n":1}\n{"n":2}'))
    batch = await asyncio.wait_for(hooks.read(), 5)
    assert [e.value for e in batch.events] == [b'{"n":1}', b'{"n":2}']
    await asyncio.sleep(0.2)
    assert not sending.done()  # read, but the log has not acknowledged it
    await hooks.ack(batch.position)
    status, body, _ = await asyncio.wait_for(sending, 5)
    assert (status, body) == (200, {"accepted": 2})


async def test_one_batch_acknowledges_many_requests_in_order(
    hooks: HttpServerSource, client: aiohttp.ClientSession
) -> None:
    sends = [
        asyncio.create_task(post(client, hooks.url + "/other", b'{"n":%d}' % n)) for n in range(5)
    ]
    got: list[SourceBatch] = []
    while sum(len(b.events) for b in got) < 5:
        got.append(await asyncio.wait_for(hooks.read(), 5))
    assert sorted(orjson.loads(e.value)["n"] for b in got for e in b.events) == list(range(5))
    await hooks.ack(got[0].position)  # only the requests of the first batch are answered
    answered: set[asyncio.Task[Any]] = set()
    async with asyncio.timeout(5):
        while len(answered) < len(got[0].events):
            done, _ = await asyncio.wait(
                [s for s in sends if s not in answered], return_when=asyncio.FIRST_COMPLETED
            )
            answered |= done
    assert sum(s.done() for s in sends) == len(got[0].events)
    await hooks.ack(got[-1].position)
    assert [(await s)[0] for s in sends] == [200] * 5


@pytest.mark.parametrize("hooks", [{"batch_size": 3}], indirect=True)
async def test_a_request_larger_than_a_batch_is_answered_after_its_last_part(
    hooks: HttpServerSource, client: aiohttp.ClientSession
) -> None:
    body = b"\n".join(b'{"n":%d}' % n for n in range(7))
    sending = asyncio.create_task(post(client, hooks.url + "/hooks", body))
    batches = [await asyncio.wait_for(hooks.read(), 5) for _ in range(3)]
    assert [len(b.events) for b in batches] == [3, 3, 1]
    for batch in batches[:2]:
        await hooks.ack(batch.position)
    await asyncio.sleep(0.1)
    assert not sending.done()
    await hooks.ack(batches[2].position)
    assert (await sending)[:2] == (200, {"accepted": 7})


async def test_malformed_bodies_get_400_with_the_reason_and_nothing_is_queued(
    hooks: HttpServerSource, client: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(client, hooks.url + "/hooks", b"<xml/>")
    assert status == 400 and body["error"].startswith("the body is not JSON")
    status, body, _ = await post(client, hooks.url + "/hooks", b'{"a":1}\n{"b":\n{"c":1}')
    assert status == 400 and body["error"].startswith("line 2 is not JSON")
    reading = asyncio.create_task(hooks.read())
    await asyncio.sleep(0.1)
    assert not reading.done()
    reading.cancel()


async def test_wrong_path_and_method(
    hooks: HttpServerSource, client: aiohttp.ClientSession
) -> None:
    assert (await post(client, hooks.url + "/nope", b"{}"))[0] == 404
    async with client.get(hooks.url + "/hooks") as answer:
        assert answer.status == 405 and answer.headers["Allow"] == "POST, PUT"


@pytest.mark.parametrize("hooks", [{"max_body_bytes": 100}], indirect=True)
async def test_a_body_above_the_limit_gets_413(
    hooks: HttpServerSource, client: aiohttp.ClientSession
) -> None:
    status, body, _ = await post(client, hooks.url + "/hooks", b'{"pad":"%s"}' % (b"x" * 200))
    assert status == 413 and "at most 100" in body["error"]

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted while read
        for _ in range(10):
            yield b" " * 50

    async with client.post(hooks.url + "/hooks", data=chunks()) as answer:
        assert answer.status == 413


@pytest.mark.parametrize("hooks", [{"max_pending_requests": 2, "retry_after": 7}], indirect=True)
async def test_too_many_waiting_requests_get_429_with_retry_after(
    hooks: HttpServerSource, client: aiohttp.ClientSession
) -> None:
    waiting = [asyncio.create_task(post(client, hooks.url + "/hooks", b"{}")) for _ in range(2)]
    while len(hooks._queue) < 2:
        await asyncio.sleep(0.01)
    status, body, headers = await post(client, hooks.url + "/hooks", b"{}")
    assert status == 429 and headers["Retry-After"] == "7"
    assert "waiting for the log" in body["error"]
    batch = await hooks.read()
    await hooks.ack(batch.position)
    assert [(await w)[0] for w in waiting] == [200, 200]
    sending = asyncio.create_task(post(client, hooks.url + "/hooks", b"{}"))  # room again
    await hooks.ack((await asyncio.wait_for(hooks.read(), 5)).position)
    assert (await sending)[0] == 200


@pytest.mark.parametrize("hooks", [{"ack_timeout": "200ms", "retry_after": 2}], indirect=True)
async def test_a_request_not_acknowledged_in_time_gets_503_to_send_again(
    hooks: HttpServerSource, client: aiohttp.ClientSession
) -> None:
    sending = asyncio.create_task(post(client, hooks.url + "/hooks", b'{"n": 1}'))
    batch = await asyncio.wait_for(hooks.read(), 5)
    status, body, headers = await asyncio.wait_for(sending, 5)
    assert status == 503 and headers["Retry-After"] == "2"
    assert "did not acknowledge the events within 0.2s; send them again" in body["error"]
    await hooks.ack(batch.position)  # late: the events are in the log, and will be again
    assert hooks._requests == 0 and hooks._events == 0


@pytest.mark.parametrize("hooks", [{"bearer_token": "tok"}], indirect=True)
async def test_a_bearer_token_is_required(
    hooks: HttpServerSource, client: aiohttp.ClientSession
) -> None:
    assert (await post(client, hooks.url + "/hooks", b"{}"))[0] == 401
    assert (await post(client, hooks.url + "/hooks", b"{}", Authorization="Bearer nope"))[0] == 401
    sending = asyncio.create_task(
        post(client, hooks.url + "/hooks", b"{}", Authorization="Bearer tok")
    )
    await hooks.ack((await hooks.read()).position)
    assert (await sending)[0] == 200


@pytest.mark.parametrize(
    "hooks",
    [{"hmac_secret": "s3cret", "headers": ["X-GitHub-Event"], "key_header": "X-GitHub-Delivery"}],
    indirect=True,
)
async def test_a_github_signature_is_checked_and_headers_are_copied(
    hooks: HttpServerSource, client: aiohttp.ClientSession
) -> None:
    body = b'{"action": "opened"}'
    signature = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    status, answer, _ = await post(
        client, hooks.url + "/hooks", body + b" ", **{"X-Hub-Signature-256": signature}
    )
    assert status == 401 and "does not match" in answer["error"]
    assert (await post(client, hooks.url + "/hooks", body))[0] == 401
    sending = asyncio.create_task(
        post(
            client,
            hooks.url + "/hooks",
            body,
            **{
                "X-Hub-Signature-256": signature,
                "X-GitHub-Event": "pull_request",
                "X-GitHub-Delivery": "d-1",
                "X-Other": "not copied",
            },
        )
    )
    batch = await asyncio.wait_for(hooks.read(), 5)
    [event] = batch.events
    assert event.headers == (("X-GitHub-Event", b"pull_request"),)
    assert event.key == b"d-1"
    await hooks.ack(batch.position)
    assert (await sending)[0] == 200


async def test_close_answers_503_to_what_was_not_acknowledged(
    client: aiohttp.ClientSession,
) -> None:
    source = HttpServerSource(HttpServerConfig(port=0, retry_after=3), CONTEXT)
    await source.open(None)
    url = source.url
    try:
        sending = [asyncio.create_task(post(client, url + "/", b"{}")) for _ in range(2)]
        batch = await asyncio.wait_for(source.read(), 5)
        while len(source._queue) + len(batch.events) < 2:
            await asyncio.sleep(0.01)
    finally:
        await source.close()
    for task in sending:
        status, body, headers = await task
        assert status == 503 and headers["Retry-After"] == "3"
        assert "shutting down" in body["error"]
    with pytest.raises(aiohttp.ClientConnectionError):
        await post(client, url + "/", b"{}")  # no longer listening


async def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        source = HttpServerSource(HttpServerConfig(port=port), CONTEXT)
        with pytest.raises(ConnectorError, match=f"cannot listen on host 127.0.0.1 port {port}"):
            await source.open(None)
        await source.close()


# -- in a pipeline ---------------------------------------------------------------------------


async def test_in_a_pipeline_the_answer_comes_once_the_events_are_in_the_store(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    port = free_port()
    (tmp_path / "p.yaml").write_text(
        f"""
pipeline: webhooks
dead_letter: dead
topics:
  events: {{partitions: 1}}
  dead: {{partitions: 1}}
sources:
  hooks:
    connector: http-server
    config: {{port: {port}, path: /hooks, headers: [X-Event]}}
    to: events
    key: value.id
"""
    )
    pipeline = load_pipeline(tmp_path / "p.yaml", env={})
    stop = asyncio.Event()
    async with await connect(f"file:{tmp_path / 'store'}") as conn:
        runtime = Runtime([pipeline], conn, get_registry())
        await runtime.prepare()
        running = asyncio.create_task(runtime.run(stop))
        url = f"http://127.0.0.1:{port}/hooks"
        for _ in range(100):
            try:
                status, body, _ = await post(client, url, b"[]")
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        assert (status, body) == (200, {"accepted": 0})  # an empty array: nothing to wait for
        consumer = conn.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition("events", 0)])
        stored: list[Any] = []
        for n in range(3):
            body = b'{"id": "a%d"}\n{"id": "b%d"}' % (n, n)
            status, answer, _ = await post(client, url, body, **{"X-Event": "push"})
            assert (status, answer) == (200, {"accepted": 2})
            got = await consumer.getmany(timeout_ms=0)  # already there: no waiting
            stored += [r for records in got.values() for r in records]
            assert len(stored) == 2 * (n + 1)
        assert [r.key for r in stored] == [b"a0", b"b0", b"a1", b"b1", b"a2", b"b2"]
        assert stored[0].headers == (("X-Event", b"push"),)
        await consumer.close()
        stop.set()
        assert await asyncio.wait_for(running, 10) == "stopped"


async def test_millstream_run_takes_webhooks_until_sigterm(
    tmp_path: Path, client: aiohttp.ClientSession
) -> None:
    port = free_port()
    (tmp_path / "p.yaml").write_text(
        f"""
pipeline: webhooks
store: file:./store
topics:
  events: {{partitions: 1}}
sources:
  hooks:
    connector: http-server
    config: {{port: {port}, path: /hooks, bearer_token: "${{HOOK_TOKEN}}"}}
    to: events
"""
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("MILLSTREAM_")}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "millstream"),
        "run",
        "p.yaml",
        "--quiet",
        cwd=tmp_path,
        env={**env, "HOOK_TOKEN": "t0k"},
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        url = f"http://127.0.0.1:{port}/hooks"
        auth = {"Authorization": "Bearer t0k"}
        for _ in range(200):
            try:
                status, body, _ = await post(client, url, b'{"n": 0}\n{"n": 1}', **auth)
                break
            except aiohttp.ClientConnectionError:
                await asyncio.sleep(0.05)
        assert (status, body) == (200, {"accepted": 2})
        assert (await post(client, url, b"[]"))[0] == 401
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 0, stderr.decode()
    async with await connect(f"file:{tmp_path / 'store'}", read_only=True) as conn:
        consumer = conn.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition("events", 0)])
        got = await consumer.getmany(timeout_ms=200)
        await consumer.close()
    assert [orjson.loads(r.value) for rs in got.values() for r in rs] == [{"n": 0}, {"n": 1}]


# -- the conformance kit ---------------------------------------------------------------------


class _Senders:
    """Threads that POST prepared events to a port until answered (or told to stop)."""

    def __init__(self) -> None:
        self.stop = threading.Event()

    def start(self, port: int, bodies: list[bytes]) -> None:
        for body in bodies:
            threading.Thread(target=self._send, args=(port, body), daemon=True).start()

    def _send(self, port: int, body: bytes) -> None:
        deadline = time.monotonic() + 20
        while not self.stop.is_set() and time.monotonic() < deadline:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=20):
                    return
            except urllib.error.HTTPError as exc:
                exc.close()
            except OSError:
                pass
            self.stop.wait(0.05)


class TestHttpServerConformance(SourceConformance):
    source = HttpServerSource

    @pytest.fixture(autouse=True)
    def _senders(self) -> Iterator[None]:
        self.senders = _Senders()
        yield
        self.senders.stop.set()

    def prepare(self, count: int) -> dict[str, Any]:
        port = free_port()
        per_request = 7 if count < 1000 else 1000
        bodies = [
            b"\n".join(b'{"n":%d}' % n for n in range(start, min(count, start + per_request)))
            for start in range(0, count, per_request)
        ]
        self.senders.start(port, bodies)
        return {"port": port, "max_pending_requests": 4, "retry_after": 0, "batch_size": 5}

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        taken = socket.socket()
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        self._taken = taken  # held until the test ends
        return [
            ({"port": 70_000}, "port"),
            ({"port": 0, "path": "hooks"}, "path"),
            ({"port": 0, "bearer_token": "a", "hmac_secret": "b"}, "bearer_token"),
            ({"port": taken.getsockname()[1]}, "port"),
        ]
