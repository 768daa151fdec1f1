"""Route workers in a running pipeline: retries from the records as read, dead letters for
what cannot be written, sources writing to several topics, stops with a batch in hand."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import orjson

from millstream.core.client import connect
from millstream.core.record import TopicPartition
from millstream.pipelines.runtime import Runtime


async def _run(url: str, pipeline, registry, stop: asyncio.Event | None = None) -> str:
    async with await connect(url) as conn:
        runtime = Runtime([pipeline], conn, registry)
        await runtime.prepare()
        return await asyncio.wait_for(runtime.run(stop or asyncio.Event()), 30)


async def _read_all(url: str, topic: str) -> list:
    async with await connect(url, read_only=True) as conn:
        described = await conn.admin().describe_topic(topic)
        consumer = conn.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition(topic, p.partition) for p in described.partitions])
        out = []
        while True:
            got = await consumer.getmany(timeout_ms=100)
            if not got:
                break
            out += [r for records in got.values() for r in records]
        await consumer.close()
    return out


async def test_a_retried_route_starts_again_from_the_records_as_read(
    tmp_path: Path, registry, sinks, make_route_plan, flaky_step
) -> None:
    # set changes events in place and dedupe remembers keys: a retry that reused the first
    # attempt's events would add 1 twice, and dedupe would drop every event as seen
    items = [{"n": i, "id": i} for i in range(20)]
    steps = [
        ("set", {"n": "value.n + 1"}),
        ("dedupe", {"by": "value.id", "window": "1h"}),
        (flaky_step, 2),
    ]
    url = f"file:{tmp_path / 'store'}"
    assert (
        await _run(url, make_route_plan(tmp_path, items=items, steps=steps), registry) == "drained"
    )
    assert sorted(e.value["n"] for e in sinks["default"]) == list(range(1, 21))
    assert await _read_all(url, "dead") == []


async def test_a_record_too_large_for_its_topic_is_a_dead_letter_not_a_crash(
    tmp_path: Path, registry, sinks, make_route_plan
) -> None:
    items = [{"n": i, "pad": "x" * (5000 if i == 3 else 10)} for i in range(8)]
    plan = make_route_plan(
        tmp_path, items=items, steps=[], out_config={"max.message.bytes": "2000"}
    )
    url = f"file:{tmp_path / 'store'}"
    assert await _run(url, plan, registry) == "drained"
    assert sorted(e.value["n"] for e in sinks["default"]) == [0, 1, 2, 4, 5, 6, 7]
    (dead,) = await _read_all(url, "dead")
    headers = {k: v.decode() for k, v in dead.headers}
    assert headers["millstream.part"] == "routes.r"
    assert headers["millstream.step"] == "write"
    assert "out" in headers["millstream.error"]
    assert orjson.loads(dead.value)["n"] == 3


async def test_a_source_writing_to_two_topics_writes_each_what_its_codec_holds(
    tmp_path: Path, registry, sinks, make_route_plan
) -> None:
    lines = [b'{"a": 1}', b"not json", b'{"a": 2}']
    plan = make_route_plan(
        tmp_path, items=lines, steps=[], to=("events", "raw"), codecs={"raw": "bytes"}
    )
    url = f"file:{tmp_path / 'store'}"
    assert await _run(url, plan, registry) == "drained"
    assert sorted(r.value for r in await _read_all(url, "raw")) == sorted(lines)
    assert sorted(e.value["a"] for e in sinks["default"]) == [1, 2]
    (dead,) = await _read_all(url, "dead")
    assert dead.value == b"not json"
    assert {k: v.decode() for k, v in dead.headers}["millstream.step"] == "decode"


async def test_a_stop_while_a_sink_writes_loses_nothing_on_the_next_run(
    tmp_path: Path, registry, sinks, make_route_plan, slow_sink
) -> None:
    items = [{"n": i} for i in range(300)]
    url = f"file:{tmp_path / 'store'}"
    plan = make_route_plan(
        tmp_path, items=items, steps=[], sink=slow_sink, sink_config={"delay": 0.2}, pause=0.01
    )
    stop = asyncio.Event()

    async def stop_mid_write() -> None:
        while not sinks["default"]:
            await asyncio.sleep(0.01)
        stop.set()

    stopper = asyncio.create_task(stop_mid_write())
    assert await _run(url, plan, registry, stop) == "stopped"
    await stopper
    first = len(sinks["default"])
    assert 0 < first < 300
    assert await _run(url, plan, registry) == "drained"
    assert {e.value["n"] for e in sinks["default"]} == set(range(300))


async def test_a_sink_that_hangs_is_cancelled_after_the_grace_period(
    tmp_path: Path, registry, sinks, make_route_plan, slow_sink
) -> None:
    url = f"file:{tmp_path / 'store'}"
    plan = make_route_plan(
        tmp_path, items=[{"n": 1}], steps=[], sink=slow_sink, sink_config={"hang": True}
    )
    async with await connect(url) as conn:
        runtime = Runtime([plan], conn, registry)
        runtime.stop_grace_s = 0.5
        await runtime.prepare()
        stop = asyncio.Event()
        task = asyncio.create_task(runtime.run(stop))
        await asyncio.sleep(1.0)
        started = time.monotonic()
        stop.set()
        assert await asyncio.wait_for(task, 10) == "stopped"
        assert time.monotonic() - started < 3
        described = await conn.admin().describe_group("p.out")
        assert all(o.committed in (None, 0) for o in described.offsets)  # nothing flushed
