"""``millstream topics``: create, list, describe, alter and delete topics."""

from __future__ import annotations

import argparse
from typing import Any

from ..client import TopicDescription
from ..errors import ConfigError, InvalidPartitionsError, TopicExistsError, UnknownTopicError
from ..log.config import CONFIG_KEYS
from ..plugins import get_registry
from ._args import (
    HelpFormatter,
    UsageError,
    format_option,
    key_value,
    open_store,
    positive_int,
    shown,
)
from ._output import human_bytes, print_json, print_text, render_table

__all__ = ["register"]


def register(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    area = commands.add_parser(
        "topics",
        help="create, list, describe, alter and delete topics",
        description="Create, list, describe, alter and delete topics.",
        epilog="example:\n  millstream topics create readings --partitions 3\n"
        "  millstream topics list",
        formatter_class=HelpFormatter,
    )
    actions = area.add_subparsers(dest="action", metavar="ACTION", required=True)

    create = actions.add_parser(
        "create",
        parents=parents,
        help="create a topic",
        description="Create a topic with N partitions and optional configs.",
        epilog="examples:\n"
        "  millstream topics create readings --partitions 3\n"
        "  millstream topics create logs --config codec=text --config retention.ms=86400000",
        formatter_class=HelpFormatter,
    )
    create.add_argument("name", metavar="NAME", help="topic name: [a-zA-Z0-9._-], 1-249 chars")
    create.add_argument(
        "--partitions", type=positive_int, default=1, metavar="N", help="partitions (default 1)"
    )
    create.add_argument(
        "--replication-factor",
        type=positive_int,
        default=None,
        metavar="R",
        help="replicas of each partition (default: the store's; the embedded store holds 1)",
    )
    create.add_argument(
        "--config",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a topic config, e.g. codec=text (repeatable; see docs/log.md)",
    )
    create.add_argument(
        "--if-not-exists", action="store_true", help="succeed quietly if the topic exists"
    )
    create.set_defaults(run=_create)

    listing = actions.add_parser(
        "list",
        parents=parents,
        help="list topics",
        description="List the topics with their partition count, records and size.",
        epilog="examples:\n  millstream topics list\n  millstream topics list --format json",
        formatter_class=HelpFormatter,
    )
    format_option(listing)
    listing.set_defaults(run=_list)

    describe = actions.add_parser(
        "describe",
        parents=parents,
        help="show a topic's partitions, offsets, sizes and configs",
        description="Show a topic's partitions (earliest and latest offsets, size) and configs.",
        epilog="examples:\n"
        "  millstream topics describe readings\n"
        "  millstream topics describe readings --format json",
        formatter_class=HelpFormatter,
    )
    describe.add_argument("name", metavar="NAME", help="the topic")
    format_option(describe)
    describe.set_defaults(run=_describe)

    alter = actions.add_parser(
        "alter",
        parents=parents,
        help="add partitions or change configs",
        description="Grow a topic's partition count and/or change its configs. Partitions "
        "only grow: keys already written stay where they are, new keys may land elsewhere.",
        epilog="examples:\n"
        "  millstream topics alter readings --partitions 6\n"
        "  millstream topics alter readings --config retention.ms=3600000\n"
        "  millstream topics alter readings --delete-config retention.ms",
        formatter_class=HelpFormatter,
    )
    alter.add_argument("name", metavar="NAME", help="the topic")
    alter.add_argument(
        "--partitions", type=positive_int, metavar="N", help="the new, larger partition count"
    )
    alter.add_argument(
        "--config",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a topic config (repeatable)",
    )
    alter.add_argument(
        "--delete-config",
        action="append",
        default=[],
        metavar="KEY",
        help="reset a topic config to its default (repeatable)",
    )
    alter.set_defaults(run=_alter)

    delete = actions.add_parser(
        "delete",
        parents=parents,
        help="delete a topic and its data",
        description="Delete a topic and all its records.",
        epilog="example:\n  millstream topics delete readings",
        formatter_class=HelpFormatter,
    )
    delete.add_argument("name", metavar="NAME", help="the topic")
    delete.add_argument("--if-exists", action="store_true", help="succeed quietly if it is absent")
    delete.set_defaults(run=_delete)


def _check_codec(config: dict[str, str | None]) -> None:
    """A ``codec`` must be one the loaded plugins provide (the log itself takes any name)."""
    codec = config.get("codec")
    if codec is not None:
        try:
            get_registry().codec(codec)
        except ConfigError as exc:
            raise ConfigError(f"--config codec={codec}: {exc.message}") from None


async def _create(args: argparse.Namespace) -> int:
    _check_codec(dict(args.config))
    async with await open_store(args, read_only=False, create=True) as conn, conn.admin() as admin:
        try:
            topic = await admin.create_topic(
                args.name,
                partitions=args.partitions,
                replication_factor=args.replication_factor,
                config=dict(args.config),
            )
        except TopicExistsError:
            if not args.if_not_exists:
                raise
            print_text(f"topic {args.name} already exists")
            return 0
    codec = topic.configs.get("codec", CONFIG_KEYS["codec"].default)
    print_text(f"created topic {topic.name}: {_partitions(len(topic.partitions))}, codec {codec}")
    return 0


async def _list(args: argparse.Namespace) -> int:
    async with await open_store(args, read_only=True) as conn, conn.admin() as admin:
        topics = [await admin.describe_topic(name) for name in await admin.list_topics()]
    if args.format == "json":
        print_json([_summary(topic) for topic in topics])
        return 0
    rows = [
        (
            topic.name,
            len(topic.partitions),
            _records(topic),
            human_bytes(_size(topic)),
            topic.configs.get("codec", "-"),
        )
        for topic in topics
    ]
    if not rows:
        print_text("no topics; create one with: millstream topics create NAME --partitions N")
        return 0
    print_text(render_table(("TOPIC", "PARTITIONS", "RECORDS", "SIZE", "CODEC"), rows))
    return 0


async def _describe(args: argparse.Namespace) -> int:
    async with await open_store(args, read_only=True) as conn, conn.admin() as admin:
        topic = await admin.describe_topic(args.name)
    if args.format == "json":
        print_json(_details(topic))
        return 0
    print_text(
        f"Topic: {topic.name}  Partitions: {len(topic.partitions)}  "
        f"ReplicationFactor: {topic.replication_factor}  Records: {_records(topic)}  "
        f"Size: {human_bytes(_size(topic))}"
    )
    print_text()
    print_text(
        render_table(
            ("PARTITION", "EARLIEST", "LATEST", "RECORDS", "SIZE", "SEGMENTS"),
            (
                (
                    p.partition,
                    p.earliest_offset,
                    p.latest_offset,
                    p.latest_offset - p.earliest_offset,
                    human_bytes(p.size_bytes),
                    p.segments,
                )
                for p in topic.partitions
            ),
        )
    )
    print_text()
    print_text(
        render_table(
            ("CONFIG", "VALUE", "SOURCE"),
            (
                (key, value, "topic" if key in topic.overrides else "default")
                for key, value in sorted(topic.configs.items())
            ),
        )
    )
    return 0


async def _alter(args: argparse.Namespace) -> int:
    config: dict[str, str | None] = dict(args.config)
    both = sorted(set(config) & set(args.delete_config))
    if both:
        raise UsageError(
            f"topics alter: {shown(both[0])} is both set (--config) and reset "
            "(--delete-config); give one of them"
        )
    config.update(dict.fromkeys(args.delete_config))
    _check_codec(config)
    if args.partitions is None and not config:
        raise UsageError(
            "topics alter: nothing to change; give --partitions, --config or --delete-config"
        )
    async with await open_store(args, read_only=False) as conn, conn.admin() as admin:
        if args.partitions is not None:
            _check_growth(args.name, (await admin.describe_topic(args.name)), args.partitions)
        topic = await admin.alter_topic(
            args.name, partitions=args.partitions, config=config or None
        )
    changes = [_partitions(len(topic.partitions))] if args.partitions is not None else []
    changes += [f"{key}={topic.configs.get(key, '-')}" for key in config]
    print_text(f"altered topic {topic.name}: {', '.join(changes)}")
    return 0


def _check_growth(name: str, topic: TopicDescription, partitions: int) -> None:
    """Refuse a partition count that does not grow the topic, as Kafka does, before anything
    of the command is changed."""
    current = len(topic.partitions)
    if partitions > current:
        return
    valid = f"partitions can only grow: give --partitions {current + 1} or more"
    if partitions == current:
        raise InvalidPartitionsError(f"topic {name!r} already has {current} partitions; {valid}")
    raise InvalidPartitionsError(
        f"topic {name!r} has {current} partitions, more than {partitions}; {valid}"
    )


async def _delete(args: argparse.Namespace) -> int:
    async with await open_store(args, read_only=False) as conn, conn.admin() as admin:
        try:
            await admin.delete_topic(args.name)
        except UnknownTopicError:
            if not args.if_exists:
                raise
            print_text(f"topic {args.name} does not exist")
            return 0
    print_text(f"deleted topic {args.name}")
    return 0


def _partitions(count: int) -> str:
    return "1 partition" if count == 1 else f"{count} partitions"


def _records(topic: TopicDescription) -> int:
    return sum(p.latest_offset - p.earliest_offset for p in topic.partitions)


def _size(topic: TopicDescription) -> int:
    return sum(p.size_bytes for p in topic.partitions)


def _summary(topic: TopicDescription) -> dict[str, Any]:
    return {
        "name": topic.name,
        "partitions": len(topic.partitions),
        "records": _records(topic),
        "size_bytes": _size(topic),
        "codec": topic.configs.get("codec"),
    }


def _details(topic: TopicDescription) -> dict[str, Any]:
    return {
        "name": topic.name,
        "replication_factor": topic.replication_factor,
        "internal": topic.internal,
        "partitions": [
            {
                "partition": p.partition,
                "earliest_offset": p.earliest_offset,
                "latest_offset": p.latest_offset,
                "records": p.latest_offset - p.earliest_offset,
                "size_bytes": p.size_bytes,
                "segments": p.segments,
                "leader": p.leader,
                "replicas": list(p.replicas),
            }
            for p in topic.partitions
        ],
        "configs": dict(sorted(topic.configs.items())),
    }
