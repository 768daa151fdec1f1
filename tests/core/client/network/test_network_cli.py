"""``--bootstrap-server`` turns the command line to a broker: topics, produce, consume and
groups against a real ``millstream broker`` subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from millstream.core.client.partitioner import partition_for_key

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


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def ok(remote, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``run``, insisting on success and showing stderr when it fails."""
    result = run(remote, *args, stdin=stdin)
    assert result.returncode == 0, (args, result.stderr)
    return result


def one_line_error(result: subprocess.CompletedProcess[str], *named: str) -> None:
    """Status 1 and one line on stderr, as on the embedded store, naming each of ``named``."""
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("millstream: error: "), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    for name in named:
        assert name in result.stderr, (name, result.stderr)


def described(remote, topic: str) -> dict:
    return json.loads(ok(remote, "topics", "describe", topic, "--format", "json").stdout)


def listed(remote) -> dict[str, dict]:
    return {
        t["name"]: t for t in json.loads(ok(remote, "topics", "list", "--format", "json").stdout)
    }


def test_topics_create_list_describe_alter_and_delete(remote) -> None:
    topic = fresh("topics")
    created = ok(
        remote, "topics", "create", topic, "--partitions", "2", "--config", "retention.ms=60000"
    )
    assert created.stdout.startswith(f"created topic {topic}: 2 partitions")
    summary = listed(remote)[topic]
    assert (summary["partitions"], summary["records"]) == (2, 0)
    assert summary["codec"] == "json"

    topic_json = described(remote, topic)
    assert topic_json["name"] == topic and topic_json["replication_factor"] == 1
    assert [p["partition"] for p in topic_json["partitions"]] == [0, 1]
    assert topic_json["configs"]["retention.ms"] == "60000"

    altered = ok(
        remote, "topics", "alter", topic, "--partitions", "3", "--config", "retention.ms=120000"
    )
    assert "3 partitions" in altered.stdout and "retention.ms=120000" in altered.stdout
    topic_json = described(remote, topic)
    assert len(topic_json["partitions"]) == 3
    assert topic_json["configs"]["retention.ms"] == "120000"
    same = run(remote, "topics", "alter", topic, "--partitions", "3")
    assert same.returncode == 1 and same.stderr == (
        f"millstream: error: topic '{topic}' already has 3 partitions; partitions can only "
        "grow: give --partitions 4 or more\n"
    )

    assert ok(remote, "topics", "delete", topic).stdout.strip() == f"deleted topic {topic}"
    assert topic not in listed(remote)
    one_line_error(run(remote, "topics", "describe", topic), topic)
    one_line_error(run(remote, "topics", "delete", topic), topic)
    assert run(remote, "topics", "delete", topic, "--if-exists").returncode == 0


def test_topics_describe_marks_only_the_configs_set_on_the_topic(remote) -> None:
    topic = fresh("sources")
    ok(remote, "topics", "create", topic, "--config", "retention.ms=60000")
    rows = [line.split() for line in ok(remote, "topics", "describe", topic).stdout.splitlines()]
    configs = {row[0]: row[1:] for row in rows[rows.index(["CONFIG", "VALUE", "SOURCE"]) + 1 :]}
    assert configs["retention.ms"] == ["60000", "topic"]
    assert {name for name, row in configs.items() if row[-1] == "topic"} == {"retention.ms"}


def test_produce_keys_and_headers_and_consume_json_shows_them(remote) -> None:
    topic = fresh("keyed")
    ok(remote, "topics", "create", topic, "--partitions", "3")
    produced = ok(
        remote,
        "produce",
        topic,
        "--key-separator",
        ":",
        "--header",
        "source=lab",
        "--header",
        "trace=1",
        stdin='dev-1:{"temp": 21.5}\ndev-2:x:y\ndev-1:\n',
    )
    assert produced.stderr.startswith(f"produced 3 records to {topic}")
    ok(remote, "produce", topic, "--property", "parse.key=true", "--partition", "0", stdin="k\tv\n")
    consumed = ok(
        remote, "consume", topic, "--from-beginning", "--format", "json", "--max-messages", "4"
    )
    records = [json.loads(line) for line in consumed.stdout.splitlines()]
    lab = [{"key": "source", "value": "lab"}, {"key": "trace", "value": "1"}]
    by_key: dict[str, list[tuple]] = {}
    for r in records:
        assert r["topic"] == topic and isinstance(r["timestamp"], int)
        by_key.setdefault(r["key"], []).append((r["partition"], r["value"], r["headers"]))
    # a key goes where Kafka's Java client puts it; records keep their order within a key
    p1, p2 = partition_for_key(b"dev-1", 3), partition_for_key(b"dev-2", 3)
    assert by_key == {
        "dev-1": [(p1, '{"temp": 21.5}', lab), (p1, "", lab)],
        "dev-2": [(p2, "x:y", lab)],
        "k": [(0, "v", [])],
    }
    offsets = sorted((r["partition"], r["offset"]) for r in records)
    assert offsets == sorted(
        (p, o) for p in {p1, p2, 0} for o in range(sum(r["partition"] == p for r in records))
    )


def test_consume_in_a_group_then_describe_lag_reset_and_consume_from_there(remote) -> None:
    topic, group = fresh("lagging"), fresh("g")
    ok(remote, "topics", "create", topic, "--partitions", "2")
    ok(remote, "produce", topic, "--partition", "0", stdin="".join(f"r{i}\n" for i in range(10)))
    first = ok(
        remote, "consume", topic, "--group", group, "--from-beginning", "--max-messages", "6"
    )
    assert first.stdout.split() == [f"r{i}" for i in range(6)]

    def offsets() -> dict[int, tuple]:
        shown = json.loads(ok(remote, "groups", "describe", group, "--format", "json").stdout)
        assert shown["group"] == group and shown["state"] == "Empty" and shown["members"] == []
        return {
            o["partition"]: (o["committed"], o["end_offset"], o["lag"])
            for o in shown["offsets"]
            if o["topic"] == topic
        }

    assert offsets()[0] == (6, 10, 4)
    table = ok(remote, "groups", "describe", group).stdout
    assert f"Group: {group}  State: Empty  Members: 0" in table
    row = next(line.split() for line in table.splitlines() if line.startswith(f"{topic} "))
    assert row[:5] == [topic, "0", "6", "10", "4"]
    (in_list,) = [
        g
        for g in json.loads(ok(remote, "groups", "list", "--format", "json").stdout)
        if g["group"] == group
    ]
    assert (in_list["topics"], in_list["lag"]) == ([topic], 4)

    dry = ok(remote, "groups", "reset-offsets", group, "--topic", topic, "--to-earliest")
    assert dry.stderr == "dry run: nothing changed; add --execute to apply\n"
    assert offsets()[0] == (6, 10, 4)
    ok(remote, "groups", "reset-offsets", group, "--topic", topic, "--to-earliest", "--execute")
    assert offsets()[0] == (0, 10, 10)
    again = ok(remote, "consume", topic, "--group", group, "--max-messages", "3")
    assert again.stdout.split() == ["r0", "r1", "r2"]

    moved = ok(
        remote,
        "groups",
        "reset-offsets",
        group,
        "--topic",
        topic,
        "--to-offset",
        "8",
        "--execute",
        "--format",
        "json",
    )
    shown = json.loads(moved.stdout)
    assert shown["dry_run"] is False
    assert {o["partition"]: (o["previous"], o["offset"]) for o in shown["offsets"]} == {
        0: (3, 8),
        1: (0, 0),
    }
    rest = ok(remote, "consume", topic, "--group", group, "--partition", "0", "--timeout-ms", "500")
    assert rest.stdout.split() == ["r8", "r9"]
    assert offsets() == {0: (10, 10, 0), 1: (0, 0, 0)}


def test_groups_delete_removes_the_group_and_its_offsets(remote) -> None:
    topic, group = fresh("deleted-group"), fresh("g")
    ok(remote, "topics", "create", topic)
    ok(remote, "produce", topic, stdin="a\nb\n")
    ok(remote, "consume", topic, "--group", group, "--from-beginning", "--max-messages", "1")
    ok(remote, "groups", "delete", group)
    one_line_error(run(remote, "groups", "describe", group), group)
    again = ok(
        remote, "consume", topic, "--group", group, "--from-beginning", "--max-messages", "2"
    )
    assert again.stdout.split() == ["a", "b"]  # no committed offset is left


def test_errors_are_one_line_with_the_embedded_store_s_exit_status(remote) -> None:
    topic, missing = fresh("errors"), fresh("missing")
    ok(remote, "topics", "create", topic)
    one_line_error(run(remote, "topics", "create", topic), topic, "already exists")
    assert run(remote, "topics", "create", topic, "--if-not-exists").returncode == 0
    # a missing topic is told in the embedded store's words, whatever the store
    unknown = (
        f"millstream: error: unknown topic '{missing}'; create it with "
        f"`millstream topics create {missing} --partitions N`\n"
    )
    for command in (
        ("consume", missing, "--timeout-ms", "500"),
        ("consume", missing, "--group", fresh("g"), "--timeout-ms", "500"),
        ("produce", missing),
        ("topics", "describe", missing),
    ):
        refused = run(remote, *command, stdin="x\n")
        assert (refused.returncode, refused.stderr) == (1, unknown), command
    # reading a topic that is not there does not create it (both brokers auto-create topics
    # for clients that ask; the command line does not ask)
    assert missing not in listed(remote)


def test_a_topics_codec_is_kept_and_read_by_other_processes(remote) -> None:
    # our broker keeps `codec` with the topic, Kafka beside it: either way the processes
    # after the one that made the topic show it and decode with it
    topic = fresh("texts")
    created = ok(remote, "topics", "create", topic, "--config", "codec=text")
    assert created.stdout.strip() == f"created topic {topic}: 1 partition, codec text"
    assert listed(remote)[topic]["codec"] == "text"
    ok(remote, "produce", topic, stdin="plain words\n{not json\n")
    consumed = ok(
        remote, "consume", topic, "--from-beginning", "--format", "json", "--timeout-ms", "500"
    )
    assert [json.loads(line)["value"] for line in consumed.stdout.splitlines()] == [
        "plain words",
        "{not json",
    ]
    ok(remote, "topics", "alter", topic, "--delete-config", "codec")
    assert listed(remote)[topic]["codec"] == "json"
    refused = run(remote, "topics", "create", fresh("bad"), "--config", "codec=nope")
    one_line_error(refused, "codec=nope")


def test_consume_from_an_offset_past_the_end_says_where_it_starts(remote) -> None:
    topic = fresh("past-end")
    ok(remote, "topics", "create", topic)
    ok(remote, "produce", topic, stdin="a\nb\nc\n")
    result = ok(
        remote, "consume", topic, "--partition", "0", "--offset", "50", "--timeout-ms", "300"
    )
    assert result.stdout == ""
    assert result.stderr == (
        f"offset 50 is past the end of {topic}-0 (latest 3); starting at 3, waiting for new "
        "records\n"
    )


def test_topics_describe_takes_each_configs_source_from_the_store(remote) -> None:
    topic = fresh("overrides")
    week = "604800000"  # retention.ms set to the value it has by default on both stores
    ok(remote, "topics", "create", topic, "--config", f"retention.ms={week}")

    def sources() -> dict[str, tuple[str, str]]:
        text = ok(remote, "topics", "describe", topic).stdout
        rows = [line.split() for line in text.splitlines()]
        table = rows[rows.index(["CONFIG", "VALUE", "SOURCE"]) + 1 :]
        return {row[0]: (row[1], row[2]) for row in table if len(row) == 3}

    shown = sources()
    assert shown["retention.ms"] == (week, "topic")
    # a config millstream does not know (Kafka's) or has not been given (ours), untouched
    untouched = "min.insync.replicas" if remote.is_kafka else "cleanup.policy"
    assert shown[untouched][1] == "default"
    ok(remote, "topics", "alter", topic, "--delete-config", "retention.ms")
    after = sources()
    assert after["retention.ms"] == (week, "default")
    assert {source for _, source in after.values()} == {"default"}
