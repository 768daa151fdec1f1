"""millstream-dirfiles against millstream's connector conformance kit, and what is its own."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from millstream_dirfiles.sink import JsonLinesSink
from millstream_dirfiles.source import DirLinesConfig, DirLinesSource

from millstream.core import ConnectorContext
from millstream.core.testing import SinkConformance, SourceConformance


class TestDirLines(SourceConformance):
    source = DirLinesSource

    def prepare(self, count: int) -> dict[str, Any]:
        folder = self.tmp_path / "in"
        folder.mkdir()
        for part, numbers in enumerate((range(0, count // 3), range(count // 3, count))):
            lines = "".join(json.dumps({"n": n}) + "\n" for n in numbers)
            (folder / f"part-{part}.jsonl").write_text(lines)
        (folder / "notes.txt").write_text("not matched by the pattern\n")
        return {"path": str(folder), "pattern": "*.jsonl", "batch_size": 7}

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        return [
            ({"path": str(self.tmp_path / "missing")}, "path"),
            ({"path": str(self.tmp_path), "batch_size": 0}, "batch_size"),
        ]


class TestDirLinesFollowing(TestDirLines):
    def prepare(self, count: int) -> dict[str, Any]:
        return {**super().prepare(count), "follow": True, "poll_interval": 0.05}


class TestJsonLines(SinkConformance):
    sink = JsonLinesSink

    def settings(self) -> dict[str, Any]:
        return {"path": str(self.tmp_path / "out.jsonl")}

    def read_back(self) -> list[Any]:
        path = self.tmp_path / "out.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()]

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        return [({"path": str(self.tmp_path / "no" / "such" / "out.jsonl")}, "path")]


def test_following_sees_a_line_once_it_is_finished_and_new_files(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_bytes(b"one\ntw")

    async def run() -> list[bytes]:
        config = DirLinesConfig(path=tmp_path, follow=True, poll_interval=0.02)
        source = DirLinesSource(config, ConnectorContext("p", "logs"))
        await source.open(None)
        got = [e.value for e in (await source.read()).events]
        with (tmp_path / "a.log").open("ab") as log:
            log.write(b"o\n")
        (tmp_path / "b.log").write_bytes(b"three\n")
        while len(got) < 3:
            got.extend(e.value for e in (await asyncio.wait_for(source.read(), 2)).events)
        await source.close()
        return got

    assert asyncio.run(run()) == [b"one", b"two", b"three"]
