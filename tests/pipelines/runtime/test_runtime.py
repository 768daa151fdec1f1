"""The runtime on the embedded store: delivery, resumption, retries, dead letters, endings."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest

from millstream.core.client import connect
from millstream.core.errors import PipelineError, PluginError
from millstream.core.record import TopicPartition
from millstream.pipelines.runtime import Runtime


async def _run(url: str, pipelines, registry, stop: asyncio.Event | None = None) -> str:
    async with await connect(url) as conn:
        runtime = Runtime(pipelines, conn, registry)
        await runtime.prepare()
        return await asyncio.wait_for(runtime.run(stop or asyncio.Event()), 30)


async def _dead_letters(url: str) -> list:
    async with await connect(url, read_only=True) as conn:
        consumer = conn.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition("dead", 0)])
        got = await consumer.getmany(timeout_ms=200)
        await consumer.close()
    return [r for records in got.values() for r in records]


async def test_a_bounded_pipeline_delivers_everything_then_ends(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    items = [{"n": i} for i in range(95)]
    url = f"file:{tmp_path / 'store'}"
    assert await _run(url, [make_plan(tmp_path, items=items)], registry) == "drained"
    assert sorted(e.value["n"] for e in sinks["default"]) == list(range(95))
    async with await connect(url, read_only=True) as conn:
        assert orjson.loads(await conn.positions().get("p/src")) == 95


async def test_a_restart_resumes_after_the_acknowledged_position(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    await _run(url, [make_plan(tmp_path, items=[{"n": i} for i in range(30)])], registry)
    sinks.clear()
    more = [{"n": i} for i in range(50)]  # the source now has 20 more items after the 30
    assert await _run(url, [make_plan(tmp_path, items=more)], registry) == "drained"
    assert sorted(e.value["n"] for e in sinks["default"]) == list(range(30, 50))


async def test_a_failing_sink_is_retried_and_nothing_is_lost(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    p = make_plan(tmp_path, items=[{"n": i} for i in range(20)], sink={"fail_times": 2})
    assert await _run(url, [p], registry) == "drained"
    assert sorted(e.value["n"] for e in sinks["default"]) == list(range(20))
    assert await _dead_letters(url) == []


async def test_a_poison_event_goes_to_the_dead_letter_topic_alone(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    items = [{"n": i} for i in range(10)]
    p = make_plan(tmp_path, items=items, sink={"poison": {"n": 4}})
    assert await _run(url, [p], registry) == "drained"
    assert sorted(e.value["n"] for e in sinks["default"]) == [0, 1, 2, 3, 5, 6, 7, 8, 9]
    (dead,) = await _dead_letters(url)
    headers = {k: v.decode() for k, v in dead.headers}
    assert orjson.loads(dead.value) == {"n": 4}
    assert headers["millstream.pipeline"] == "p"
    assert headers["millstream.part"] == "sinks.out"
    assert headers["millstream.step"] == "write"
    assert "cannot store" in headers["millstream.error"]
    assert headers["millstream.topic"] == "events"
    assert int(headers["millstream.offset"]) >= 0
    assert int(headers["millstream.attempts"]) >= 3


async def test_on_error_stop_stops_the_pipeline_with_the_reason(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    p = make_plan(tmp_path, items=[{"n": 1}], sink={"poison": {"n": 1}}, on_error="stop")
    with pytest.raises(PipelineError, match=r"sinks\.out: .*cannot store"):
        await _run(url, [p], registry)
    assert sinks["default"] == []


async def test_without_a_dead_letter_topic_a_failure_stops_rather_than_loses(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    p = make_plan(tmp_path, items=[{"n": 1}], sink={"poison": {"n": 1}}, dead_letter=None)
    with pytest.raises(PipelineError, match="no dead_letter topic is set"):
        await _run(url, [p], registry)


async def test_bytes_that_the_topic_codec_refuses_become_dead_letters(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    # a source that hands out encoded lines, one of them not JSON
    p = make_plan(tmp_path, items=[b'{"ok": 1}', b"{not json", b'{"ok": 2}'])
    assert await _run(url, [p], registry) == "drained"
    assert sorted(e.value["ok"] for e in sinks["default"]) == [1, 2]
    (dead,) = await _dead_letters(url)
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == b"{not json"
    assert headers["millstream.step"] == "decode"
    assert "not valid JSON" in headers["millstream.error"]
    assert "millstream.topic" not in headers  # it never made it into a topic


async def test_input_a_source_rejects_becomes_dead_letters_and_is_acknowledged(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    p = make_plan(tmp_path, items=[{"n": i} for i in range(5)], malformed=[{"n": 2}])
    assert await _run(url, [p], registry) == "drained"
    assert sorted(e.value["n"] for e in sinks["default"]) == [0, 1, 3, 4]
    (dead,) = await _dead_letters(url)
    headers = {k: v.decode() for k, v in dead.headers}
    assert dead.value == b"{'n': 2}"
    assert headers["millstream.part"] == "sources.src"
    assert headers["millstream.step"] == "read"
    assert headers["millstream.error"] == "malformed: {'n': 2}"
    async with await connect(url, read_only=True) as conn:
        assert orjson.loads(await conn.positions().get("p/src")) == 5


async def test_events_a_sink_refuses_for_good_are_dead_lettered_without_retries(
    tmp_path: Path, registry, sinks, make_plan, refusals
) -> None:
    url = f"file:{tmp_path / 'store'}"
    p = make_plan(tmp_path, items=[{"n": i} for i in range(6)], sink={"refuse": {"n": 3}})
    assert await _run(url, [p], registry) == "drained"
    assert sorted(e.value["n"] for e in sinks["default"]) == [0, 1, 2, 4, 5]
    assert refusals["refused"] == 1  # refused once, never retried
    (dead,) = await _dead_letters(url)
    headers = {k: v.decode() for k, v in dead.headers}
    assert orjson.loads(dead.value) == {"n": 3}
    assert headers["millstream.error"] == "HTTP 422: no {'n': 3}"
    assert headers["millstream.attempts"] == "1"
    assert headers["millstream.topic"] == "events"


async def test_a_sink_whose_open_fails_is_still_closed(
    tmp_path: Path, registry, sinks, make_plan, refusals
) -> None:
    url = f"file:{tmp_path / 'store'}"
    p = make_plan(tmp_path, items=[{"n": 1}], sink={"fail_open": True})
    with pytest.raises((PipelineError, ConnectionError), match="refused the login"):
        await _run(url, [p], registry)
    assert refusals["half-open"] >= 1
    assert refusals["closed"] == refusals["half-open"]


async def test_a_sink_refusing_an_event_it_was_not_given_is_named(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    p = make_plan(tmp_path, items=[{"n": 1}], sink={"refuse": {"n": 1}, "foreign": True})
    with pytest.raises(PluginError, match="'collect' sink refused an event it was not given"):
        await _run(url, [p], registry)


async def test_a_stop_finishes_and_commits_what_was_taken(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    p = make_plan(tmp_path, items=[{"n": i} for i in range(40)], forever=True)
    stop = asyncio.Event()

    async def stop_when_delivered() -> None:
        while len(sinks["default"]) < 40:
            await asyncio.sleep(0.01)
        stop.set()

    stopper = asyncio.create_task(stop_when_delivered())
    assert await _run(url, [p], registry, stop) == "stopped"
    await stopper
    async with await connect(url, read_only=True) as conn:
        described = await conn.admin().describe_group("p.out")
        assert sum(o.committed or 0 for o in described.offsets) == 40


async def test_start_latest_skips_what_was_there_but_nothing_written_later(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    first = make_plan(tmp_path, items=[{"n": i} for i in range(10)], sink={"name": "first"})
    await _run(url, [first], registry)
    later = make_plan(
        tmp_path,
        items=[{"n": i} for i in range(25)],
        sink={"name": "later"},
        start="latest",
        name="p",
    )
    # same pipeline name, so the source resumes at 10; a new sink group starting at latest
    from dataclasses import replace

    sink = replace(later.sinks["out"], name="late", group="p.late")
    later = replace(later, sinks={"late": sink})
    assert await _run(url, [later], registry) == "drained"
    assert sorted(e.value["n"] for e in sinks["later"]) == list(range(10, 25))


async def test_workers_share_the_partitions_of_a_sink(
    tmp_path: Path, registry, sinks, make_plan
) -> None:
    url = f"file:{tmp_path / 'store'}"
    items = [{"n": i} for i in range(200)]
    assert await _run(url, [make_plan(tmp_path, items=items, workers=2)], registry) == "drained"
    assert sorted(e.value["n"] for e in sinks["default"]) == list(range(200))
