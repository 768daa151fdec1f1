"""The ``jsonlines`` sink: each event's value as a line of JSON, appended to a file."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any, ClassVar

from pydantic import Field

from millstream.core import ConfigError, ConnectorConfig, ConnectorContext, Event, Sink


class JsonLinesConfig(ConnectorConfig):
    path: Path = Field(
        description="the file to append to (relative: to the pipeline file's folder); "
        "its folder must exist"
    )
    fsync: bool = Field(
        True, description="fsync the file on each flush, so flushed lines survive a power cut"
    )


class JsonLinesSink(Sink):
    """Appends each event's value to a file as one line of JSON; durable on flush.

    ``write`` only encodes and keeps the lines; ``flush`` appends them, flushes and (with
    ``fsync``, the default) fsyncs the file, in a thread, so the event loop never waits on
    the disk. Lines written but not flushed when the sink is closed are dropped: the runtime
    writes them again after a restart. The file is appended to, never truncated.
    """

    name = "jsonlines"
    Config: ClassVar[type[ConnectorConfig]] = JsonLinesConfig

    def __init__(self, config: JsonLinesConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: JsonLinesConfig = config
        self.path = context.resolve(config.path)
        self._file: IO[bytes] | None = None
        self._pending: list[bytes] = []

    async def open(self) -> None:
        if not self.path.parent.is_dir():
            raise ConfigError(
                f"the folder of {str(self.path)!r} does not exist", path="config.path"
            )
        self._file = await asyncio.to_thread(self.path.open, "ab")

    async def write(self, events: Sequence[Event]) -> None:
        for event in events:
            line = json.dumps(event.value, ensure_ascii=False, separators=(",", ":"), default=_text)
            self._pending.append(line.encode() + b"\n")

    async def flush(self) -> None:
        if self._file is None or not self._pending:
            return
        data, self._pending = b"".join(self._pending), []
        await asyncio.to_thread(_append, self._file, data, self.config.fsync)

    async def close(self) -> None:
        self._pending = []
        if self._file is not None:
            self._file.close()
            self._file = None


def _append(file: IO[bytes], data: bytes, fsync: bool) -> None:
    file.write(data)
    file.flush()
    if fsync:
        os.fsync(file.fileno())


def _text(value: Any) -> Any:
    """What JSON cannot hold as it is: bytes as text, anything else as its str()."""
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return str(value)
