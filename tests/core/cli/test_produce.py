"""``millstream produce``: stdin lines become records."""

from __future__ import annotations

import asyncio
import re

import pytest

from millstream.core.cli import _produce
from millstream.core.client import connect


@pytest.fixture
def topic(cli) -> str:
    cli.ok("topics", "create", "readings", "--partitions", "3")
    return "readings"


def test_each_line_is_one_record_with_only_the_newline_removed(cli, topic: str) -> None:
    result = cli.ok("produce", topic, "--partition", "0", stdin=b'{"t": 1}\n\nwith cr\r\nlast')
    assert "produced 4 records to readings" in result.err
    values = [r["value"] for r in cli.records(topic)]
    assert values == ['{"t": 1}', "", "with cr\r", "last"]


def test_key_separator_splits_at_the_first_separator(cli, topic: str) -> None:
    cli.ok("produce", topic, "--key-separator", ":", stdin="dev-1:a:b\ndev-2:c\ndev-1:d\n")
    records = cli.records(topic)
    by_value = {r["value"]: r for r in records}
    assert by_value["a:b"]["key"] == "dev-1"
    assert by_value["c"]["key"] == "dev-2"
    assert by_value["a:b"]["partition"] == by_value["d"]["partition"]


def test_kafka_properties_parse_key_and_key_separator(cli, topic: str) -> None:
    cli.ok(
        "produce",
        topic,
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=|",
        stdin="k1|v1\n",
    )
    cli.ok("produce", topic, "--property", "parse.key=true", stdin="k2\tv2\n")  # tab by default
    keys = {r["value"]: r["key"] for r in cli.records(topic)}
    assert keys == {"v1": "k1", "v2": "k2"}


def test_unknown_property_is_a_usage_error(cli, topic: str) -> None:
    result = cli("produce", topic, "--property", "parse.keys=true", stdin="x\n")
    assert result.status == 2
    assert "parse.keys" in result.err and "parse.key" in result.err


def test_a_line_without_separator_stops_there_and_keeps_the_lines_before(cli, topic: str) -> None:
    result = cli("produce", topic, "--key-separator", ":", stdin="a:1\nb:2\nno separator\nc:3\n")
    assert result.status == 1
    assert result.err.startswith("millstream: error: line 3: ")
    assert "'no separator'" in result.err
    assert "tail -n +3" in result.err
    assert sorted(r["value"] for r in cli.records(topic)) == ["1", "2"]


def test_line_numbers_count_across_chunks(cli, topic: str, monkeypatch) -> None:
    monkeypatch.setattr(_produce, "CHUNK_BYTES", 7)
    lines = [f"k{i}:value-{i}" for i in range(500)]
    lines[321] = "broken"
    result = cli("produce", topic, "--key-separator", ":", stdin="\n".join(lines) + "\n")
    assert "line 322: " in result.err
    assert len(cli.records(topic)) == 321


def test_lines_split_across_small_reads_arrive_whole(cli, topic: str, monkeypatch) -> None:
    monkeypatch.setattr(_produce, "CHUNK_BYTES", 5)
    monkeypatch.setattr(_produce, "FLUSH_BYTES", 64)
    lines = [f"line number {i} " + "x" * (i % 17) for i in range(300)]
    cli.ok("produce", topic, "--partition", "2", stdin="\n".join(lines))
    assert [r["value"] for r in cli.records(topic, "--partition", "2")] == lines


def test_headers_are_added_to_every_record(cli, topic: str) -> None:
    cli.ok("produce", topic, "--header", "source=test", "--header", "v=1=2", stdin="a\nb\n")
    for record in cli.records(topic):
        assert record["headers"] == [
            {"key": "source", "value": "test"},
            {"key": "v", "value": "1=2"},
        ]


def test_empty_input_produces_nothing(cli, topic: str) -> None:
    assert "produced 0 records" in cli.ok("produce", topic, stdin="").err


def test_unknown_topic_and_bad_partition_are_clear_errors(cli, topic: str) -> None:
    result = cli("produce", "nope", stdin="x\n")
    assert result.status == 1 and "nope" in result.err
    result = cli("produce", topic, "--partition", "3", stdin="x\n")
    assert result.status == 1 and "0..2" in result.err


def test_a_record_too_large_names_its_line(cli) -> None:
    cli.ok("topics", "create", "small", "--config", "max.message.bytes=200")
    result = cli("produce", "small", stdin="ok\n" + "x" * 1000 + "\nafter\n")
    assert result.status == 1
    assert "line 2: " in result.err
    assert [r["value"] for r in cli.records("small")] == ["ok"]


def test_keys_land_where_the_client_producer_puts_them(cli, topic: str) -> None:
    keys = [f"device-{i}" for i in range(40)]
    cli.ok("produce", topic, "--key-separator", "=", stdin="".join(f"{k}=cli\n" for k in keys))

    async def send_with_client() -> None:
        async with await connect(f"file:{cli.data_dir}") as conn, conn.producer() as producer:
            for key in keys:
                producer.send(topic, b"client", key=key.encode())

    asyncio.run(send_with_client())
    placed: dict[tuple[str, str], int] = {
        (r["key"], r["value"]): r["partition"] for r in cli.records(topic)
    }
    assert len(set(placed.values())) == 3
    for key in keys:
        assert placed[key, "cli"] == placed[key, "client"], key


@pytest.mark.parametrize("flush_bytes", [_produce.FLUSH_BYTES, 32 * 1024])
def test_a_full_disk_says_up_to_which_line_the_store_acknowledged(
    cli, small_disk, monkeypatch, flush_bytes: int
) -> None:
    # with the default flush size the disk fills long before the first wait for acknowledgements
    monkeypatch.setattr(_produce, "FLUSH_BYTES", flush_bytes)
    cli.data_dir = small_disk / "store"
    cli.ok("topics", "create", "t")
    lines = [f"{i:08d}" + "." * 92 for i in range(40_000)]  # 4 MB: more than the disk holds

    result = cli("produce", "t", stdin="\n".join(lines) + "\n")
    assert result.status == 1
    assert result.err.count("\n") == 1 and "No space left on device" in result.err
    match = re.search(
        r"lines 1 to (\d+) were acknowledged by the store, lines (\d+) to", result.err
    )
    assert match, result.err
    acknowledged = int(match.group(1))
    assert int(match.group(2)) == acknowledged + 1

    stored = [r["value"] for r in cli.records("t")]
    assert stored == lines[: len(stored)]  # in order, nothing torn or skipped
    # what the message calls acknowledged is all there, and it is nearly all that was written:
    # only the batches in flight when the disk filled (a few hundred lines) are in doubt
    assert 5_000 < acknowledged <= len(stored) < acknowledged + 1_000, (acknowledged, len(stored))
