"""``--bootstrap-server`` turns the command line to a broker: topics, produce, consume and
groups against a real ``millstream broker`` subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

MILLSTREAM = Path(sys.executable).parent / "millstream"


def store_option(remote) -> list[str]:
    """``--bootstrap-server HOST:PORT`` for our broker (its short form), ``--store URL`` else."""
    if remote.is_kafka:
        return ["--store", remote.url]
    return ["--bootstrap-server", remote.bootstrap]


def run(remote, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MILLSTREAM), *args, *store_option(remote)],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_command_line_works_against_a_broker(remote) -> None:
    topic, group = f"cli-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    assert run(remote, "topics", "create", topic, "--partitions", "2").returncode == 0
    produced = run(remote, "produce", topic, stdin="one\ntwo\nthree\n")
    assert produced.returncode == 0, produced.stderr
    consumed = run(
        remote,
        "consume",
        topic,
        "--group",
        group,
        "--from-beginning",
        "--max-messages",
        "3",
    )
    assert consumed.returncode == 0, consumed.stderr
    assert sorted(consumed.stdout.split()) == ["one", "three", "two"]
    groups = run(remote, "groups", "describe", group, "--format", "json")
    assert groups.returncode == 0, groups.stderr
    offsets = json.loads(groups.stdout)["offsets"]
    assert sum(o["committed"] or 0 for o in offsets) == 3 and all(o["lag"] == 0 for o in offsets)


def test_bootstrap_server_with_another_store_option_is_a_usage_error(tmp_path) -> None:
    result = subprocess.run(
        [
            str(MILLSTREAM),
            "topics",
            "list",
            "--bootstrap-server",
            "127.0.0.1:9",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "millstream: error: --bootstrap-server and --data-dir both name a store; give one of them"
    )


def test_a_new_group_reading_from_the_end_still_gets_what_is_written_while_it_is_away(
    remote,
) -> None:
    # as Kafka's console consumer: a group's first run commits where it started, so records
    # written after that run are read by the next one, not skipped as "before latest"
    topic, group = f"cli-{uuid.uuid4().hex[:8]}", f"g-{uuid.uuid4().hex[:8]}"
    assert run(remote, "topics", "create", topic, "--partitions", "3").returncode == 0
    assert run(remote, "produce", topic, stdin="old\n").returncode == 0
    first = run(remote, "consume", topic, "--group", group, "--timeout-ms", "500")
    assert first.returncode == 0, first.stderr
    assert first.stdout == ""  # from the end: the record written before is not read
    assert run(remote, "produce", topic, stdin="new-1\nnew-2\n").returncode == 0
    second = run(remote, "consume", topic, "--group", group, "--max-messages", "2")
    assert second.returncode == 0, second.stderr
    assert sorted(second.stdout.split()) == ["new-1", "new-2"]
