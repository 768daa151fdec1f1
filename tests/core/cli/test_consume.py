"""``millstream consume``: records to stdout, with and without a group."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

MILLSTREAM = str(Path(sys.executable).parent / "millstream")


@pytest.fixture
def topic(cli) -> str:
    cli.ok("topics", "create", "readings", "--partitions", "2")
    lines = [f"k{i % 5}:value {i}" for i in range(20)]
    cli.ok("produce", "readings", "--key-separator", ":", stdin="\n".join(lines) + "\n")
    return "readings"


def start_reader(cli, *args: str) -> subprocess.Popen:
    """``millstream consume ARGS`` as a process of its own (it reads the store read-only, so
    this process may write meanwhile)."""
    return subprocess.Popen(
        [MILLSTREAM, "consume", *args, "--data-dir", str(cli.data_dir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def test_text_prints_values_one_per_line(cli, topic: str) -> None:
    out = cli.ok("consume", topic, "--from-beginning", "--timeout-ms", "200").lines
    assert sorted(out) == sorted(f"value {i}" for i in range(20))


def test_without_from_beginning_it_starts_at_the_end(cli, topic: str) -> None:
    assert cli.ok("consume", topic, "--timeout-ms", "200").out == ""


def test_max_messages_stops_after_n(cli, topic: str) -> None:
    assert len(cli.ok("consume", topic, "--from-beginning", "--max-messages", "7").lines) == 7


def test_partition_and_offset_choose_the_start(cli, topic: str) -> None:
    everything = cli.records(topic, "--partition", "1")
    assert [r["offset"] for r in everything] == list(range(len(everything)))
    out = cli.ok("consume", topic, "--partition", "1", "--offset", "2", "--timeout-ms", "200").lines
    assert out == [r["value"] for r in everything[2:]]
    earliest = cli.ok(
        "consume", topic, "--partition", "1", "--offset", "earliest", "--timeout-ms", "200"
    )
    assert len(earliest.lines) == len(everything)


def test_an_offset_past_the_end_says_so_and_waits_there(cli, topic: str) -> None:
    latest = len(cli.records(topic, "--partition", "1"))
    reader = start_reader(cli, topic, "--partition", "1", "--offset", "1000", "--max-messages", "1")
    try:
        note = reader.stderr.readline().decode()
        assert note == (
            f"offset 1000 is past the end of readings-1 (latest {latest}); "
            f"starting at {latest}, waiting for new records\n"
        )
        cli.ok("produce", topic, "--partition", "1", stdin="new\n")
        out, err = reader.communicate(timeout=30)
    finally:
        reader.kill()
    assert reader.returncode == 0 and out == b"new\n" and err == b""


def test_an_offset_inside_the_log_prints_no_note(cli, topic: str) -> None:
    latest = len(cli.records(topic, "--partition", "1"))
    for offset in ("0", str(latest)):
        result = cli.ok(
            "consume", topic, "--partition", "1", "--offset", offset, "--timeout-ms", "100"
        )
        assert result.err == ""


def test_offset_needs_partition_and_excludes_from_beginning(cli, topic: str) -> None:
    result = cli("consume", topic, "--offset", "3")
    assert result.status == 2 and "--partition" in result.err
    result = cli("consume", topic, "--partition", "0", "--offset", "3", "--from-beginning")
    assert result.status == 2
    assert cli("consume", topic, "--partition", "0", "--offset", "-1").status == 2


def test_json_has_every_field(cli, topic: str) -> None:
    records = cli.records(topic)
    assert len(records) == 20
    first = records[0]
    assert set(first) == {"topic", "partition", "offset", "timestamp", "key", "value", "headers"}
    assert first["topic"] == "readings"
    assert first["key"].startswith("k") and first["value"].startswith("value ")
    assert abs(first["timestamp"] - time.time() * 1000) < 60_000
    assert first["headers"] == []


def test_json_uses_base64_for_bytes_that_are_not_utf8(cli) -> None:
    cli.ok("topics", "create", "raw")
    cli.ok("produce", "raw", "--key-separator", "=", stdin=b"\xff\xfe=\x00\x9f ok\n")
    (record,) = cli.records("raw")
    assert record["key_encoding"] == "base64"
    assert base64.b64decode(record["key"]) == b"\xff\xfe"
    assert record["value_encoding"] == "base64"
    assert base64.b64decode(record["value"]) == b"\x00\x9f ok"


def test_print_properties_follow_kafkas_console_consumer(cli) -> None:
    cli.ok("topics", "create", "t")
    cli.ok("produce", "t", "--key-separator", ":", "--header", "h=1", stdin="k:v\n")
    out = cli.ok(
        "consume",
        "t",
        "--from-beginning",
        "--timeout-ms",
        "200",
        "--property",
        "print.key=true",
        "--property",
        "print.offset=true",
        "--property",
        "print.headers=true",
        "--property",
        "key.separator= | ",
    ).out
    assert out == "Offset:0 | h:1 | k | v\n"
    out = cli.ok(
        "consume", "t", "--from-beginning", "--timeout-ms", "200", "--property", "print.key=true"
    ).out
    assert out == "k\tv\n"
    result = cli("consume", "t", "--property", "print.keys=true")
    assert result.status == 2 and "print.key" in result.err


def test_group_commits_what_it_printed_and_resumes_there(cli, topic: str) -> None:
    first = cli.ok("consume", topic, "--group", "g", "--from-beginning", "--max-messages", "8")
    assert len(first.lines) == 8
    described = cli.ok("groups", "describe", "g", "--format", "json").json
    assert sum(o["committed"] or 0 for o in described["offsets"]) == 8

    rest = cli.ok("consume", topic, "--group", "g", "--from-beginning", "--timeout-ms", "300")
    assert sorted(first.lines + rest.lines) == sorted(f"value {i}" for i in range(20))
    assert cli.ok("consume", topic, "--group", "g", "--timeout-ms", "200").out == ""


def test_from_beginning_applies_only_where_the_group_has_no_offset(cli, topic: str) -> None:
    # The group commits partition 0 only; partition 1 has no committed offset.
    p0 = cli.ok(
        "consume",
        topic,
        "--group",
        "g",
        "--partition",
        "0",
        "--from-beginning",
        "--timeout-ms",
        "200",
    )
    p1_count = len(cli.records(topic, "--partition", "1"))
    cli.ok("produce", topic, "--partition", "0", stdin="new in p0\n")
    cli.ok("produce", topic, "--partition", "1", stdin="new in p1\n")

    out = cli.ok("consume", topic, "--group", "g", "--from-beginning", "--timeout-ms", "300")
    assert "new in p0" in out.lines  # resumed at the committed offset
    assert not set(p0.lines) & set(out.lines)  # nothing of partition 0 printed twice
    assert len(out.lines) == 1 + p1_count + 1  # partition 1 read from its beginning


def test_group_without_from_beginning_starts_at_the_end_and_keeps_that_place(
    cli, topic: str
) -> None:
    assert cli.ok("consume", topic, "--group", "late", "--timeout-ms", "200").out == ""
    described = cli.ok("groups", "describe", "late", "--format", "json").json
    assert {o["partition"]: o["lag"] for o in described["offsets"]} == {0: 0, 1: 0}
    # what is written while the group is away is read on its next run
    cli.ok("produce", topic, stdin="fresh\n")
    assert cli.ok("consume", topic, "--group", "late", "--timeout-ms", "300").lines == ["fresh"]


def test_timeout_counts_from_the_last_record(cli, topic: str) -> None:
    # Two records arrive 1.2 s apart, after the first 20: together later than the 2 s timeout
    # counted from the start, each well within it counted from the record before.
    reader = start_reader(cli, topic, "--from-beginning", "--timeout-ms", "2000")
    try:
        first = [reader.stdout.readline() for _ in range(20)]  # the records already there
        assert all(line.startswith(b"value ") for line in first), first
        for late in ("late 1", "late 2"):
            time.sleep(1.2)
            cli.ok("produce", topic, "--partition", "0", stdin=f"{late}\n")
            assert reader.stdout.readline() == f"{late}\n".encode()  # b"" if it had ended
        printed = time.monotonic()
        _out, err = reader.communicate(timeout=30)
    finally:
        reader.kill()
    assert reader.returncode == 0, err
    assert time.monotonic() - printed >= 1.5  # it waited the timeout after the last record


def test_a_group_cannot_consume_the_internal_offsets_topic(cli, topic: str) -> None:
    cli.ok("consume", topic, "--group", "g", "--from-beginning", "--timeout-ms", "200")
    before = cli.records("__consumer_offsets")  # reading it without a group is fine
    assert before
    # with a group, each commit would add records that it reads and commits again, forever
    args = (
        "consume",
        "__consumer_offsets",
        "--group",
        "g2",
        "--from-beginning",
        "--format",
        "json",
    )
    result = cli(*args, "--timeout-ms", "200", "--max-messages", "1000")
    assert result.status == 1 and result.out == ""
    assert result.err.count("\n") == 1
    assert "'__consumer_offsets' is internal" in result.err and "without --group" in result.err
    assert len(cli.records("__consumer_offsets")) == len(before)


def test_unknown_topic_is_an_error_naming_it(cli) -> None:
    cli.ok("topics", "create", "other")
    result = cli("consume", "nope", "--timeout-ms", "100")
    assert result.status == 1
    assert "nope" in result.err and result.err.startswith("millstream: error: ")


def test_json_lines_are_independent_objects(cli, topic: str) -> None:
    out = cli.ok("consume", topic, "--from-beginning", "--timeout-ms", "200", "--format", "json")
    assert all(json.loads(line)["topic"] == "readings" for line in out.lines)
