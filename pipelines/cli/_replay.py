"""``millstream replay``: send dead letters back through a route."""

from __future__ import annotations

import argparse
from collections.abc import Container
from pathlib import Path

from millstream.core.cli._args import HelpFormatter, UsageError, plugins_option
from millstream.core.cli._output import print_text
from millstream.core.client import connect
from millstream.core.record import StoredRecord, TopicPartition

from ..runtime import Stats, strip_dead_letter_headers
from ..runtime.context import RunContext
from ..runtime.route import RouteWorker
from ._common import load_files, pipeline_store, registry_of

__all__ = ["register"]


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    replay = commands.add_parser(
        "replay",
        parents=parents,
        help="send dead letters back through a route",
        description="Read the dead letters of DEAD_TOPIC that this pipeline wrote, as far as "
        "the topic's end when the command starts, and run each, as it was first read (its "
        "original topic, codec and headers), through the route named by --to; its outputs go "
        "where the route's go, and what fails again becomes a new dead letter. Progress is "
        "committed in the group '<pipeline>.replay.<route>', so running it again replays only "
        "newer dead letters; --from-beginning replays them all again.",
        epilog="examples:\n"
        "  millstream replay dead --to clean --pipeline examples/quickstart.yaml\n"
        "  millstream replay dead --to clean --pipeline quickstart.yaml --from-beginning",
        formatter_class=HelpFormatter,
    )
    replay.add_argument("dead_topic", metavar="DEAD_TOPIC", help="the dead-letter topic")
    replay.add_argument("--to", required=True, metavar="ROUTE", help="the route to run them by")
    replay.add_argument(
        "--pipeline",
        required=True,
        type=Path,
        metavar="FILE",
        help="the pipeline file that has the route",
    )
    replay.add_argument(
        "--from-beginning",
        action="store_true",
        help="replay every dead letter, not only those not replayed yet",
    )
    plugins_option(replay)
    replay.set_defaults(run=_replay)


def _original(record: StoredRecord, known: Container[str], fallback: str) -> StoredRecord:
    """The record as it was before it failed: its first topic, partition, offset, headers.

    A dead letter from a topic the pipeline does not declare (or from a source) is read as a
    record of ``fallback``, the route's first input."""
    headers = dict(record.headers)
    topic = (headers.get("millstream.topic") or b"").decode()
    if topic not in known:
        topic = fallback
    try:
        partition = int(headers.get("millstream.partition") or b"-1")
        offset = int(headers.get("millstream.offset") or b"-1")
    except ValueError:
        partition = offset = -1
    return StoredRecord(
        topic,
        partition,
        offset,
        record.timestamp,
        record.key,
        record.value,
        strip_dead_letter_headers(record.headers),
    )


async def _replay(args: argparse.Namespace) -> int:
    (pipeline,) = load_files(args, [args.pipeline])
    route = pipeline.routes.get(args.to)
    if route is None:
        known = ", ".join(sorted(pipeline.routes)) or "none"
        raise UsageError(
            f"--to {args.to!r}: pipeline {pipeline.name!r} has no such route; known: {known}"
        )
    registry = registry_of(args)
    group = f"{pipeline.name}.replay.{route.name}"
    replayed = skipped = 0
    stats = Stats()
    async with await connect(pipeline_store(args, [pipeline]), create=False) as conn:
        admin = conn.admin()
        described = await admin.describe_topic(args.dead_topic)
        ends = {
            TopicPartition(args.dead_topic, p.partition): p.latest_offset
            for p in described.partitions
        }
        codecs = {t.name: registry.codec(t.codec) for t in pipeline.topics.values()}
        async with conn.producer() as producer:
            ctx = RunContext(pipeline, conn, producer, codecs, stats)
            worker = RouteWorker(ctx, route, stats.add(pipeline.name, "route", route.name), 0)
            reader = conn.consumer(group=group, auto_offset_reset="earliest")
            try:
                reader.assign(ends)
                for tp in ends:
                    committed = await reader.committed(tp)
                    if args.from_beginning or committed is None:
                        await reader.seek_to_beginning(tp)
                left = {tp for tp, end in ends.items() if reader.position(tp) < end}
                while left:
                    got = await reader.getmany(timeout_ms=500)
                    batch: list[StoredRecord] = []
                    for tp, records in got.items():
                        for record in records:
                            if record.offset >= ends[tp]:
                                continue
                            mine = dict(record.headers).get("millstream.pipeline")
                            if mine is not None and mine.decode() != pipeline.name:
                                skipped += 1
                                continue
                            batch.append(_original(record, codecs, route.inputs[0]))
                        if reader.position(tp) >= ends[tp]:
                            left.discard(tp)
                    if batch:
                        for delivery in await worker.handle(batch):
                            await delivery.confirmed()
                        replayed += len(batch)
                    await reader.commit({tp: min(reader.position(tp), ends[tp]) for tp in ends})
            finally:
                await reader.close()
                await worker.processor.close()
                await worker.consumer.close()
    part = stats.parts[0]
    print_text(
        f"replayed {replayed} dead letter{'s' if replayed != 1 else ''} through route "
        f"{route.name}: {part.events_out} out, {part.dead} dead again"
        + (f"; skipped {skipped} of other pipelines" if skipped else "")
    )
    return 0
