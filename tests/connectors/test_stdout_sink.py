"""The stdout sink: one line per event, the value in its topic's codec or a JSON envelope."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from millstream.connectors.stdout import StdoutConfig, StdoutSink
from millstream.core import ConnectorContext, Event
from millstream.core.codecs import BytesCodec, JsonCodec, TextCodec
from millstream.core.testing import SinkConformance


class TestStdoutConformance(SinkConformance):
    sink = StdoutSink

    def settings(self) -> dict[str, Any]:
        self.out = self.tmp_path / "stdout.txt"
        stream = io.TextIOWrapper(self.out.open("ab"))
        self.monkeypatch.setattr(sys, "stdout", stream)
        return {}

    def read_back(self) -> list[Any]:
        return [json.loads(line) for line in self.out.read_text().splitlines()]

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        return [({"format": "xml"}, "format")]


class TestStdoutEnvelopeConformance(TestStdoutConformance):
    def settings(self) -> dict[str, Any]:
        return {**super().settings(), "format": "envelope"}

    def landed(self, event: Event) -> Any:
        return {
            "topic": event.topic,
            "partition": event.partition,
            "offset": event.offset,
            "timestamp": event.timestamp,
            "key": event.key.decode() if event.key else None,
            "headers": [{"key": k, "value": v.decode()} for k, v in event.headers],
            "value": event.value,
        }


def written(
    events: Sequence[Event],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    *,
    codecs: dict[str, Any] | None = None,
    **settings: Any,
) -> bytes:
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(out.open("wb")))

    async def run() -> None:
        context = ConnectorContext("p", "console", codecs=codecs or {})
        sink = StdoutSink(StdoutConfig(**settings), context)
        await sink.open()
        await sink.write(events)
        await sink.flush()
        assert out.read_bytes().count(b"\n") == len(events)  # there once flush returns
        await sink.close()

    asyncio.run(run())
    return out.read_bytes()


def test_values_are_written_in_their_topics_codec(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = [
        Event({"temp": 21.5, "tags": ["a"]}, topic="readings"),
        Event("plain text", topic="logs"),
        Event(b"raw \xff", topic="blobs"),
        Event({"n": 1}, topic=None),  # no topic: JSON
    ]
    codecs = {"readings": JsonCodec(), "logs": TextCodec(), "blobs": BytesCodec()}
    assert written(events, tmp_path, monkeypatch, codecs=codecs) == (
        b'{"temp":21.5,"tags":["a"]}\nplain text\nraw \xff\n{"n":1}\n'
    )


def test_the_envelope_has_where_the_event_came_from(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    event = Event(
        {"temp": 30},
        key=b"\xffkey",
        headers=(("origin", b"lab"), ("blob", b"\x00\xff")),
        timestamp=1_700_000_000_000,
        topic="hot",
        partition=2,
        offset=41,
    )
    [line] = written([event], tmp_path, monkeypatch, format="envelope").splitlines()
    assert json.loads(line) == {
        "topic": "hot",
        "partition": 2,
        "offset": 41,
        "timestamp": 1_700_000_000_000,
        "key": "/2tleQ==",
        "key_encoding": "base64",
        "value": {"temp": 30},
        "headers": [
            {"key": "origin", "value": "lab"},
            {"key": "blob", "value": "AP8=", "value_encoding": "base64"},
        ],
    }


def test_many_events_are_written_in_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = [Event({"n": n, "pad": "x" * 100}) for n in range(20_000)]
    lines = written(events, tmp_path, monkeypatch).splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(20_000))
