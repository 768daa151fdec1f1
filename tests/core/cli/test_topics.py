"""``millstream topics``: create, list, describe, alter, delete."""

from __future__ import annotations


def test_create_then_list_shows_the_topic_with_its_partitions(cli) -> None:
    created = cli.ok("topics", "create", "readings", "--partitions", "3")
    assert "readings" in created.out and "3 partitions" in created.out

    listing = cli.ok("topics", "list")
    header, row = listing.lines
    assert header.split() == ["TOPIC", "PARTITIONS", "RECORDS", "SIZE", "CODEC"]
    assert row.split()[:3] == ["readings", "3", "0"]
    assert row.split()[-1] == "json"


def test_list_json_is_machine_readable_and_hides_internal_topics(cli) -> None:
    cli.ok("topics", "create", "b-topic", "--partitions", "2")
    cli.ok("topics", "create", "a-topic", "--config", "codec=text")
    cli.ok("produce", "a-topic", stdin="one\ntwo\n")
    cli.ok("consume", "a-topic", "--group", "g", "--from-beginning", "--timeout-ms", "200")

    topics = cli.ok("topics", "list", "--format", "json").json
    assert [t["name"] for t in topics] == ["a-topic", "b-topic"]
    assert topics[0]["records"] == 2 and topics[0]["codec"] == "text"
    assert topics[1]["partitions"] == 2


def test_list_on_an_empty_store_says_how_to_create_a_topic(cli) -> None:
    cli.ok("topics", "create", "x")
    cli.ok("topics", "delete", "x")
    assert "millstream topics create" in cli.ok("topics", "list").out
    assert cli.ok("topics", "list", "--format", "json").json == []


def test_describe_shows_offsets_sizes_and_configs(cli) -> None:
    cli.ok("topics", "create", "readings", "--partitions", "2", "--config", "retention.ms=60000")
    cli.ok("produce", "readings", "--partition", "1", stdin="a\nb\nc\n")

    text = cli.ok("topics", "describe", "readings").out
    assert "Topic: readings" in text and "Partitions: 2" in text
    rows = {line.split()[0]: line.split() for line in text.splitlines() if line.strip()}
    assert rows["1"][:4] == ["1", "0", "3", "3"]  # partition, earliest, latest, records
    assert rows["retention.ms"] == ["retention.ms", "60000", "topic"]
    assert rows["codec"] == ["codec", "json", "default"]

    described = cli.ok("topics", "describe", "readings", "--format", "json").json
    assert described["name"] == "readings"
    p1 = described["partitions"][1]
    assert (p1["earliest_offset"], p1["latest_offset"], p1["records"]) == (0, 3, 3)
    assert p1["size_bytes"] > 0
    assert described["configs"]["retention.ms"] == "60000"


def test_alter_grows_partitions_and_sets_and_resets_configs(cli) -> None:
    cli.ok("topics", "create", "readings", "--partitions", "2")
    out = cli.ok("topics", "alter", "readings", "--partitions", "4", "--config", "codec=text").out
    assert "4 partitions" in out and "codec=text" in out
    described = cli.ok("topics", "describe", "readings", "--format", "json").json
    assert len(described["partitions"]) == 4
    assert described["configs"]["codec"] == "text"

    cli.ok("topics", "alter", "readings", "--delete-config", "codec")
    assert (
        cli.ok("topics", "describe", "readings", "--format", "json").json["configs"]["codec"]
        == "json"
    )


def test_alter_cannot_shrink_partitions(cli) -> None:
    cli.ok("topics", "create", "readings", "--partitions", "4")
    result = cli("topics", "alter", "readings", "--partitions", "2")
    assert result.status == 1
    assert result.err.startswith("millstream: error: ")
    assert "4" in result.err and "2" in result.err
    assert len(cli.ok("topics", "describe", "readings", "--format", "json").json["partitions"]) == 4


def test_alter_to_the_same_partition_count_is_an_error_and_changes_nothing(cli) -> None:
    cli.ok("topics", "create", "readings", "--partitions", "3")
    result = cli("topics", "alter", "readings", "--partitions", "3", "--config", "codec=text")
    assert result.status == 1 and result.out == ""
    assert result.err == (
        "millstream: error: topic 'readings' already has 3 partitions; partitions can only "
        "grow: give --partitions 4 or more\n"
    )
    described = cli.ok("topics", "describe", "readings", "--format", "json").json
    assert len(described["partitions"]) == 3
    assert described["configs"]["codec"] == "json"  # the config part was not applied either


def test_alter_with_nothing_to_change_is_a_usage_error(cli) -> None:
    cli.ok("topics", "create", "readings")
    result = cli("topics", "alter", "readings")
    assert result.status == 2
    assert "--partitions" in result.err


def test_delete_removes_the_topic(cli) -> None:
    cli.ok("topics", "create", "readings")
    assert "deleted topic readings" in cli.ok("topics", "delete", "readings").out
    result = cli("topics", "describe", "readings")
    assert result.status == 1 and "readings" in result.err


def test_if_exists_and_if_not_exists_make_scripts_idempotent(cli) -> None:
    cli.ok("topics", "create", "readings", "--if-not-exists")
    cli.ok("topics", "create", "readings", "--if-not-exists")
    assert cli("topics", "create", "readings").status == 1
    cli.ok("topics", "delete", "readings", "--if-exists")
    cli.ok("topics", "delete", "readings", "--if-exists")
    assert cli("topics", "delete", "readings").status == 1


def test_errors_are_one_line_and_name_the_thing(cli) -> None:
    cli.ok("topics", "create", "readings")
    cases = {
        ("topics", "create", "readings"): "readings",
        ("topics", "create", "bad/name"): "bad/name",
        ("topics", "describe", "nope"): "nope",
        ("topics", "create", "t2", "--config", "retention.mss=5"): "retention.ms",
        ("topics", "create", "t3", "--config", "codec=xml"): "codec",
        ("topics", "create", "t4", "--replication-factor", "3"): "broker",
    }
    for args, named in cases.items():
        result = cli(*args)
        assert result.status == 1, args
        assert result.err.startswith("millstream: error: "), result.err
        assert result.err.count("\n") == 1, result.err
        assert named in result.err, (args, result.err)
        assert "Traceback" not in result.err


def test_bad_usage_exits_2(cli) -> None:
    assert cli("topics", "create", "x", "--partitions", "0").status == 2
    assert cli("topics", "create", "x", "--partitions", "many").status == 2
    assert cli("topics", "create", "x", "--config", "novalue").status == 2
    assert cli("topics", "frobnicate").status == 2
    assert cli("topics").status == 2


def test_describe_shows_a_config_set_to_its_default_value_as_set_on_the_topic(cli) -> None:
    cli.ok("topics", "create", "readings", "--config", "cleanup.policy=delete")

    def sources() -> dict[str, str]:
        text = cli.ok("topics", "describe", "readings").out
        rows = [line.split() for line in text.splitlines()]
        table = rows[rows.index(["CONFIG", "VALUE", "SOURCE"]) + 1 :]
        return {row[0]: row[2] for row in table if len(row) == 3}

    shown = sources()
    assert shown["cleanup.policy"] == "topic"  # set, though to the value it has anyway
    assert {key for key, source in shown.items() if source == "topic"} == {"cleanup.policy"}
    cli.ok("topics", "alter", "readings", "--delete-config", "cleanup.policy")
    assert set(sources().values()) == {"default"}
