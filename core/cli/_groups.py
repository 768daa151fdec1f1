"""``millstream groups``: list, describe and delete consumer groups, and move their offsets."""

from __future__ import annotations

import argparse
import sys

from ..client import Admin, GroupDescription
from ..errors import InvalidOffsetError, StoreError, UnknownGroupError
from ..record import TopicPartition
from ._args import (
    HelpFormatter,
    format_option,
    group_name,
    non_negative_int,
    open_store,
    reset_target,
    reset_targets,
)
from ._output import print_json, print_text, render_table

__all__ = ["register"]


def register(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    area = commands.add_parser(
        "groups",
        help="list, describe and delete consumer groups, reset their offsets",
        description="List, describe and delete consumer groups, and reset their offsets.",
        epilog="example:\n  millstream groups describe archiver",
        formatter_class=HelpFormatter,
    )
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)

    listing = actions.add_parser(
        "list",
        parents=parents,
        help="list consumer groups",
        description="List the consumer groups with their state, topics and total lag.",
        epilog="examples:\n  millstream groups list\n  millstream groups list --format json",
        formatter_class=HelpFormatter,
    )
    format_option(listing)
    listing.set_defaults(run=_list)

    describe = actions.add_parser(
        "describe",
        parents=parents,
        help="show a group's committed offsets and lag",
        description="Show a group's state, members and, per partition, its committed offset, "
        "the partition's end offset and the lag between them.",
        epilog="examples:\n"
        "  millstream groups describe archiver\n"
        "  millstream groups describe archiver --format json",
        formatter_class=HelpFormatter,
    )
    describe.add_argument("group", type=group_name, metavar="GROUP", help="the consumer group")
    format_option(describe)
    describe.set_defaults(run=_describe)

    delete = actions.add_parser(
        "delete",
        parents=parents,
        help="delete a group and its committed offsets",
        description="Delete a consumer group and its committed offsets, as Kafka's "
        "kafka-consumer-groups --delete does. The group must have no running consumers; a "
        "consumer that joins it later starts from its auto.offset.reset (--from-beginning).",
        epilog="example:\n  millstream groups delete archiver",
        formatter_class=HelpFormatter,
    )
    delete.add_argument("group", type=group_name, metavar="GROUP", help="the consumer group")
    delete.set_defaults(run=_delete)

    reset = actions.add_parser(
        "reset-offsets",
        parents=parents,
        help="move a group's offsets in a topic",
        description="Move a group's committed offsets in one topic and print the previous and "
        "new offsets. As with Kafka's tool, it is a dry run unless --execute is given: without "
        "it, the new offsets are shown and nothing changes. With --execute the group must have "
        "no running consumers.",
        epilog="examples:\n"
        "  millstream groups reset-offsets archiver --topic readings --to-earliest\n"
        "  millstream groups reset-offsets archiver --topic readings --to-earliest --execute\n"
        "  millstream groups reset-offsets archiver --topic readings "
        "--to-datetime 2024-05-01T12:00:00Z --execute",
        formatter_class=HelpFormatter,
    )
    reset.add_argument("group", type=group_name, metavar="GROUP", help="the consumer group")
    reset.add_argument("--topic", required=True, metavar="TOPIC", help="the topic to reset in")
    target = reset.add_mutually_exclusive_group(required=True)
    reset_targets(target)
    target.add_argument(
        "--to-offset",
        type=non_negative_int,
        metavar="N",
        help="to offset N in every partition (kept within each partition's range)",
    )
    mode = reset.add_mutually_exclusive_group()
    mode.add_argument("--execute", action="store_true", help="apply the change")
    mode.add_argument(
        "--dry-run",
        action="store_true",
        help="show the new offsets and change nothing (the default without --execute)",
    )
    format_option(reset)
    reset.set_defaults(run=_reset)


async def _list(args: argparse.Namespace) -> int:
    async with await open_store(args, read_only=True) as conn, conn.admin() as admin:
        groups = [await admin.describe_group(name) for name in await admin.list_groups()]
    if args.format == "json":
        print_json(
            [
                {
                    "group": g.group,
                    "state": g.state,
                    "members": len(g.members),
                    "topics": _topics(g),
                    "lag": _total_lag(g),
                }
                for g in groups
            ]
        )
        return 0
    if not groups:
        print_text("no consumer groups")
        return 0
    rows = [
        (g.group, g.state, len(g.members), ",".join(_topics(g)) or "-", _total_lag(g))
        for g in groups
    ]
    print_text(render_table(("GROUP", "STATE", "MEMBERS", "TOPICS", "LAG"), rows))
    return 0


async def _delete(args: argparse.Namespace) -> int:
    async with await open_store(args, read_only=False) as conn, conn.admin() as admin:
        await admin.delete_group(args.group)
    print_text(f"deleted group {args.group} and its committed offsets")
    return 0


async def _describe(args: argparse.Namespace) -> int:
    async with await open_store(args, read_only=True) as conn, conn.admin() as admin:
        group = await admin.describe_group(args.group)
    owners = {tp: m.member_id for m in group.members for tp in m.assignment}
    if args.format == "json":
        print_json(
            {
                "group": group.group,
                "state": group.state,
                "members": [
                    {
                        "member_id": m.member_id,
                        "client_id": m.client_id,
                        "assignment": [
                            {"topic": tp.topic, "partition": tp.partition} for tp in m.assignment
                        ],
                    }
                    for m in group.members
                ],
                "offsets": [
                    {
                        "topic": o.topic,
                        "partition": o.partition,
                        "committed": o.committed,
                        "end_offset": o.latest_offset,
                        "lag": o.lag,
                    }
                    for o in group.offsets
                ],
            }
        )
        return 0
    print_text(f"Group: {group.group}  State: {group.state}  Members: {len(group.members)}")
    print_text()
    rows = [
        (
            o.topic,
            o.partition,
            o.committed,
            o.latest_offset,
            o.lag,
            owners.get(TopicPartition(o.topic, o.partition)),
        )
        for o in sorted(group.offsets, key=lambda o: (o.topic, o.partition))
    ]
    headers = ("TOPIC", "PARTITION", "CURRENT-OFFSET", "LOG-END-OFFSET", "LAG", "CONSUMER-ID")
    print_text(render_table(headers, rows))
    return 0


async def _reset(args: argparse.Namespace) -> int:
    to = reset_target(args)
    assert to is not None  # argparse requires one target
    by_timestamp = args.to_datetime is not None
    execute = args.execute
    async with await open_store(args, read_only=not execute) as conn, conn.admin() as admin:
        before = await _committed(admin, args.group, args.topic)
        if execute:
            after = await admin.reset_group_offsets(
                args.group, args.topic, to, by_timestamp=by_timestamp
            )
        else:
            after = await _planned(admin, args.topic, to, by_timestamp)
    rows = [
        (tp.topic, tp.partition, before.get(tp), offset) for tp, offset in sorted(after.items())
    ]
    if args.format == "json":
        print_json(
            {
                "group": args.group,
                "dry_run": not execute,
                "offsets": [
                    {"topic": t, "partition": p, "previous": prev, "offset": new}
                    for t, p, prev, new in rows
                ],
            }
        )
    else:
        print_text(render_table(("TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"), rows))
    if not execute:
        print("dry run: nothing changed; add --execute to apply", file=sys.stderr)
    return 0


async def _committed(admin: Admin, group: str, topic: str) -> dict[TopicPartition, int | None]:
    try:
        description = await admin.describe_group(group)
    except UnknownGroupError:
        return {}
    return {
        TopicPartition(o.topic, o.partition): o.committed
        for o in description.offsets
        if o.topic == topic
    }


async def _planned(
    admin: Admin, topic: str, to: str | int, by_timestamp: bool
) -> dict[TopicPartition, int]:
    """The offsets a reset would set, worked out without changing anything."""
    description = await admin.describe_topic(topic)
    if description.internal:
        raise StoreError(f"topic {topic!r} is internal; groups do not consume it")
    planned = {}
    for p in description.partitions:
        tp = TopicPartition(topic, p.partition)
        if isinstance(to, str) or by_timestamp:
            planned[tp] = await admin.list_offsets(tp, to)
        elif to < 0:
            raise InvalidOffsetError(f"offset {to} is negative")
        else:
            planned[tp] = min(max(to, p.earliest_offset), p.latest_offset)
    return planned


def _topics(group: GroupDescription) -> list[str]:
    return sorted({o.topic for o in group.offsets})


def _total_lag(group: GroupDescription) -> int | None:
    lags = [o.lag for o in group.offsets if o.lag is not None]
    return sum(lags) if lags else None
