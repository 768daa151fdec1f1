"""``millstream offsets``: where each part of a pipeline stands, and rewinding one."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from millstream.core.cli._args import (
    HelpFormatter,
    UsageError,
    format_option,
    plugins_option,
    reset_target,
    reset_targets,
)
from millstream.core.cli._output import print_json, print_text, render_table
from millstream.core.client import connect
from millstream.core.errors import UnknownGroupError

from ..plan import Pipeline
from ..runtime import position_key
from ._common import load_files, pipeline_store

__all__ = ["register"]


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    offsets = commands.add_parser(
        "offsets",
        parents=parents,
        help="show a pipeline's committed offsets and lag; rewind a route or sink",
        description="Show, for each route and sink of a pipeline, its consumer group's "
        "committed offset, the partition's end offset and the lag between them, and each "
        "source's acknowledged position. With --reset NAME, move one route's or sink's offsets "
        "in all its input topics; the pipeline must not be running meanwhile.",
        epilog="examples:\n"
        "  millstream offsets examples/quickstart.yaml\n"
        "  millstream offsets examples/quickstart.yaml --reset clean --to-earliest\n"
        "  millstream offsets pipeline.yaml --reset console --to-datetime 2026-11-25T08:00",
        formatter_class=HelpFormatter,
    )
    offsets.add_argument("file", type=Path, metavar="FILE", help="the pipeline file")
    plugins_option(offsets)
    offsets.add_argument("--reset", metavar="NAME", help="the route or sink whose offsets to move")
    reset_targets(offsets.add_mutually_exclusive_group())
    format_option(offsets)
    offsets.set_defaults(run=_offsets)


def _parts(pipeline: Pipeline) -> list[tuple[str, str, str, tuple[str, ...]]]:
    """(kind, name, group, inputs) of every route and sink."""
    parts = [("route", r.name, r.group, r.inputs) for r in pipeline.routes.values()]
    parts += [("sink", s.name, s.group, s.inputs) for s in pipeline.sinks.values()]
    return parts


async def _offsets(args: argparse.Namespace) -> int:
    (pipeline,) = load_files(args, [args.file])
    url = pipeline_store(args, [pipeline])
    if args.reset is None and reset_target(args) is not None:
        raise UsageError("--to-earliest, --to-latest and --to-datetime go with --reset NAME")
    if args.reset is not None:
        return await _reset(args, pipeline, url)
    rows = []
    async with await connect(url, read_only=True, create=False) as conn:
        admin = conn.admin()
        for kind, name, group, inputs in _parts(pipeline):
            try:
                described = await admin.describe_group(group)
                committed = {(o.topic, o.partition): o.committed for o in described.offsets}
            except UnknownGroupError:
                committed = {}
            for topic in inputs:
                if topic not in await admin.list_topics():
                    continue
                for p in (await admin.describe_topic(topic)).partitions:
                    done = committed.get((topic, p.partition))
                    lag = None if done is None else max(0, p.latest_offset - done)
                    if done is None:
                        lag = p.latest_offset - p.earliest_offset
                    rows.append((kind, name, group, topic, p.partition, done, p.latest_offset, lag))
        positions = conn.positions()
        sources = []
        for source in pipeline.sources.values():
            stored = await positions.get(position_key(pipeline.name, source.name))
            sources.append((source.name, None if stored is None else orjson.loads(stored)))
    if args.format == "json":
        print_json(
            {
                "pipeline": pipeline.name,
                "parts": [
                    {
                        "kind": kind,
                        "name": name,
                        "group": group,
                        "topic": topic,
                        "partition": partition,
                        "committed": done,
                        "end_offset": end,
                        "lag": lag,
                    }
                    for kind, name, group, topic, partition, done, end, lag in rows
                ],
                "sources": [{"name": n, "position": pos} for n, pos in sources],
            }
        )
        return 0
    headers = ("PART", "NAME", "GROUP", "TOPIC", "PARTITION", "COMMITTED", "END-OFFSET", "LAG")
    print_text(render_table(headers, rows))
    if sources:
        print_text()
        shown = [(n, "-" if p is None else orjson.dumps(p).decode()) for n, p in sources]
        print_text(render_table(("SOURCE", "ACKNOWLEDGED-POSITION"), shown))
    return 0


async def _reset(args: argparse.Namespace, pipeline: Pipeline, url: str) -> int:
    parts = {name: (kind, group, inputs) for kind, name, group, inputs in _parts(pipeline)}
    if args.reset not in parts:
        known = ", ".join(sorted(parts)) or "none"
        raise UsageError(
            f"--reset {args.reset!r}: pipeline {pipeline.name!r} has no route or sink of that "
            f"name; known: {known}"
        )
    to = reset_target(args)
    if to is None:
        raise UsageError("--reset needs --to-earliest, --to-latest or --to-datetime ISO")
    kind, group, inputs = parts[args.reset]
    rows = []
    async with await connect(url, create=False) as conn:
        admin = conn.admin()
        for topic in inputs:
            before: dict[tuple[str, int], int | None] = {}
            try:
                described = await admin.describe_group(group)
                before = {(o.topic, o.partition): o.committed for o in described.offsets}
            except UnknownGroupError:
                pass
            after = await admin.reset_group_offsets(
                group, topic, to, by_timestamp=args.to_datetime is not None
            )
            for tp, offset in sorted(after.items()):
                rows.append((tp.topic, tp.partition, before.get((tp.topic, tp.partition)), offset))
    if args.format == "json":
        print_json(
            {
                "pipeline": pipeline.name,
                "part": args.reset,
                "group": group,
                "offsets": [
                    {"topic": t, "partition": p, "previous": prev, "offset": new}
                    for t, p, prev, new in rows
                ],
            }
        )
    else:
        print_text(f"{kind} {args.reset} (group {group}):")
        print_text(render_table(("TOPIC", "PARTITION", "PREVIOUS-OFFSET", "NEW-OFFSET"), rows))
    return 0
