"""``millstream query``: formats, output files, exports, stats, limits, errors and --follow."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from millstream.core.cli import main
from millstream.core.client import connect
from millstream.core.record import Record

MILLSTREAM = str(Path(sys.executable).parent / "millstream")


@pytest.fixture
def query(store_dir: Path, capsys, monkeypatch, tmp_path: Path):
    monkeypatch.chdir(tmp_path)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(["query", "--data-dir", str(store_dir), *args])
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return run


def test_table_output(query) -> None:
    status, out, err = query(
        "SELECT key, count(*) AS n, max(timestamp) AS last FROM readings "
        "WHERE key IN ('dev-1', 'dev-2') GROUP BY key ORDER BY key"
    )
    assert (status, err) == (0, "")
    assert out.splitlines() == [
        "key      n  last",
        "dev-1  400  2023-11-14 22:46:36.000Z",
        "dev-2  400  2023-11-14 22:46:37.000Z",
    ]


def test_json_lines_output(query) -> None:
    status, out, _ = query(
        "SELECT record_offset, timestamp, headers, value FROM readings "
        "WHERE partition = 0 AND record_offset < 2",
        "--format",
        "json",
    )
    assert status == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert [r["record_offset"] for r in rows] == [0, 1]
    assert rows[0]["timestamp"] == "2023-11-14T22:13:20+00:00"
    assert rows[0]["headers"] == [{"key": "src", "value": "gen"}]
    assert rows[0]["value"]["location"] == {"lat": 0.0, "lon": -0.0}


def test_csv_output_to_a_file(query, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    status, out, _ = query(
        "SELECT key, value FROM logs ORDER BY record_offset",
        "--format",
        "csv",
        "--output",
        "out.csv",
    )
    assert (status, out) == (0, "")
    assert list(csv.reader(io.StringIO(target.read_text()))) == [
        ["key", "value"],
        ["", "started"],
        ["dev-1", "dev-1 is hot"],
    ]


def test_export_to_parquet_and_csv(query, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    status, _, err = query(
        "SELECT record_offset, key, value FROM readings WHERE partition = 1",
        "--export",
        "parquet:readings.parquet",
    )
    assert status == 0
    assert err.startswith("wrote 1,000 rows to 'readings.parquet' (parquet)")
    table = pq.read_table(tmp_path / "readings.parquet")
    assert table.num_rows == 1000
    assert table.schema.field("value").type.num_fields == 5  # the STRUCT, kept nested
    assert table.slice(0, 1).to_pylist()[0]["value"]["n"] == 50

    status, _, err = query(
        "SELECT key, value FROM readings WHERE value.n < 3", "--export", "csv:small.csv"
    )
    assert status == 0
    rows = list(csv.DictReader((tmp_path / "small.csv").open()))
    assert len(rows) == 3
    assert json.loads(rows[0]["value"])["device_id"] == rows[0]["key"]


def test_stats_say_what_was_read(query) -> None:
    status, out, err = query(
        "SELECT count(*) FROM readings WHERE partition = 0 AND record_offset < 10", "--stats"
    )
    assert status == 0
    assert out.splitlines()[-1].strip() == "10"
    first = err.splitlines()[0]
    assert first.startswith("readings: read 1 of ")
    assert "1 batches, 50 of 2,000 records" in first
    assert first.endswith("from 1 of 2 partitions; bounds: partition in [0], offset -∞..9")


def test_errors_are_one_line(query) -> None:
    status, _, err = query("SELECT * FROM readings", "--max-rows", "10")
    assert status == 1
    assert err == (
        "millstream: error: the query returns more than 10 rows; add a LIMIT, narrow the WHERE, "
        "or raise the limit with --max-rows (0 for none)\n"
    )
    status, _, err = query("DROP VIEW readings")
    assert status == 1 and "DROP statements are not allowed" in err
    status, out, _ = query("SELECT count(*) FROM readings", "--max-rows", "0")
    assert status == 0 and out.split()[-1] == "2000"


def test_a_broker_that_is_not_there_is_a_clear_error(capsys) -> None:
    import socket

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    status = main(["query", "--store", f"millstream://127.0.0.1:{port}", "SELECT 1"])
    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith(f"millstream: error: cannot reach millstream://127.0.0.1:{port}")


def test_the_current_folder_is_allowed_by_default(query, tmp_path: Path) -> None:
    (tmp_path / "rooms.csv").write_text("device,room\ndev-3,hall\n")
    status, out, err = query(
        "SELECT room, count(*) FROM readings JOIN 'rooms.csv' ON device = key GROUP BY room"
    )
    assert (status, err) == (0, "")
    assert out.splitlines()[1].split() == ["hall", "400"]
    status, _, err = query(f"SELECT * FROM '{tmp_path / 'rooms.csv'}'", "--allow", "/tmp/..")
    assert status == 0, err


def produce(store_dir: Path, values: list[dict]) -> None:
    async def write() -> None:
        async with await connect(f"file:{store_dir}") as conn, conn.producer() as producer:
            records = [Record(b"live", orjson.dumps(v)) for v in values]
            await producer.send_batch("readings", records, partition=0)

    asyncio.run(write())


def test_follow_prints_new_matching_records_until_ctrl_c(store_dir: Path) -> None:
    follower = subprocess.Popen(
        [
            MILLSTREAM,
            "query",
            "--data-dir",
            str(store_dir),
            "--format",
            "json",
            "--follow",
            "SELECT value.n AS n, value.temp AS temp FROM readings WHERE value.temp > 100",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        # it starts at the end: the old records (temp < 30) would not show anyway
        assert follower.stderr.readline() == b"following readings from its end; Ctrl-C ends\n"
        produce(store_dir, [{"n": 9001, "temp": 150}, {"n": 9002, "temp": 5}])
        first = follower.stdout.readline()
        assert json.loads(first) == {"n": 9001, "temp": 150}
        produce(store_dir, [{"n": 9003, "temp": 101}])
        assert json.loads(follower.stdout.readline()) == {"n": 9003, "temp": 101}
        follower.send_signal(signal.SIGINT)
        out, err = follower.communicate(timeout=20)
    finally:
        follower.kill()
    assert follower.returncode == 0, err
    assert out == b""


def test_follow_refuses_an_aggregate(query) -> None:
    status, _, err = query("--follow", "SELECT count(*) FROM readings")
    assert status == 1
    assert "--follow needs a query over one topic without aggregates" in err


def test_the_progress_line_shows_counts_rate_and_time_left_then_clears() -> None:
    # stderr is a pseudo-terminal: the progress line is drawn (and cleared at the end)
    import pty

    main_fd, child_fd = pty.openpty()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                "import time, sys\n"
                "from millstream.core.cli import _query\n"
                "bar = _query._ProgressBar()\n"
                "bar.begin(4000)\n"
                "bar.started -= 1\n"
                "bar.advance(1000)\n"
                "bar.clear()\n",
            ],
            stderr=child_fd,
            timeout=60,
        )
        os.close(child_fd)
        child_fd = -1
        shown = os.read(main_fd, 4096).decode()
    finally:
        if child_fd >= 0:
            os.close(child_fd)
        os.close(main_fd)
    assert done.returncode == 0
    assert "scanned 1,000 of 4,000 records (25%)" in shown
    assert "records/s  ETA " in shown
    assert shown.endswith("\r\x1b[K")


def test_no_progress_line_when_stderr_is_not_a_terminal(query) -> None:
    status, _, err = query("SELECT count(*) FROM readings")
    assert (status, err) == (0, "")


_DISTINCT_4M = "SELECT count(*) AS n FROM (SELECT DISTINCT range FROM range(4000000))"
"""A hash table of about 100 MiB: more than 64 MiB of memory holds."""


def test_a_query_needing_more_memory_than_allowed_stops_in_one_line(query) -> None:
    status, out, err = query("--max-memory", "64MiB", "--max-temp-disk", "0", _DISTINCT_4M)
    assert (status, out) == (1, "")
    assert err == (
        "millstream: error: the query needs more memory than it may use (--max-memory 64.0 MiB, "
        "with --max-temp-disk 0 B on disk for what does not fit); raise them, or narrow the "
        "query\n"
    )


def test_what_does_not_fit_in_memory_goes_to_temporary_files_removed_afterwards(
    query, tmp_path: Path, monkeypatch
) -> None:
    import tempfile

    temp = tmp_path / "system-temp"
    temp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(temp))
    status, out, err = query("--max-memory", "64MiB", "--format", "json", _DISTINCT_4M)
    assert (status, err) == (0, "")
    assert json.loads(out) == {"n": 4_000_000}
    assert list(temp.iterdir()) == []  # the query's temporary folder is gone with it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["system-temp"]  # nothing in the cwd


def test_memory_and_temporary_disk_limits_default_to_a_share_of_the_machine(query) -> None:
    settings = (
        "SELECT current_setting('memory_limit') AS memory, "
        "current_setting('max_temp_directory_size') AS disk"
    )
    status, out, err = query("--format", "json", settings)
    assert (status, err) == (0, "")
    shown = json.loads(out)
    machine = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    cgroup = Path("/sys/fs/cgroup/memory.max")
    if cgroup.exists() and cgroup.read_text().strip().isdigit():
        machine = min(machine, int(cgroup.read_text()))
    value, unit = shown["memory"].split()
    assert unit == "GiB" and abs(float(value) - machine / 4 / 2**30) < 0.2, shown
    assert shown["disk"] == "4.0 GiB"
    status, out, err = query(
        "--format", "json", "--max-memory", "512MiB", "--max-temp-disk", "1GB", settings
    )
    assert (status, err) == (0, "")
    assert json.loads(out) == {"memory": "512.0 MiB", "disk": "953.6 MiB"}


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--max-memory", "lots"], "argument --max-memory: expected a size such as 512MiB"),
        (["--max-temp-disk=-1GB"], "argument --max-temp-disk: expected a size such as"),
        (["--max-memory", "0"], "--max-memory must be at least 1MiB, got 0 bytes"),
    ],
)
def test_sizes_that_are_not_sizes_are_usage_errors(query, flags, error) -> None:
    status, _out, err = query(*flags, "SELECT 1")
    assert status == 2
    assert error in err
