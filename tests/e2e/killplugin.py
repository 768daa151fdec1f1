"""A local plugin for the kill tests: a counting source and two durable sinks.

- ``counter``: emits ``{"id": i}`` for i in 0..count-1, resumable (position = next id).
- ``jsonl``: appends each event as a JSON line with its source place, fsync on flush; a plain
  at-least-once sink (a replay after a crash appends again).
- ``keyed``: upserts each event into SQLite by its id, committed on flush: idempotent.
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

from millstream.core import ConnectorConfig, Event, Sink, Source, SourceBatch, hookimpl


class CounterSource(Source):
    name = "counter"
    resumable = True

    class Config(ConnectorConfig):
        count: int
        batch: int = 50
        pause_ms: float = 1.0

    async def open(self, position: Any) -> None:
        self.next = int(position or 0)

    @property
    def bounded(self) -> bool:
        return True

    async def read(self) -> SourceBatch | None:
        if self.next >= self.config.count:
            return None
        await asyncio.sleep(self.config.pause_ms / 1000)
        end = min(self.config.count, self.next + self.config.batch)
        events = [Event({"id": i}) for i in range(self.next, end)]
        self.next = end
        return SourceBatch(events, end)


class JsonLinesSink(Sink):
    name = "jsonl"

    class Config(ConnectorConfig):
        path: Path

    async def open(self) -> None:
        self.file = open(self.config.path, "ab")  # noqa: SIM115 - held for the sink's life

    async def write(self, events: Sequence[Event]) -> None:
        self.file.write(b"".join(orjson.dumps(e.value) + b"\n" for e in events))

    async def flush(self) -> None:
        self.file.flush()
        os.fsync(self.file.fileno())

    async def close(self) -> None:
        self.file.close()


class KeyedSink(Sink):
    name = "keyed"
    idempotent = True

    class Config(ConnectorConfig):
        path: Path

    async def open(self) -> None:
        self.db = sqlite3.connect(self.config.path)
        self.db.execute("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, body TEXT)")
        self.db.commit()

    async def write(self, events: Sequence[Event]) -> None:
        self.db.executemany(
            "INSERT OR REPLACE INTO events (id, body) VALUES (?, ?)",
            [(e.value["id"], orjson.dumps(e.value).decode()) for e in events],
        )

    async def flush(self) -> None:
        self.db.commit()

    async def close(self) -> None:
        self.db.close()


@hookimpl
def register_connectors() -> list[type[Source] | type[Sink]]:
    return [CounterSource, JsonLinesSink, KeyedSink]
