"""The file sink on real folders: names from a template, rolling by size and age, files that
appear only once complete, fsync on flush, csv headers, leftovers of a crash finished."""

from __future__ import annotations

import asyncio
import csv
import os
import threading
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from millstream.connectors.file import FileSink, FileSinkConfig
from millstream.core import ConnectorContext, Event, EventsRejected
from millstream.core.testing import SinkConformance

DAY = 1_717_200_000_000  # 2024-06-01T00:00:00Z, in ms


class TestFileSinkConformance(SinkConformance):
    sink = FileSink

    def settings(self) -> dict[str, Any]:
        return {"path": "out/{topic}/part-{n}.jsonl", "max_bytes": 1000}

    def read_back(self) -> list[Any]:
        """Every line of every file, finished or still being written (flushed lines are
        durable in the temporary file, and the file keeps them when it is renamed)."""
        return [
            orjson.loads(line)
            for path in sorted((self.tmp_path / "out").rglob("*"))
            if path.is_file()
            for line in path.read_bytes().splitlines()
        ]

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        return [
            ({"path": "out/part-{n}{n}.jsonl"}, "path"),
            ({"path": "out/"}, "path"),
            ({"path": "out/{nope}/part-{n}.jsonl"}, "path"),
            ({"path": "out/{n}/part.jsonl"}, "path"),
            ({"path": "out/part-{n}.jsonl", "max_age": "0s"}, "max_age"),
            ({"path": "out/part-{n}.jsonl", "max_age": 5}, "max_age"),
            ({"path": "out/part-{n}.jsonl", "format": "parquet"}, "format"),
            ({"path": "out/part-{n}.jsonl", "max_bytes": 0}, "max_bytes"),
        ]


# -- helpers ---------------------------------------------------------------------------------


def _sink(tmp_path: Path, **settings: Any) -> FileSink:
    config = FileSinkConfig.model_validate(settings)
    return FileSink(config, ConnectorContext("p", "archive", base_dir=tmp_path))


def _events(count: int, start: int = 0, topic: str = "orders", **extra: Any) -> list[Event]:
    return [
        Event(
            {"n": n, "name": f"item {n}", **extra},
            topic=topic,
            partition=0,
            offset=n,
            timestamp=DAY + n,
        )
        for n in range(start, start + count)
    ]


def _visible(folder: Path) -> list[str]:
    """The names a reader listing ``folder`` for data files sees."""
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _jsonl(path: Path) -> list[Any]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


# -- names and rolling -----------------------------------------------------------------------


async def test_names_come_from_the_template_and_files_roll_by_size(tmp_path: Path) -> None:
    sink = _sink(tmp_path, path="out/{topic}/{date}/{hour}/part-{n:03d}.jsonl", max_bytes=200)
    await sink.open()
    try:
        await sink.write(_events(20))
        await sink.flush()
    finally:
        await sink.close()
    folder = tmp_path / "out" / "orders" / "2024-06-01" / "00"
    names = _visible(folder)
    assert names[:3] == ["part-000.jsonl", "part-001.jsonl", "part-002.jsonl"]
    assert all(p.name.endswith(".jsonl") for p in folder.iterdir()), "a temporary file is left"
    sizes = [(folder / name).stat().st_size for name in names]
    assert max(sizes) <= 200
    lines = [v for name in names for v in _jsonl(folder / name)]
    assert [v["n"] for v in lines] == list(range(20))


async def test_a_file_name_without_n_is_numbered_before_its_extension(tmp_path: Path) -> None:
    sink = _sink(tmp_path, path="out/archive.jsonl", max_bytes=60)
    await sink.open()
    try:
        await sink.write(_events(4))
    finally:
        await sink.close()
    assert _visible(tmp_path / "out") == ["archive-0.jsonl", "archive-1.jsonl"]


async def test_numbering_goes_on_after_a_restart(tmp_path: Path) -> None:
    for start in (0, 5):
        sink = _sink(tmp_path, path="out/part-{n}.jsonl")
        await sink.open()
        try:
            await sink.write(_events(5, start))
            await sink.flush()
        finally:
            await sink.close()
    assert _visible(tmp_path / "out") == ["part-0.jsonl", "part-1.jsonl"]
    assert [v["n"] for v in _jsonl(tmp_path / "out" / "part-1.jsonl")] == list(range(5, 10))


async def test_a_file_is_closed_at_its_max_age_even_without_new_events(tmp_path: Path) -> None:
    sink = _sink(tmp_path, path="out/part-{n}.jsonl", max_age="300ms")
    await sink.open()
    try:
        await sink.write(_events(3))
        await sink.flush()
        assert _visible(tmp_path / "out") == []  # still being written
        for _ in range(250):  # up to 5 s on a busy machine
            if _visible(tmp_path / "out"):
                break
            await asyncio.sleep(0.02)
        assert _visible(tmp_path / "out") == ["part-0.jsonl"]
        assert len(_jsonl(tmp_path / "out" / "part-0.jsonl")) == 3
        await sink.write(_events(2, 3))
        await sink.flush()
    finally:
        await sink.close()
    assert _visible(tmp_path / "out") == ["part-0.jsonl", "part-1.jsonl"]


async def test_a_reader_never_sees_a_file_that_is_still_written(tmp_path: Path) -> None:
    """A thread lists the folder while the sink writes, flushes and rolls: every file it sees
    under its own name is already complete (its last line whole, its size final)."""
    out = tmp_path / "out"
    seen: dict[str, int] = {}
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if out.exists():
                for name in _visible(out):
                    data = (out / name).read_bytes()
                    assert data.endswith(b"\n"), f"{name} seen with a torn last line"
                    seen.setdefault(name, len(data))
                    assert seen[name] == len(data), f"{name} changed after it appeared"

    watcher = threading.Thread(target=watch)
    watcher.start()
    sink = _sink(tmp_path, path="out/part-{n}.jsonl", max_bytes=5000)
    await sink.open()
    try:
        for start in range(0, 3000, 100):
            await sink.write(_events(100, start))
            await sink.flush()
    finally:
        await sink.close()
        stop.set()
        watcher.join()
    names = _visible(out)
    assert len(names) > 10 and set(seen) <= set(names)
    assert sum(len(_jsonl(out / n)) for n in names) == 3000


async def test_flush_fsyncs_what_was_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    sink = _sink(tmp_path, path="out/part-{n}.jsonl")
    await sink.open()
    try:
        await sink.write(_events(3))
        assert not any(p.endswith(".tmp") for p in synced)
        await sink.flush()
        temp = str(tmp_path / "out" / ".part-0.jsonl.tmp")
        assert temp in synced  # the file
        assert str(tmp_path / "out") in synced  # and its folder, which got a new name
        assert len(_jsonl(Path(temp))) == 3
        synced.clear()
        await sink.flush()
        assert temp not in synced  # nothing new: no second fsync
    finally:
        await sink.close()


async def test_csv_files_each_begin_with_one_header_row(tmp_path: Path) -> None:
    sink = _sink(tmp_path, path="out/part-{n}.csv", format="csv", max_bytes=120)
    await sink.open()
    try:
        await sink.write(_events(10, tags=["a", "b"], note=None))
        await sink.flush()
    finally:
        await sink.close()
    files = sorted((tmp_path / "out").glob("part-*.csv"), key=lambda p: int(p.stem[5:]))
    assert len(files) > 2
    rows = []
    for path in files:
        content = list(csv.reader(path.read_text().splitlines()))
        assert content[0] == ["n", "name", "tags", "note"]
        assert ["n", "name", "tags", "note"] not in content[1:]
        rows += content[1:]
    assert rows[0] == ["0", "item 0", '["a","b"]', ""]
    assert [r[0] for r in rows] == [str(n) for n in range(10)]


async def test_a_value_csv_cannot_hold_is_refused_and_the_rest_written(tmp_path: Path) -> None:
    sink = _sink(tmp_path, path="out/part-{n}.csv", format="csv", columns=["n"])
    await sink.open()
    events = _events(2)
    odd = Event([1, 2], topic="orders", partition=0, offset=9)
    try:
        with pytest.raises(EventsRejected) as caught:
            await sink.write([events[0], odd, events[1]])
        await sink.flush()
    finally:
        await sink.close()
    assert [r.event for r in caught.value.rejections] == [odd]
    assert "csv needs an object value" in caught.value.rejections[0].reason
    assert (tmp_path / "out" / "part-0.csv").read_text() == "n\n0\n1\n"


async def test_csv_with_given_columns_and_delimiter(tmp_path: Path) -> None:
    sink = _sink(tmp_path, path="part-{n}.csv", format="csv", columns=["name", "n"], delimiter=";")
    await sink.open()
    try:
        await sink.write(_events(2, extra="ignored"))
    finally:
        await sink.close()
    assert (tmp_path / "part-0.csv").read_text() == "name;n\nitem 0;0\nitem 1;1\n"


async def test_lines_format_writes_text_as_it_is(tmp_path: Path) -> None:
    sink = _sink(tmp_path, path="part-{n}.log", format="lines")
    await sink.open()
    try:
        await sink.write([Event("plain text"), Event(b"raw bytes"), Event({"a": 1})])
    finally:
        await sink.close()
    assert (tmp_path / "part-0.log").read_text() == 'plain text\nraw bytes\n{"a":1}\n'


async def test_leftovers_of_a_crash_are_finished_on_open(tmp_path: Path) -> None:
    out = tmp_path / "out" / "orders"
    out.mkdir(parents=True)
    (out / ".part-4.jsonl.tmp").write_bytes(b'{"n": 1}\n{"n": 2}\n{"n": 3, "tor')
    (out / ".part-5.jsonl.tmp").write_bytes(b"")
    sink = _sink(tmp_path, path="out/{topic}/part-{n}.jsonl")
    await sink.open()
    try:
        assert sorted(p.name for p in out.iterdir()) == ["part-4.jsonl"]
        assert _jsonl(out / "part-4.jsonl") == [{"n": 1}, {"n": 2}]
        await sink.write(_events(1))
        await sink.flush()
    finally:
        await sink.close()
    assert _visible(out) == ["part-4.jsonl", "part-5.jsonl"]


async def test_a_file_another_live_writer_holds_is_left_alone(tmp_path: Path) -> None:
    first = _sink(tmp_path, path="out/part-{n}.jsonl")
    second = _sink(tmp_path, path="out/part-{n}.jsonl")
    await first.open()
    try:
        await first.write(_events(2))
        await first.flush()
        await second.open()  # must not finish the file `first` is writing
        try:
            await second.write(_events(2, 2))
            await second.flush()
        finally:
            await second.close()
        await first.write(_events(2, 4))
    finally:
        await first.close()
    out = tmp_path / "out"
    assert _visible(out) == ["part-0.jsonl", "part-1.jsonl"]
    assert [v["n"] for v in _jsonl(out / "part-0.jsonl")] == [0, 1, 4, 5]
    assert [v["n"] for v in _jsonl(out / "part-1.jsonl")] == [2, 3]


def test_template_mistakes_are_named() -> None:
    with pytest.raises(ValidationError, match=r"holds \{n\} 2 times"):
        FileSinkConfig(path="out/{topic}/part-{n}-{n}.jsonl")
    with pytest.raises(ValidationError, match=r"unknown placeholder \{day\}"):
        FileSinkConfig(path="out/{day}/part-{n}.jsonl")
    with pytest.raises(ValidationError, match="has no unit"):
        FileSinkConfig(path="part-{n}.jsonl", max_age=10)
