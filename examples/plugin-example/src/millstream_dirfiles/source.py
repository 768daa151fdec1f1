"""The ``dirlines`` source: the lines of the files in a folder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from millstream.core import (
    ConfigError,
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    Source,
    SourceBatch,
)


class DirLinesConfig(ConnectorConfig):
    path: Path = Field(description="the folder to read (relative: to the pipeline file's folder)")
    pattern: str = Field("*", description="which files to read: a glob such as *.log")
    follow: bool = Field(
        False, description="keep watching for more lines and new files instead of ending"
    )
    poll_interval: float = Field(
        0.5, gt=0, description="seconds between looks for more, when following"
    )
    batch_size: int = Field(500, ge=1, le=100_000, description="the most lines in one batch")


class DirLinesSource(Source):
    """The lines of the files in a folder, file by file in name order; resumable.

    Each line is an event whose value is the line's bytes without its ``\\n`` and whose
    ``file`` header names the file. Files are expected to be written the way logs are: new
    files sort after old ones, and a file only grows. The position, ``{"file": NAME,
    "offset": N}``, says that every file before NAME and the first N bytes of NAME were
    handed out; a restart continues just after. Without ``follow`` the source ends once it
    has read every file; with it, it waits for more (an unfinished last line waits for its
    ``\\n``), and files that sort before the one it is reading are not looked at again.
    """

    name = "dirlines"
    Config: ClassVar[type[ConnectorConfig]] = DirLinesConfig
    resumable = True

    def __init__(self, config: DirLinesConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: DirLinesConfig = config
        self.folder = context.resolve(config.path)
        self._file: str | None = None  # the file being read; None: none yet
        self._offset = 0

    @property
    def bounded(self) -> bool:
        return not self.config.follow

    async def open(self, position: Any) -> None:
        if not self.folder.is_dir():
            raise ConfigError(f"{str(self.folder)!r} is not a folder", path="config.path")
        if position is None:
            return
        if not (
            isinstance(position, dict)
            and isinstance(position.get("file"), str)
            and type(position.get("offset")) is int
            and position["offset"] >= 0
        ):
            raise ConnectorError(f"dirlines: {position!r} is not a position of this source")
        self._file, self._offset = position["file"], position["offset"]

    async def read(self) -> SourceBatch | None:
        while True:
            # file reads run in a thread, so a slow disk never holds up the event loop; the
            # new place is taken only once they return, so a cancelled read loses nothing
            events, file, offset = await asyncio.to_thread(self._next_lines)
            if events:
                self._file, self._offset = file, offset
                return SourceBatch(events, {"file": file, "offset": offset})
            if not self.config.follow:
                return None
            await asyncio.sleep(self.config.poll_interval)

    def _next_lines(self) -> tuple[list[Event], str | None, int]:
        """Up to ``batch_size`` lines after the current place, and the place after them."""
        names = sorted(p.name for p in self.folder.glob(self.config.pattern) if p.is_file())
        for name in names:
            if self._file is not None and name < self._file:
                continue
            offset = self._offset if name == self._file else 0
            lines = self._lines_of(self.folder / name, offset)
            if lines:
                header = (("file", name.encode()),)
                events = [Event(line.removesuffix(b"\n"), headers=header) for line in lines]
                return events, name, offset + sum(len(line) for line in lines)
        return [], self._file, self._offset

    def _lines_of(self, path: Path, offset: int) -> list[bytes]:
        lines: list[bytes] = []
        with path.open("rb") as file:
            file.seek(offset)
            while len(lines) < self.config.batch_size:
                line = file.readline()
                if not line or (not line.endswith(b"\n") and self.config.follow):
                    break  # the end, or a line still being written
                lines.append(line)
        return lines
