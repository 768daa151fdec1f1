"""The memory source and sink: named in-process channels for tests."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from millstream.connectors.memory import (
    MemorySink,
    MemorySinkConfig,
    MemorySource,
    MemorySourceConfig,
    channel,
    reset_channels,
)
from millstream.core import ConnectorContext, Event
from millstream.core.testing import SinkConformance, SourceConformance
from millstream.pipelines.spec import guarantees, load_pipeline


@pytest.fixture(autouse=True)
def fresh_channels() -> None:
    reset_channels()


class TestMemorySourceConformance(SourceConformance):
    source = MemorySource

    def prepare(self, count: int) -> dict[str, Any]:
        channel("in").append(Event({"n": n}, key=str(n).encode()) for n in range(count))
        return {"channel": "in", "bounded": True, "batch_size": 7}


class TestUnboundedMemorySourceConformance(TestMemorySourceConformance):
    def prepare(self, count: int) -> dict[str, Any]:
        return {**super().prepare(count), "bounded": False}


class TestMemorySinkConformance(SinkConformance):
    sink = MemorySink

    def settings(self) -> dict[str, Any]:
        return {"channel": "out"}

    def read_back(self) -> list[Any]:
        return channel("out").values()


CONTEXT = ConnectorContext("p", "mem")


def test_a_sink_publishes_on_flush_and_a_source_waits_for_it() -> None:
    async def run() -> list[Any]:
        source = MemorySource(MemorySourceConfig(channel="pipe"), CONTEXT)
        sink = MemorySink(MemorySinkConfig(channel="pipe"), CONTEXT)
        await source.open(None)
        await sink.open()
        reading = asyncio.create_task(source.read())
        await sink.write([Event({"n": 1}, topic="t", partition=0, offset=0)])
        await asyncio.sleep(0.05)
        assert not reading.done()  # written, not flushed: nothing to read yet
        await sink.flush()
        batch = await asyncio.wait_for(reading, 2)
        assert batch is not None
        return [e.value for e in batch.events]

    assert asyncio.run(run()) == [{"n": 1}]


def test_a_source_ends_when_its_channel_is_closed() -> None:
    async def run() -> Any:
        source = MemorySource(MemorySourceConfig(channel="c"), CONTEXT)
        await source.open(None)
        reading = asyncio.create_task(source.read())
        await asyncio.sleep(0.01)
        channel("c").close()
        return await asyncio.wait_for(reading, 2)

    assert asyncio.run(run()) is None


def test_the_sink_keeps_one_copy_by_topic_partition_and_offset() -> None:
    async def run() -> None:
        sink = MemorySink(MemorySinkConfig(channel="c"), CONTEXT)
        stored = [Event({"n": n}, topic="t", partition=0, offset=n) for n in range(3)]
        made = [Event({"new": True}), Event({"new": True})]  # no offset: no identity
        await sink.write(stored + made)
        await sink.write([*stored, Event({"n": 0}, topic="t", partition=1, offset=0)])
        await sink.flush()

    asyncio.run(run())
    assert channel("c").values() == [
        {"n": 0},
        {"n": 1},
        {"n": 2},
        {"new": True},
        {"new": True},
        {"n": 0},
    ]


def test_an_event_written_again_at_another_offset_is_kept_again() -> None:
    """What a route upstream writes again after a restart is read at new offsets: the memory
    sink keeps both copies, so it does not claim to be idempotent."""

    async def run() -> None:
        sink = MemorySink(MemorySinkConfig(channel="c"), CONTEXT)
        await sink.write([Event({"n": 1}, key=b"k", topic="t", partition=0, offset=0)])
        await sink.write([Event({"n": 1}, key=b"k", topic="t", partition=0, offset=1)])
        await sink.flush()

    asyncio.run(run())
    assert channel("c").values() == [{"n": 1}, {"n": 1}]
    assert MemorySink.idempotent is False


def test_validate_reports_a_memory_sink_at_least_once(tmp_path: Path) -> None:
    (tmp_path / "p.yaml").write_text(
        "pipeline: m\ntopics: {a: {}, b: {}}\n"
        "sources:\n  feed: {connector: memory, config: {channel: in}, to: a}\n"
        "routes:\n  copy: {from: a, to: b}\n"
        "sinks:\n"
        "  kept: {connector: memory, config: {channel: out}, from: b}\n"
        "  dropped: {connector: 'null', from: b}\n"
    )
    found = {g.name: g.level for g in guarantees(load_pipeline(tmp_path / "p.yaml", env={}))}
    assert found["kept"] == "at-least-once"
    assert found["dropped"] == "exactly-once"
