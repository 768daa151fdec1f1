"""``millstream groups``: list, describe, delete, reset-offsets."""

from __future__ import annotations

import pytest


@pytest.fixture
def group(cli) -> str:
    """Group ``g`` has read 6 of the 10 records in partition 0 of ``readings``."""
    cli.ok("topics", "create", "readings", "--partitions", "2")
    cli.ok("produce", "readings", "--partition", "0", stdin="".join(f"r{i}\n" for i in range(10)))
    cli.ok("consume", "readings", "--group", "g", "--from-beginning", "--max-messages", "6")
    return "g"


def offsets(cli, group: str) -> dict[int, dict]:
    described = cli.ok("groups", "describe", group, "--format", "json").json
    return {o["partition"]: o for o in described["offsets"] if o["topic"] == "readings"}


def test_list_shows_groups_with_their_lag(cli, group: str) -> None:
    header, row = cli.ok("groups", "list").lines
    assert header.split() == ["GROUP", "STATE", "MEMBERS", "TOPICS", "LAG"]
    assert row.split()[0] == "g" and row.split()[-2:] == ["readings", "4"]
    (listed,) = cli.ok("groups", "list", "--format", "json").json
    assert listed["group"] == "g" and listed["lag"] == 4 and listed["topics"] == ["readings"]


def test_describe_shows_committed_end_and_lag_per_partition(cli, group: str) -> None:
    text = cli.ok("groups", "describe", group).out
    assert "Group: g" in text
    row = next(line.split() for line in text.splitlines() if line.startswith("readings"))
    assert row[:5] == ["readings", "0", "6", "10", "4"]
    p0 = offsets(cli, group)[0]
    assert (p0["committed"], p0["end_offset"], p0["lag"]) == (6, 10, 4)


def test_describe_unknown_group_is_an_error_naming_it(cli, group: str) -> None:
    result = cli("groups", "describe", "nobody")
    assert result.status == 1 and "nobody" in result.err


def reset(cli, group: str, *args: str):
    """``groups reset-offsets GROUP --topic readings ARGS --execute``, which must succeed."""
    return cli.ok("groups", "reset-offsets", group, "--topic", "readings", *args, "--execute")


def test_reset_to_earliest_and_latest(cli, group: str) -> None:
    result = reset(cli, group, "--to-earliest")
    assert "NEW-OFFSET" in result.out and result.err == ""
    assert offsets(cli, group)[0]["committed"] == 0
    cli.ok("groups", "reset-offsets", group, "--topic", "readings", "--to-latest", "--execute")
    assert offsets(cli, group)[0]["committed"] == 10
    assert offsets(cli, group)[0]["lag"] == 0


def test_reset_to_offset_then_consume_resumes_there(cli, group: str) -> None:
    result = reset(cli, group, "--to-offset", "8", "--format", "json").json
    assert result["dry_run"] is False
    new = {o["partition"]: o for o in result["offsets"]}
    assert new[0]["previous"] == 6 and new[0]["offset"] == 8
    out = cli.ok("consume", "readings", "--group", group, "--partition", "0", "--timeout-ms", "200")
    assert out.lines == ["r8", "r9"]


def test_reset_to_datetime_in_the_past_goes_to_the_start(cli, group: str) -> None:
    reset(cli, group, "--to-datetime", "2001-01-01T00:00:00Z")
    assert offsets(cli, group)[0]["committed"] == 0
    reset(cli, group, "--to-datetime", "2999-01-01T00:00:00+02:00")
    assert offsets(cli, group)[0]["committed"] == 10
    reset(cli, group, "--to-datetime", "1960-01-01T00:00:00Z")  # before the epoch: the start
    assert offsets(cli, group)[0]["committed"] == 0


@pytest.mark.parametrize("flags", [(), ("--dry-run",)], ids=["default", "dry-run"])
def test_without_execute_it_shows_the_new_offsets_and_changes_nothing(
    cli, group: str, flags: tuple[str, ...]
) -> None:
    # Kafka's kafka-consumer-groups --reset-offsets is a dry run unless --execute is given
    result = cli.ok(
        "groups", "reset-offsets", group, "--topic", "readings", "--to-earliest", *flags
    )
    assert result.err == "dry run: nothing changed; add --execute to apply\n"
    row = next(line.split() for line in result.lines if line.startswith("readings"))
    assert row == ["readings", "0", "6", "0"]
    assert offsets(cli, group)[0]["committed"] == 6

    as_json = cli.ok(
        "groups",
        "reset-offsets",
        group,
        "--topic",
        "readings",
        "--to-offset",
        "2",
        "--format",
        "json",
        *flags,
    )
    assert as_json.json["dry_run"] is True  # stdout is the JSON alone; the note is on stderr
    assert {o["partition"]: o["offset"] for o in as_json.json["offsets"]} == {0: 2, 1: 0}
    assert offsets(cli, group)[0]["committed"] == 6
    out = cli.ok("consume", "readings", "--group", group, "--partition", "0", "--timeout-ms", "200")
    assert out.lines == ["r6", "r7", "r8", "r9"]


def test_reset_needs_exactly_one_target(cli, group: str) -> None:
    assert cli("groups", "reset-offsets", group, "--topic", "readings").status == 2
    assert (
        cli(
            "groups", "reset-offsets", group, "--topic", "readings", "--to-earliest", "--to-latest"
        ).status
        == 2
    )
    assert (
        cli(
            "groups", "reset-offsets", group, "--topic", "readings", "--to-datetime", "yesterday"
        ).status
        == 2
    )
    assert (
        cli(
            "groups",
            "reset-offsets",
            group,
            "--topic",
            "readings",
            "--to-earliest",
            "--execute",
            "--dry-run",
        ).status
        == 2
    )


@pytest.mark.parametrize("flags", [(), ("--execute",)], ids=["dry-run", "execute"])
def test_reset_in_unknown_or_internal_topic_is_an_error(
    cli, group: str, flags: tuple[str, ...]
) -> None:
    result = cli("groups", "reset-offsets", group, "--topic", "nope", "--to-earliest", *flags)
    assert result.status == 1 and "nope" in result.err
    result = cli(
        "groups", "reset-offsets", group, "--topic", "__consumer_offsets", "--to-earliest", *flags
    )
    assert result.status == 1 and "__consumer_offsets" in result.err and "internal" in result.err


def test_no_groups(cli) -> None:
    cli.ok("topics", "create", "readings")
    assert "no consumer groups" in cli.ok("groups", "list").out
    assert cli.ok("groups", "list", "--format", "json").json == []


def test_delete_removes_the_group_and_its_offsets(cli, group: str) -> None:
    deleted = cli.ok("groups", "delete", group)
    assert deleted.out.strip() == "deleted group g and its committed offsets"
    assert cli.ok("groups", "list", "--format", "json").json == []
    gone = cli("groups", "delete", group)
    assert gone.status == 1 and gone.out == ""
    assert gone.err.strip().splitlines() == [gone.err.strip()] and "'g'" in gone.err
