"""The stdin source: one event per line of standard input, as bytes; ends with the input."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import threading
import time
from typing import Any

import pytest

from millstream.connectors.stdin import StdinConfig, StdinSource
from millstream.core import ConnectorContext
from millstream.core.testing import SourceConformance


class TestStdinConformance(SourceConformance):
    source = StdinSource

    def prepare(self, count: int) -> dict[str, Any]:
        path = self.tmp_path / "input.txt"
        path.write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(count)))
        stream = path.open("rb")
        self.monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(stream))
        return {"batch_size": 7}

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        return [({"batch_size": 0}, "batch_size")]


def lines_of(data: bytes, monkeypatch: pytest.MonkeyPatch, batch_size: int = 1000) -> list[Any]:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))

    async def run() -> list[Any]:
        source = StdinSource(StdinConfig(batch_size=batch_size), ConnectorContext("p", "in"))
        await source.open(None)
        values = []
        while (batch := await source.read()) is not None:
            assert len(batch.events) <= batch_size
            values.extend(e.value for e in batch.events)
        await source.close()
        return values

    return asyncio.run(run())


def test_each_line_is_an_event_of_its_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    data = b'{"a": 1}\n\nnot json\r\n\xff\xfe\nlast without newline'
    assert lines_of(data, monkeypatch, batch_size=2) == [
        b'{"a": 1}',
        b"",
        b"not json\r",
        b"\xff\xfe",
        b"last without newline",
    ]


def test_lines_longer_than_a_chunk_come_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    long = b"x" * 200_000
    assert lines_of(long + b"\nshort\n" + long, monkeypatch) == [long, b"short", long]


def test_empty_input_ends_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    assert lines_of(b"", monkeypatch) == []


def test_a_slow_pipe_does_not_block_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines come through a pipe written slowly by another thread; the loop keeps ticking."""
    reader, writer = os.pipe()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(os.fdopen(reader, "rb")))

    def write_slowly() -> None:
        with os.fdopen(writer, "wb", buffering=0) as out:
            for n in range(3):
                time.sleep(0.1)
                out.write(b"line %d\n" % n)

    async def run() -> tuple[list[Any], int]:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        ticker = asyncio.create_task(tick())
        source = StdinSource(StdinConfig(), ConnectorContext("p", "in"))
        await source.open(None)
        values = []
        while (batch := await source.read()) is not None:
            values.extend(e.value for e in batch.events)
        await source.close()
        ticker.cancel()
        return values, ticks

    thread = threading.Thread(target=write_slowly)
    thread.start()
    values, ticks = asyncio.run(run())
    thread.join()
    assert values == [b"line 0", b"line 1", b"line 2"]
    assert ticks >= 15  # ~0.3 s of waiting, the loop free all along
