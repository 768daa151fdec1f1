"""The stdin source: one event per line of standard input, as bytes; ends with the input."""

from __future__ import annotations

import asyncio
import io
import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from millstream.connectors.stdin import StdinConfig, StdinSource
from millstream.core import ConnectorContext, ConnectorError
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
    """The values the source reads from ``data`` written to a pipe that is its stdin."""
    reader, writer = os.pipe()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(os.fdopen(reader, "rb")))

    def write() -> None:
        with os.fdopen(writer, "wb") as out:
            out.write(data)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        return _read_all(batch_size)
    finally:
        thread.join()
        sys.stdin.close()


def _read_all(batch_size: int) -> list[Any]:
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


def test_a_stdin_without_a_file_descriptor_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"x\n")))
    source = StdinSource(StdinConfig(), ConnectorContext("p", "in"))
    with pytest.raises(ConnectorError) as raised:
        asyncio.run(source.open(None))
    assert str(raised.value) == (
        "stdin 'in': standard input has no file descriptor to read (it is not a file, a pipe "
        "or a terminal)"
    )


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


MILLSTREAM = Path(sys.executable).parent / "millstream"

LINES_TO_STDOUT = """\
pipeline: lines
topics: {lines: {}}
sources:
  input: {connector: stdin, to: lines}
sinks:
  out: {connector: stdout, from: lines}
"""


def test_sigterm_while_waiting_for_input_exits_cleanly(tmp_path: Path) -> None:
    """The input stays open and idle, the reader waiting on it: SIGTERM stops the run, and
    the process exits 0 (not aborted at exit by a reader holding stdin's lock)."""
    (tmp_path / "p.yaml").write_text(LINES_TO_STDOUT)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MILLSTREAM_")}
    errors = (tmp_path / "stderr").open("w+b")
    process = subprocess.Popen(
        [MILLSTREAM, "run", "p.yaml", "--quiet"],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=errors,
    )
    assert process.stdin is not None and process.stdout is not None
    try:
        process.stdin.write(b'{"a": 1}\n')
        process.stdin.flush()
        ready, _, _ = select.select([process.stdout], [], [], 30)
        assert ready, "the first line never came through"
        assert process.stdout.readline() == b'{"a":1}\n'
        time.sleep(0.5)  # the reader is waiting for the next line
        process.send_signal(signal.SIGTERM)
        status = process.wait(timeout=15)  # stdin still open: no end of input to help
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdin.close()
        process.stdout.close()
    errors.seek(0)
    err = errors.read().decode()
    errors.close()
    assert status == 0, err
    assert "Fatal Python error" not in err
