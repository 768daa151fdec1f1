"""The file source on real files: once and tail modes, rotation, truncation, new files,
restarts from a stored position, bad input handed back with its file and line."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from millstream.connectors.file import FileSource, FileSourceConfig
from millstream.core import ConnectorContext, ConnectorError, SourceBatch
from millstream.core.testing import SourceConformance

WAIT = 5.0  # seconds a followed change may take to be noticed (it takes milliseconds)


class TestFileSourceOnceConformance(SourceConformance):
    source = FileSource

    def prepare(self, count: int) -> dict[str, Any]:
        folder = self.tmp_path / "in"
        folder.mkdir(exist_ok=True)
        half = count // 2
        (folder / "a.jsonl").write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(half)))
        (folder / "b.jsonl").write_bytes(b"".join(b'{"n": %d}\n' % n for n in range(half, count)))
        return {"path": "in/*.jsonl", "mode": "once", "format": "jsonl", "batch_size": 7}

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        base = {"path": "in/*.log"}
        return [
            ({**base, "mode": "forever"}, "mode"),
            ({**base, "encoding": "utf-16"}, "encoding"),
            ({**base, "encoding": "klingon"}, "encoding"),
            ({**base, "columns": ["a"]}, "columns"),
            ({**base, "format": "csv", "delimiter": ";;"}, "delimiter"),
            ({**base, "max_line_bytes": 0}, "max_line_bytes"),
            ({"path": "no/such/folder/*.log"}, "no/such/folder"),
        ]


class TestFileSourceTailConformance(TestFileSourceOnceConformance):
    def prepare(self, count: int) -> dict[str, Any]:
        return {**super().prepare(count), "mode": "tail"}


# -- helpers ---------------------------------------------------------------------------------


def _source(tmp_path: Path, **settings: Any) -> FileSource:
    config = FileSourceConfig.model_validate(settings)
    return FileSource(config, ConnectorContext("p", "logs", base_dir=tmp_path))


async def _next(source: FileSource, timeout: float = WAIT) -> SourceBatch | None:
    return await asyncio.wait_for(source.read(), timeout)


async def _values(source: FileSource, count: int) -> tuple[list[Any], Any]:
    """The values of the next ``count`` events, and the position after them."""
    got: list[Any] = []
    position = None
    while len(got) < count:
        batch = await _next(source)
        assert batch is not None, f"the source ended after {len(got)} of {count}"
        got += [e.value for e in batch.events]
        position = orjson.loads(orjson.dumps(batch.position))
    return got, position


async def _nothing_more(source: FileSource, seconds: float = 0.3) -> None:
    reading = asyncio.ensure_future(source.read())
    done, _ = await asyncio.wait([reading], timeout=seconds)
    if done:
        batch = reading.result()
        assert batch is None or not batch.events, f"unexpected: {batch}"
    else:
        reading.cancel()
        await asyncio.wait([reading])


def _append(path: Path, text: str) -> None:
    with path.open("a") as f:
        f.write(text)


def _lines(start: int, stop: int) -> str:
    return "".join(f"line {n}\n" for n in range(start, stop))


# -- once ----------------------------------------------------------------------------------


async def test_once_reads_every_matching_file_to_its_end_then_ends(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text("a1\na2\r\n")
    (tmp_path / "b.log").write_text("b1\nb2 without newline")
    (tmp_path / "c.txt").write_text("not matched\n")
    source = _source(tmp_path, path="*.log", mode="once")
    assert source.bounded
    await source.open(None)
    try:
        got = []
        while (batch := await _next(source)) is not None:
            got += [(e.header("file"), e.value) for e in batch.events]
    finally:
        await source.close()
    a, b = str(tmp_path / "a.log").encode(), str(tmp_path / "b.log").encode()
    assert got == [(a, "a1"), (a, "a2"), (b, "b1"), (b, "b2 without newline")]


async def test_lines_come_in_batches_of_at_most_batch_size(tmp_path: Path) -> None:
    (tmp_path / "big.log").write_text(_lines(0, 2500))
    source = _source(tmp_path, path="big.log", mode="once", batch_size=1000, headers=["line"])
    await source.open(None)
    try:
        sizes, last = [], None
        while (batch := await _next(source)) is not None:
            sizes.append(len(batch.events))
            last = batch.events[-1]
    finally:
        await source.close()
    assert sizes == [1000, 1000, 500]
    assert last is not None and last.value == "line 2499" and last.header("line") == b"2500"


async def test_csv_rows_with_a_header_or_given_columns(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_bytes(b'\xef\xbb\xbfid;name\n1;ann\n2;"b;ob"\n')  # a BOM first
    (tmp_path / "c.csv").write_text("3,cy\n")
    with_header = _source(tmp_path, path="h.csv", mode="once", format="csv", delimiter=";")
    given = _source(tmp_path, path="c.csv", mode="once", format="csv", columns=["id", "name"])
    got = []
    for source in (with_header, given):
        await source.open(None)
        try:
            while (batch := await _next(source)) is not None:
                got += [e.value for e in batch.events]
        finally:
            await source.close()
    assert got == [
        {"id": "1", "name": "ann"},
        {"id": "2", "name": "b;ob"},
        {"id": "3", "name": "cy"},
    ]


# -- bad input -----------------------------------------------------------------------------


async def _read_all(source: FileSource) -> tuple[list[Any], list[str], list[bytes]]:
    values, reasons, raws = [], [], []
    await source.open(None)
    try:
        while (batch := await _next(source)) is not None:
            values += [e.value for e in batch.events]
            reasons += [r.reason for r in batch.rejected]
            raws += [r.event.value for r in batch.rejected]
    finally:
        await source.close()
    return values, reasons, raws


async def test_each_kind_of_bad_line_is_rejected_with_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"n": 1}\n{"n": 2\n\n{"n": "\xff"}\n' + b'{"n": 4}\n')
    values, reasons, raws = await _read_all(
        _source(tmp_path, path="in.jsonl", mode="once", format="jsonl")
    )
    assert values == [{"n": 1}, {"n": 4}]
    assert len(reasons) == 2
    assert reasons[0].startswith(f"{path}:2: not valid JSON")
    assert reasons[1].startswith(f"{path}:4: not valid utf-8")
    assert raws == [b'{"n": 2', b'{"n": "\xff"}']


async def test_a_csv_row_with_the_wrong_number_of_fields_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "in.csv"
    path.write_text("a,b\n1,2\n3\n4,5,6\n7,8\n")
    values, reasons, _ = await _read_all(
        _source(tmp_path, path="in.csv", mode="once", format="csv")
    )
    assert values == [{"a": "1", "b": "2"}, {"a": "7", "b": "8"}]
    assert reasons == [
        f"{path}:3: 1 fields where the header has 2 columns",
        f"{path}:4: 3 fields where the header has 2 columns",
    ]


async def test_undecodable_text_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "in.log"
    path.write_bytes(b"fine\nbad \xc3\x28 bytes\nfine too\n")
    values, reasons, raws = await _read_all(_source(tmp_path, path="in.log", mode="once"))
    assert values == ["fine", "fine too"]
    assert reasons[0].startswith(f"{path}:2: not valid utf-8")
    assert raws == [b"bad \xc3\x28 bytes"]
    latin = await _read_all(_source(tmp_path, path="in.log", mode="once", encoding="latin-1"))
    assert latin[0][1] == "bad Ã( bytes" and not latin[1]


async def test_an_over_long_line_is_rejected_and_its_rest_skipped(tmp_path: Path) -> None:
    path = tmp_path / "in.log"
    huge = b"x" * 3_000_000  # longer than a read chunk: its end comes in later reads
    path.write_bytes(b"short\n" + b"y" * 150 + b"\n" + huge + b"\nafter\n")
    values, reasons, raws = await _read_all(
        _source(tmp_path, path="in.log", mode="once", max_line_bytes=100)
    )
    assert values == ["short", "after"]
    assert [r.split(": line longer")[0] for r in reasons] == [f"{path}:2", f"{path}:3"]
    assert "max_line_bytes" in reasons[0]
    assert raws[0] == b"y" * 150 and raws[1].startswith(b"xxx") and len(raws[1]) <= 64 * 1024


async def test_config_mistakes_are_named() -> None:
    with pytest.raises(ValidationError, match="columns are for format: csv"):
        FileSourceConfig(path="x", columns=["a"])
    with pytest.raises(ValidationError, match="newline"):
        FileSourceConfig(path="x", encoding="utf-16")
    assert FileSourceConfig(path="x", format="csv").columns is None  # the header row names them


# -- tail ----------------------------------------------------------------------------------


async def test_tail_follows_appends_and_waits_for_a_line_to_end(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("first\n")
    source = _source(tmp_path, path="app.log")
    assert not source.bounded
    await source.open(None)
    try:
        assert (await _values(source, 1))[0] == ["first"]
        _append(log, "second\nthird, half")
        assert (await _values(source, 1))[0] == ["second"]
        await _nothing_more(source)  # "third, half" has no newline yet
        _append(log, " and the rest\n")
        assert (await _values(source, 1))[0] == ["third, half and the rest"]
    finally:
        await source.close()


async def test_tail_start_at_end_reads_only_what_comes_after(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("old 1\nold 2\nhalf")
    source = _source(tmp_path, path="app.log", start_at="end", headers=["file", "line"])
    await source.open(None)
    try:
        await _nothing_more(source)
        _append(log, " line\nnew\n")
        batch = await _next(source)
        assert batch is not None
        assert [(e.value, e.header("line")) for e in batch.events] == [
            ("half line", b"3"),
            ("new", b"4"),
        ]
    finally:
        await source.close()


async def test_a_file_created_later_that_matches_the_glob_is_read(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    source = _source(tmp_path, path="logs/*.log")
    await source.open(None)
    try:
        await _nothing_more(source)
        (logs / "other.txt").write_text("not matched\n")
        (logs / "later.log").write_text("hello\n")
        batch = await _next(source)
        assert batch is not None
        assert [e.value for e in batch.events] == ["hello"]
        assert batch.events[0].header("file") == str(logs / "later.log").encode()
    finally:
        await source.close()


async def test_files_in_folders_that_appear_later_match_a_folder_glob(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    source = _source(tmp_path, path="logs/*/app.log")
    await source.open(None)
    try:
        (tmp_path / "logs" / "web").mkdir()
        (tmp_path / "logs" / "web" / "app.log").write_text("from web\n")
        assert (await _values(source, 1))[0] == ["from web"]
    finally:
        await source.close()


async def test_rename_rotation_mid_stream_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """A writer appends numbered lines and rotates (app.log → app.log.1 → …, then a new
    app.log) every 500 lines while the source reads, then writes to the new file at once:
    every line comes once, in order.

    After each rotation the writer waits until the source has read the first line of the new
    file: a file created and rotated away again before the watch reported it (within
    milliseconds) is not followed, as with tail -F."""
    logs = tmp_path / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_text("")
    total, every = 5000, 500
    got: list[Any] = []

    def write() -> None:
        f = log.open("a")
        for n in range(total):
            f.write(f"line {n}\n")
            if n % 50 == 0:
                f.flush()
            if n % every == 0 and n:  # the first line of a new file
                deadline = time.monotonic() + WAIT
                while len(got) <= n and time.monotonic() < deadline:
                    time.sleep(0.001)
            if n % every == every - 1:
                f.close()
                for k in range(9, 0, -1):  # app.log.8 → app.log.9, …, app.log → app.log.1
                    older = logs / f"app.log.{k}"
                    if older.exists():
                        older.rename(logs / f"app.log.{k + 1}")
                log.rename(logs / "app.log.1")
                f = log.open("a")
        f.close()

    source = _source(tmp_path, path="logs/app.log", batch_size=300)
    await source.open(None)
    writer = threading.Thread(target=write)
    try:
        writer.start()
        while len(got) < total:
            batch = await _next(source)
            assert batch is not None
            got += [e.value for e in batch.events]
        await _nothing_more(source)
    finally:
        writer.join()
        await source.close()
    assert got == [f"line {n}" for n in range(total)]


async def test_lines_a_writer_adds_after_rotation_are_read_until_rotate_wait(
    tmp_path: Path,
) -> None:
    """A writer that reopens its log late (logrotate renames, then signals the program) still
    writes a few lines to the renamed file: they are read, and so is its last line without a
    newline once ``rotate_wait`` has passed; then the renamed file is let go."""
    log = tmp_path / "app.log"
    log.write_text("old 1\n")
    source = _source(tmp_path, path="app.log", rotate_wait="400ms")
    await source.open(None)
    try:
        assert (await _values(source, 1))[0] == ["old 1"]
        with log.open("a") as old:
            log.rename(tmp_path / "app.log.1")
            log.write_text("new 1\n")
            assert (await _values(source, 1))[0] == ["new 1"]
            old.write("old 2, late\nold 3, cut")
        got, _ = await _values(source, 2)
        assert got == ["old 2, late", "old 3, cut"]
        _append(log, "new 2\n")
        got, position = await _values(source, 1)
        assert got == ["new 2"]
        assert [f["path"] for f in position["files"]] == [str(log)]  # the old one let go
    finally:
        await source.close()


async def test_copy_truncate_starts_the_file_again_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(_lines(0, 10))
    source = _source(tmp_path, path="app.log")
    await source.open(None)
    try:
        assert (await _values(source, 10))[0] == [f"line {n}" for n in range(10)]
        shutil.copy(log, tmp_path / "app.log.1")
        with log.open("r+") as f:
            f.truncate(0)
        _append(log, "after truncation\n")
        assert (await _values(source, 1))[0] == ["after truncation"]
    finally:
        await source.close()


# -- restarts ------------------------------------------------------------------------------


async def test_a_restart_resumes_after_the_acknowledged_line(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(_lines(0, 100))
    first = _source(tmp_path, path="app.log", batch_size=30)
    await first.open(None)
    try:
        _, position = await _values(first, 60)  # acknowledged up to line 60
        await _next(first)  # read, never acknowledged
    finally:
        await first.close()
    assert position["files"][0]["offset"] == len(_lines(0, 60))
    _append(log, _lines(100, 120))
    again = _source(tmp_path, path="app.log", batch_size=30)
    await again.open(position)
    try:
        got, _ = await _values(again, 60)
    finally:
        await again.close()
    assert got == [f"line {n}" for n in range(60, 120)]


async def test_a_file_rotated_while_down_is_finished_before_the_new_one(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(_lines(0, 10))
    first = _source(tmp_path, path="app.log", batch_size=4)
    await first.open(None)
    try:
        _, position = await _values(first, 4)
    finally:
        await first.close()
    _append(log, _lines(10, 12))
    log.rename(tmp_path / "app.log.1")
    log.write_text(_lines(12, 15))
    again = _source(tmp_path, path="app.log", batch_size=100)
    await again.open(position)
    try:
        got, _ = await _values(again, 11)
        await _nothing_more(again)
    finally:
        await again.close()
    assert got == [f"line {n}" for n in range(4, 15)]


async def test_a_file_truncated_while_down_is_read_from_its_start(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text(_lines(0, 10))
    first = _source(tmp_path, path="app.log", mode="once")
    await first.open(None)
    try:
        _, position = await _values(first, 10)
    finally:
        await first.close()
    log.write_text("new 1\n")  # truncated and rewritten, same inode, shorter
    again = _source(tmp_path, path="app.log", mode="once")
    await again.open(position)
    try:
        assert (await _values(again, 1))[0] == ["new 1"]
    finally:
        await again.close()


async def test_a_csv_file_resumed_mid_way_keeps_its_header(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("k,v\n" + "".join(f"{n},{n * n}\n" for n in range(10)))
    first = _source(tmp_path, path="t.csv", format="csv", batch_size=4)
    await first.open(None)
    try:
        _, position = await _values(first, 3)
    finally:
        await first.close()
    again = _source(tmp_path, path="t.csv", format="csv", batch_size=4)
    await again.open(position)
    try:
        got, _ = await _values(again, 1)
    finally:
        await again.close()
    assert got[0] == {"k": "3", "v": "9"}


async def test_an_over_long_line_cut_by_a_restart_is_still_skipped(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_bytes(b"x" * 500)  # an over-long line whose end is not written yet
    first = _source(tmp_path, path="app.log", max_line_bytes=100)
    await first.open(None)
    try:
        batch = await _next(first)
        assert batch is not None and len(batch.rejected) == 1 and not batch.events
        position = orjson.loads(orjson.dumps(batch.position))
    finally:
        await first.close()
    _append(log, "x" * 50 + "\nnext\n")
    again = _source(tmp_path, path="app.log", max_line_bytes=100)
    await again.open(position)
    try:
        assert (await _values(again, 1))[0] == ["next"]
    finally:
        await again.close()


async def test_a_missing_folder_in_tail_mode_is_a_clear_error(tmp_path: Path) -> None:
    source = _source(tmp_path, path="nowhere/*.log")
    with pytest.raises(ConnectorError, match=r"folder .*nowhere does not exist"):
        await source.open(None)
    await source.close()


def test_a_relative_path_is_resolved_against_the_pipeline_folder(tmp_path: Path) -> None:
    source = _source(tmp_path, path="logs/*.log")
    assert source.pattern == os.path.join(tmp_path, "logs", "*.log")


async def test_headers_are_chosen_and_dead_letters_always_say_file_and_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "in.jsonl").write_text('{"a": 1}\nnope\n')
    source = _source(tmp_path, path="in.jsonl", mode="once", format="jsonl", headers=[])
    await source.open(None)
    try:
        batch = await _next(source)
    finally:
        await source.close()
    assert batch is not None
    assert [(e.value, e.headers) for e in batch.events] == [({"a": 1}, ())]
    assert batch.rejected[0].event.headers == (
        ("file", str(tmp_path / "in.jsonl").encode()),
        ("line", b"2"),
    )


async def test_tail_takes_the_files_in_turn(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(_lines(0, 100))
    (tmp_path / "b.log").write_text(_lines(100, 200))
    source = _source(tmp_path, path="*.log", batch_size=30)
    await source.open(None)
    try:
        files = []
        for _ in range(4):
            batch = await _next(source)
            assert batch is not None
            files.append(Path(batch.events[0].header("file").decode()).name)
    finally:
        await source.close()
    assert files == ["a.log", "b.log", "a.log", "b.log"]  # a busy file starves no other


def _open_in(folder: Path) -> int:
    """How many descriptors of this process are open on files in ``folder``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder)):
                count += 1
    return count


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")
async def test_files_idle_at_their_end_are_closed_and_reopened_when_written(
    tmp_path: Path,
) -> None:
    """Dated log files pile up: each one idle at its end for ``idle_close`` gives its
    descriptor back; a line written to it later is still read, after the position's line."""
    logs = tmp_path / "logs"
    logs.mkdir()
    for day in range(1, 21):
        (logs / f"day-{day:02}.log").write_text(f"day {day}\n")
    source = _source(tmp_path, path="logs/*.log", idle_close="200ms")
    await source.open(None)
    try:
        got, _ = await _values(source, 20)
        assert sorted(got) == sorted(f"day {day}" for day in range(1, 21))
        await _nothing_more(source, 0.6)  # idle past idle_close
        assert _open_in(logs) == 0
        _append(logs / "day-03.log", "day 3 again\n")
        got, position = await _values(source, 1)
        assert got == ["day 3 again"]
        assert len(position["files"]) == 20  # every file keeps its place
    finally:
        await source.close()


async def test_a_write_marks_only_the_file_it_names_to_be_read_again(tmp_path: Path) -> None:
    for name in ("a", "b", "c"):
        (tmp_path / f"{name}.log").write_text(f"{name} 1\n")
    source = _source(tmp_path, path="*.log")
    await source.open(None)
    try:
        await _values(source, 3)
        await _nothing_more(source)
        _append(tmp_path / "b.log", "b 2\n")
        assert (await _values(source, 1))[0] == ["b 2"]
        others = [t for t in source._files.values() if not t.path.endswith("b.log")]
        assert [t.dirty for t in others] == [False, False]
    finally:
        await source.close()


async def test_a_closed_idle_file_rotated_away_is_let_go(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text("old 1\n")
    source = _source(tmp_path, path="app.log", idle_close="100ms", rotate_wait="100ms")
    await source.open(None)
    try:
        assert (await _values(source, 1))[0] == ["old 1"]
        await _nothing_more(source, 0.4)  # closed: idle past idle_close
        log.unlink()
        log.write_text("new 1\n")
        assert (await _values(source, 1))[0] == ["new 1"]
        await _nothing_more(source, 0.4)
        assert [f["path"] for f in source._position()["files"]] == [str(log)]
    finally:
        await source.close()
