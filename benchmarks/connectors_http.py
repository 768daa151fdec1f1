"""HTTP connectors: the http-server source taking webhooks into the embedded store.

- **NDJSON batches**: requests of 1,000 NDJSON events (~100 bytes each) POSTed over several
  connections to an ``http-server`` source run by the pipeline runtime, writing to a topic of
  the embedded store; every request is answered only once the log acknowledged its events.
  Figure: events per second, from the first request sent to the last answer received.
- **single-event POSTs**: the same with one event per request; requests per second.

Baseline, in the same round: an aiohttp handler that reads the same requests and drops them
(no parsing, no log), on the same kind of server. The client is a separate process on the
same machine (``aiohttp``, several keep-alive connections): on two cores it takes about one
of them, so both figures are what one core left to the server achieves.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from aiohttp import web

from millstream.core.client import connect
from millstream.core.plugins import get_registry
from millstream.pipelines.runtime import Runtime
from millstream.pipelines.spec import load_pipeline

from ._harness import Result, median

__all__ = ["run"]

PER_REQUEST = 1000
CONNECTIONS = 16
SINGLE_CONNECTIONS = 64

_CLIENT = textwrap.dedent(
    """
    import asyncio, sys, time
    import aiohttp, orjson

    url, total, per_request, connections = sys.argv[1], *map(int, sys.argv[2:5])

    def body(start, count):
        return b"\\n".join(
            orjson.dumps({"device_id": f"dev-{i % 500:03d}", "seq": i, "temp": 21.5,
                          "humidity": 40.5, "ok": True, "site": "north"})
            for i in range(start, start + count)
        )

    async def main():
        bodies = [body(s, min(per_request, total - s)) for s in range(0, total, per_request)]
        kind = "application/x-ndjson" if per_request > 1 else "application/json"
        headers = {"Content-Type": kind}
        connector = aiohttp.TCPConnector(limit=connections)
        async with aiohttp.ClientSession(connector=connector) as session:
            for _ in range(100):  # wait until the server listens
                try:
                    async with session.post(url, data=b"[]", headers=headers) as r:
                        await r.read()
                    break
                except aiohttp.ClientConnectionError:
                    await asyncio.sleep(0.05)
            queue = iter(bodies)
            failed = 0

            async def sender():
                nonlocal failed
                for data in queue:
                    while True:
                        async with session.post(url, data=data, headers=headers) as r:
                            await r.read()
                            if r.status == 200:
                                break
                            failed += 1
                            await asyncio.sleep(0.01)

            start = time.perf_counter()
            await asyncio.gather(*(sender() for _ in range(connections)))
            elapsed = time.perf_counter() - start
        print(elapsed, failed)

    asyncio.run(main())
    """
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _client(port: int, total: int, per_request: int, connections: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-c",
            _CLIENT,
            f"http://127.0.0.1:{port}/hooks",
            str(total),
            str(per_request),
            str(connections),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )


async def _wait(client: subprocess.Popen[str]) -> float:
    """Seconds the client took to have every request answered."""
    while client.poll() is None:
        await asyncio.sleep(0.02)
    out = client.stdout.read() if client.stdout else ""
    if client.returncode != 0 or not out.strip():
        raise RuntimeError(f"the benchmark client failed (exit {client.returncode})")
    return float(out.split()[0])


async def _through_the_log(total: int, per_request: int, connections: int) -> float:
    """Seconds for ``total`` events through an http-server source into the embedded store."""
    folder = Path(tempfile.mkdtemp(prefix="millstream-bench-http-"))
    try:
        port = _free_port()
        (folder / "p.yaml").write_text(
            "pipeline: bench\n"
            "topics:\n  events: {partitions: 4}\n"
            "sources:\n  hooks:\n    connector: http-server\n"
            f"    config: {{port: {port}, path: /hooks, max_pending_requests: 5000, "
            "max_pending_events: 200000}\n"
            "    to: events\n"
        )
        pipeline = load_pipeline(folder / "p.yaml", env={})
        async with await connect(f"file:{folder / 'store'}") as conn:
            runtime = Runtime([pipeline], conn, get_registry())
            await runtime.prepare()
            stop = asyncio.Event()
            running = asyncio.create_task(runtime.run(stop))
            try:
                elapsed = await _wait(_client(port, total, per_request, connections))
            finally:
                stop.set()
                await running
            stored = sum(p.events_out for p in runtime.stats.parts)
            if stored < total:
                raise RuntimeError(f"only {stored} of {total} events reached the log")
        return elapsed
    finally:
        shutil.rmtree(folder, ignore_errors=True)


async def _dropped(total: int, per_request: int, connections: int) -> float:
    """Seconds for the same requests to a handler that reads and drops them."""

    async def drop(request: web.BaseRequest) -> web.Response:
        await request.read()
        return web.Response(body=b'{"accepted":1}', content_type="application/json")

    port = _free_port()
    runner = web.ServerRunner(web.Server(drop, access_log=None))
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
    try:
        return await _wait(_client(port, total, per_request, connections))
    finally:
        await runner.cleanup()


def _rounds(runs: int, total: int, per_request: int, connections: int) -> tuple[list, list]:
    subject: list[float] = []
    baseline: list[float] = []
    for _ in range(runs):
        subject.append(asyncio.run(_through_the_log(total, per_request, connections)))
        baseline.append(asyncio.run(_dropped(total, per_request, connections)))
    return subject, baseline


def ndjson_batches(records: int, runs: int) -> Result:
    total = max(PER_REQUEST, min(records, 300_000) // PER_REQUEST * PER_REQUEST)
    subject, baseline = _rounds(runs, total, PER_REQUEST, CONNECTIONS)
    rates = [total / s for s in subject]
    base = [total / s for s in baseline]
    value = median(rates)
    return Result(
        name=f"http-server → topic, NDJSON requests of {PER_REQUEST:,} events",
        unit="events/s",
        value=value,
        target="≥ 100,000 events/s",
        met=value >= 100_000,
        baseline=median(base),
        baseline_label="aiohttp handler that drops the requests",
        runs=rates,
        baseline_runs=base,
        note=f"{total:,} events in {total // PER_REQUEST} requests over {CONNECTIONS} "
        "connections from a client process on the same two cores; each answered once the "
        "log acknowledged its events",
    )


def single_posts(records: int, runs: int) -> Result:
    total = max(1000, min(records // 50, 20_000))
    subject, baseline = _rounds(runs, total, 1, SINGLE_CONNECTIONS)
    rates = [total / s for s in subject]
    base = [total / s for s in baseline]
    value = median(rates)
    return Result(
        name="http-server → topic, one event per POST",
        unit="requests/s",
        value=value,
        target="≥ 3,000 requests/s",
        met=value >= 3_000,
        baseline=median(base),
        baseline_label="aiohttp handler that drops the requests",
        runs=rates,
        baseline_runs=base,
        note=f"{total:,} requests over {SINGLE_CONNECTIONS} keep-alive connections from a "
        "client process on the same two cores (it takes about one of them)",
    )


def run(runs: int, records: int) -> list[Result]:
    return [ndjson_batches(records, runs), single_posts(records, runs)]


if __name__ == "__main__":
    started = time.perf_counter()
    for result in run(1, int(sys.argv[1]) if len(sys.argv) > 1 else 100_000):
        print(result)
    print(f"{time.perf_counter() - started:.1f}s", file=sys.stderr)
