"""The store: topics, metadata, the writer's lock, read-only access and foreign files."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from millstream.core.errors import (
    ConfigError,
    ForeignFileError,
    InvalidPartitionsError,
    InvalidTopicError,
    ReadOnlyStoreError,
    StoreError,
    StoreLockedError,
    TopicExistsError,
    UnknownTopicError,
)
from millstream.core.log import LogStore, encode_batch


async def test_topics_are_created_listed_and_kept_across_reopen(tmp_path: Path) -> None:
    store = LogStore.open(tmp_path)
    store.create_topic("readings", 3, {"retention.ms": "1000", "codec": "text"})
    store.create_topic("b.c_d-e", 1)
    await store.close()
    store = LogStore.open(tmp_path)
    assert store.topic_names() == ["b.c_d-e", "readings"]
    topic = store.topic("readings")
    assert len(topic.partitions) == 3
    assert topic.config.retention_ms == 1000
    assert topic.config.codec == "text"
    assert topic.config.get("segment.bytes") == "1073741824"
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == [
        "b.c_d-e-0",
        "readings-0",
        "readings-1",
        "readings-2",
    ]
    await store.close()


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        (".", "reserved"),
        ("..", "reserved"),
        ("a/b", "contains '/'"),
        ("../etc", "contains '/'"),
        ("x" * 250, "limit is 249"),
        ("sp ace", "contains ' '"),
        ("é", "contains 'é'"),
    ],
)
async def test_invalid_topic_names_are_refused_and_never_touch_the_disk(
    store: LogStore, name: str, message: str
) -> None:
    before = sorted(os.listdir(store.path))
    with pytest.raises(InvalidTopicError, match=message):
        store.create_topic(name)
    assert sorted(os.listdir(store.path)) == before
    assert not (store.path.parent / "etc-0").exists()


async def test_topic_errors_name_the_topic(store: LogStore) -> None:
    store.create_topic("t")
    with pytest.raises(TopicExistsError, match="'t' already exists"):
        store.create_topic("t")
    with pytest.raises(UnknownTopicError, match="unknown topic 'nope'"):
        store.topic("nope")
    with pytest.raises(InvalidPartitionsError, match="1 to 10000 partitions, not 0"):
        store.create_topic("u", 0)
    with pytest.raises(InvalidPartitionsError, match="not 10001"):
        store.create_topic("u", 10_001)
    with pytest.raises(InvalidPartitionsError, match="partition 3 does not exist.*0 to 0"):
        store.topic("t").partition(3)


async def test_unknown_config_keys_suggest_the_right_one(store: LogStore) -> None:
    with pytest.raises(ConfigError, match="unknown topic config 'retention.sm'; did you mean"):
        store.create_topic("t", config={"retention.sm": "5"})
    with pytest.raises(ConfigError, match=r"flush.policy='sometimes' is not valid: valid: commit"):
        store.create_topic("t", config={"flush.policy": "sometimes"})
    assert not store.has_topic("t")


async def test_alter_grows_partitions_and_sets_configs(store: LogStore) -> None:
    store.create_topic("t", 2)
    topic = store.alter_topic("t", partitions=5, config={"retention.ms": "10"})
    assert len(topic.partitions) == 5
    assert topic.config.retention_ms == 10
    with pytest.raises(InvalidPartitionsError, match="can only grow"):
        store.alter_topic("t", partitions=3)
    topic = store.alter_topic("t", config={"retention.ms": None})
    assert topic.config.retention_ms == 604800000


async def test_delete_removes_the_data(store: LogStore, records) -> None:
    p = store.create_topic("t", 2).partitions[0]
    result = p.append(encode_batch(records(5)))
    await p.durable(result.last_offset + 1)
    store.delete_topic("t")
    assert store.topic_names() == []
    assert sorted(os.listdir(store.path)) == [".lock", "millstream.json"]
    store.create_topic("t", 1)
    assert store.topic("t").partitions[0].log_end_offset == 0


async def test_a_second_writer_is_refused_with_a_clear_message(store: LogStore) -> None:
    with pytest.raises(StoreLockedError, match=r"in use by process \d+.*millstream broker"):
        LogStore.open(store.path)


async def test_read_only_opens_follow_the_writer(store: LogStore, records) -> None:
    p = store.create_topic("t").partitions[0]
    result = p.append(encode_batch(records(3)))
    await p.durable(result.last_offset + 1)
    reader = LogStore.open(store.path, read_only=True)
    rp = reader.topic("t").partitions[0]
    assert rp.high_watermark == 3
    store.create_topic("later", 2)
    result = p.append(encode_batch(records(2, start=3)))
    await p.durable(result.last_offset + 1)
    reader.refresh()
    assert rp.high_watermark == 5
    assert [r.offset for r in rp.read_records(0)] == [0, 1, 2, 3, 4]
    assert len(reader.topic("later").partitions) == 2
    with pytest.raises(ReadOnlyStoreError, match="another process owns.*millstream broker"):
        reader.create_topic("x")
    with pytest.raises(ReadOnlyStoreError):
        rp.append(encode_batch(records(1)))
    await reader.close()


async def test_read_only_needs_an_existing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no millstream store at"):
        LogStore.open(tmp_path / "missing", read_only=True)


async def test_a_foreign_file_in_the_data_directory_is_named(tmp_path: Path) -> None:
    store = LogStore.open(tmp_path)
    store.create_topic("t")
    await store.close()
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(ForeignFileError, match="notes.txt"):
        LogStore.open(tmp_path)
    (tmp_path / "notes.txt").unlink()
    (tmp_path / "t-0" / "backup.log").write_text("mine")
    with pytest.raises(ForeignFileError, match="backup.log"):
        LogStore.open(tmp_path)
    assert (tmp_path / "t-0" / "backup.log").read_text() == "mine"


async def test_a_directory_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    (tmp_path / "report.csv").write_text("a,b\n")
    with pytest.raises(StoreError, match="not a millstream store.*report.csv"):
        LogStore.open(tmp_path)
    assert sorted(os.listdir(tmp_path)) == [".lock", "report.csv"] or sorted(
        os.listdir(tmp_path)
    ) == ["report.csv"]
    file_path = tmp_path / "report.csv"
    with pytest.raises(StoreError, match="is a file"):
        LogStore.open(file_path)


async def test_leftovers_of_an_interrupted_delete_are_cleared(tmp_path: Path) -> None:
    store = LogStore.open(tmp_path)
    store.create_topic("t")
    await store.close()
    leftover = tmp_path / (".deleted-" + "ab" * 16)
    leftover.mkdir()
    (leftover / "00000000000000000000.log").write_bytes(b"")
    store = LogStore.open(tmp_path)
    assert not leftover.exists()
    await store.close()


async def test_a_users_folder_that_looks_deleted_is_never_removed(tmp_path: Path) -> None:
    store = LogStore.open(tmp_path)
    store.create_topic("t")
    await store.close()
    mine = tmp_path / "my-backup.deleted"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ForeignFileError, match="my-backup.deleted"):
        LogStore.open(tmp_path)
    assert (mine / "notes.txt").read_text() == "keep me"


async def test_topics_with_the_longest_names_can_be_deleted(store: LogStore) -> None:
    name = "n" * 249
    store.create_topic(name, 2)
    store.delete_topic(name)
    assert store.topic_names() == []
    assert sorted(os.listdir(store.path)) == [".lock", "millstream.json"]


async def test_creating_a_store_only_when_asked(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no millstream store at"):
        LogStore.open(tmp_path / "typo", create=False)
    assert not (tmp_path / "typo").exists()


async def test_config_values_are_checked_and_normalised(store: LogStore) -> None:
    with pytest.raises(ConfigError, match=r"retention.ms='abc' is not valid: must be an integer"):
        store.create_topic("t", config={"retention.ms": "abc"})
    with pytest.raises(ConfigError, match=r"segment.bytes='99999999999' is not valid"):
        store.create_topic("t", config={"segment.bytes": "99999999999"})
    topic = store.create_topic("t", config={"cleanup.policy": "delete,,compact"})
    assert topic.config.get("cleanup.policy") == "compact,delete"


def test_a_topic_that_does_not_fit_the_open_file_limit_is_not_half_created(
    tmp_path: Path,
) -> None:
    script = f"""
import asyncio, os, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
from millstream.core.errors import StoreWriteError
from millstream.core.log import LogStore

async def main():
    store = LogStore.open({str(tmp_path / "data")!r})
    try:
        store.create_topic("many", 200)
    except StoreWriteError as exc:
        assert "nothing was created" in str(exc) and "too many open files" in str(exc), exc
    else:
        raise SystemExit("created 200 partitions with 64 descriptors?")
    store.create_topic("few", 2)
    assert store.topic_names() == ["few"], store.topic_names()
    await store.close()
    assert sorted(os.listdir({str(tmp_path / "data")!r})) == [
        ".clean-shutdown", ".lock", "few-0", "few-1", "millstream.json"
    ], os.listdir({str(tmp_path / "data")!r})
    print("ok")

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.stdout.strip() == "ok", done.stderr
