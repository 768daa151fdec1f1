"""``millstream consume``: print a topic's records to stdout.

Where it starts, per partition:

- ``--partition P --offset O``: at O (or ``earliest``/``latest``);
- with ``--group``: at the group's committed offset; where the group has none, at the beginning
  with ``--from-beginning``, else at the end (Kafka's console consumer does the same);
- without ``--group``: at the beginning with ``--from-beginning``, else at the end.

With ``--group``, each batch of records is written and stdout flushed before its offsets are
committed, so the group's offsets are exactly what was printed. Where the group had no offset,
its starting position is committed at once (Kafka's console consumer does so by auto-commit),
so what is written while it is away is read on its next run. Without ``--group`` the store is
opened read-only and may be owned by another process.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import sys
from collections.abc import Callable

import orjson

from ..client import Consumer, TopicDescription
from ..errors import InvalidPartitionsError, StoreError
from ..record import StoredRecord, TopicPartition
from ._args import (
    HelpFormatter,
    UsageError,
    as_bytes,
    boolean_property,
    group_name,
    key_value,
    non_negative_int,
    open_store,
    positive_int,
    shown,
)
from ._output import text_or_base64, write_stdout

__all__ = ["register"]

_PROPERTIES = {
    "print.key": "false",
    "print.value": "true",
    "print.timestamp": "false",
    "print.partition": "false",
    "print.offset": "false",
    "print.headers": "false",
    "key.separator": "\t",
    "headers.separator": ",",
    "null.literal": "null",
}


def register(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    consume = commands.add_parser(
        "consume",
        parents=parents,
        help="print a topic's records to stdout",
        description="Print a topic's records to stdout, one per line. Without --group it reads "
        "the store read-only (another process may be writing it) and starts at the end, or at "
        "the beginning with --from-beginning. With --group it resumes where the group left off "
        "and commits exactly what it printed.",
        epilog="examples:\n"
        "  millstream consume readings --from-beginning --max-messages 10\n"
        "  millstream consume readings --group archiver --from-beginning --timeout-ms 2000\n"
        "  millstream consume readings --partition 0 --offset 42 --format json\n"
        "  millstream consume readings --from-beginning --property print.key=true | head",
        formatter_class=HelpFormatter,
    )
    consume.add_argument("topic", metavar="TOPIC", help="the topic to read")
    consume.add_argument(
        "--group",
        type=group_name,
        metavar="G",
        help="read as consumer group G: resume at, and commit, its offsets",
    )
    consume.add_argument(
        "--from-beginning",
        action="store_true",
        help="start at the earliest record (with --group: only where G has no committed offset)",
    )
    consume.add_argument(
        "--partition", type=non_negative_int, metavar="P", help="read only partition P"
    )
    consume.add_argument(
        "--offset",
        type=_offset,
        metavar="O",
        help="start partition P at offset O, or at 'earliest' or 'latest' (needs --partition)",
    )
    consume.add_argument(
        "--max-messages", type=positive_int, metavar="N", help="exit after N records"
    )
    consume.add_argument(
        "--timeout-ms",
        type=non_negative_int,
        metavar="MS",
        help="exit after MS milliseconds without a new record (default: run until Ctrl-C)",
    )
    consume.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: the value as it is (default); json: one JSON object per record",
    )
    consume.add_argument(
        "--property",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Kafka console-consumer property for text output: print.key, print.timestamp, "
        "print.partition, print.offset, print.headers, print.value, key.separator, "
        "headers.separator, null.literal",
    )
    consume.set_defaults(run=_consume, interrupt_status=0)


def _offset(text: str) -> int | str:
    if text in ("earliest", "latest"):
        return text
    try:
        return non_negative_int(text)
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"{exc}; or 'earliest' or 'latest'") from None


def _check(args: argparse.Namespace) -> dict[str, str]:
    if args.offset is not None and args.partition is None:
        raise UsageError("consume: --offset needs --partition")
    if args.offset is not None and args.from_beginning:
        raise UsageError("consume: give --offset or --from-beginning, not both")
    props = dict(_PROPERTIES)
    for key, value in args.property:
        if key not in _PROPERTIES:
            raise UsageError(
                f"consume: unknown --property {shown(key)}; supported: {', '.join(_PROPERTIES)}"
            )
        if key.startswith("print."):
            boolean_property("consume: --property", key, value)
        props[key] = value
    return props


async def _consume(args: argparse.Namespace) -> int:
    props = _check(args)
    async with await open_store(args, read_only=args.group is None) as conn:
        async with conn.admin() as admin:
            topic = await admin.describe_topic(args.topic)
        if topic.internal and args.group is not None:
            raise StoreError(
                f"topic {args.topic!r} is internal to the store; a group cannot consume it (each "
                "commit would add records to it, to be read and committed again); read it "
                "without --group"
            )
        if args.partition is not None and args.partition >= len(topic.partitions):
            raise InvalidPartitionsError(
                f"topic {args.topic!r} has partitions 0..{len(topic.partitions) - 1}; "
                f"--partition {args.partition} is out of range"
            )
        consumer = conn.consumer(
            group=args.group,
            auto_offset_reset="earliest" if args.from_beginning else "latest",
            client_id="millstream-consume",
        )
        async with consumer:
            await _start(consumer, args, topic)
            if args.group is not None:
                await _hold_start(consumer, args.from_beginning)
            await _print_records(consumer, args, _formatter(args.format, props, topic))
    return 0


async def _start(consumer: Consumer, args: argparse.Namespace, topic: TopicDescription) -> None:
    if args.group is not None and args.partition is None:
        consumer.subscribe([args.topic])  # the group's offsets, else auto_offset_reset
        return
    if args.partition is not None:
        partitions = [TopicPartition(args.topic, args.partition)]
    else:
        partitions = [TopicPartition(args.topic, p.partition) for p in topic.partitions]
    consumer.assign(partitions)
    for tp in partitions:
        if args.offset == "earliest":
            await consumer.seek_to_beginning(tp)
        elif args.offset == "latest":
            await consumer.seek_to_end(tp)
        elif args.offset is not None:
            # clamped here, from the offsets just described: a network consumer clamps a seek
            # only at its first fetch, too late to say where it starts
            part = next(p for p in topic.partitions if p.partition == tp.partition)
            start = min(max(args.offset, part.earliest_offset), part.latest_offset)
            consumer.seek(tp, start)
            _say_where_an_offset_outside_the_log_starts(args.offset, start, tp)
        elif args.group is not None and (committed := await consumer.committed(tp)) is not None:
            consumer.seek(tp, committed)
        elif args.from_beginning:
            await consumer.seek_to_beginning(tp)
        else:
            await consumer.seek_to_end(tp)


def _say_where_an_offset_outside_the_log_starts(
    offset: int, start: int, tp: TopicPartition
) -> None:
    """A seek past the end or before the start of a partition lands there; say so on stderr,
    where it does not mix with the records."""
    where = f"{tp.topic}-{tp.partition}"
    if offset > start:
        note = (
            f"offset {offset} is past the end of {where} (latest {start}); starting at "
            f"{start}, waiting for new records"
        )
    elif offset < start:
        note = (
            f"offset {offset} is before the start of {where} (earliest {start}; older records "
            f"were deleted); starting at {start}"
        )
    else:
        return
    print(note, file=sys.stderr)


async def _hold_start(consumer: Consumer, from_beginning: bool) -> None:
    """Commit the starting position where the group has no offset yet, as Kafka's console
    consumer does (by auto-commit): records written while it is away are read next time."""
    missing = [
        tp
        for tp in sorted(await consumer.wait_for_assignment())
        if await consumer.committed(tp) is None
    ]
    if not missing:
        return
    if from_beginning:
        await consumer.seek_to_beginning(*missing)
    else:
        await consumer.seek_to_end(*missing)
    await _commit(consumer, {tp: consumer.position(tp) for tp in missing})


async def _print_records(
    consumer: Consumer,
    args: argparse.Namespace,
    render: Callable[[list[StoredRecord]], bytes | bytearray],
) -> None:
    sys.stdout.flush()
    loop = asyncio.get_running_loop()
    remaining: int | None = args.max_messages
    idle_ms: int | None = args.timeout_ms
    deadline = None if idle_ms is None else loop.time() + idle_ms / 1000
    while remaining is None or remaining > 0:
        wait_ms = 1000
        if deadline is not None:
            wait_ms = max(0, min(wait_ms, round((deadline - loop.time()) * 1000)))
        batches = await consumer.getmany(timeout_ms=wait_ms, max_records=remaining)
        printed: dict[TopicPartition, int] = {}
        records: list[StoredRecord] = []
        for tp, batch in batches.items():
            if remaining is not None and len(records) + len(batch) > remaining:
                batch = batch[: remaining - len(records)]
            if batch:
                records.extend(batch)
                printed[tp] = batch[-1].offset + 1
        if not records:
            if deadline is not None and loop.time() >= deadline:
                return
            continue
        write_stdout(render(records))
        if args.group is not None:
            await _commit(consumer, printed)
        if remaining is not None:
            remaining -= len(records)
        if idle_ms is not None:
            deadline = loop.time() + idle_ms / 1000


async def _commit(consumer: Consumer, offsets: dict[TopicPartition, int]) -> None:
    """Commit what was printed, even when Ctrl-C arrives meanwhile (then stop afterwards)."""
    commit = asyncio.ensure_future(consumer.commit(offsets))
    try:
        await asyncio.shield(commit)
    except asyncio.CancelledError:
        await commit
        raise


def _formatter(
    fmt: str, props: dict[str, str], topic: TopicDescription
) -> Callable[[list[StoredRecord]], bytes | bytearray]:
    if fmt == "json":
        return _json_lines
    null = as_bytes(props["null.literal"])
    if props == _PROPERTIES:

        def values_only(records: list[StoredRecord]) -> bytes:
            values = [null if r.value is None else r.value for r in records]
            values.append(b"")
            return b"\n".join(values)

        return values_only
    return _KafkaTextFormat(props, topic).render


class _KafkaTextFormat:
    """Kafka's DefaultMessageFormatter: the chosen fields, separated by ``key.separator``."""

    def __init__(self, props: dict[str, str], topic: TopicDescription) -> None:
        def on(name: str) -> bool:
            return boolean_property("consume: --property", name, props[name])

        self.timestamp_type = topic.configs.get("message.timestamp.type", "CreateTime")
        self.fields = [
            name
            for name in ("timestamp", "partition", "offset", "headers", "key", "value")
            if on(f"print.{name}")
        ]
        self.separator = as_bytes(props["key.separator"])
        self.headers_separator = as_bytes(props["headers.separator"])
        self.null = as_bytes(props["null.literal"])

    def render(self, records: list[StoredRecord]) -> bytes:
        lines = []
        for record in records:
            lines.append(self.separator.join([self._field(name, record) for name in self.fields]))
        lines.append(b"")
        return b"\n".join(lines)

    def _field(self, name: str, record: StoredRecord) -> bytes:
        if name == "value":
            return self.null if record.value is None else record.value
        if name == "key":
            return self.null if record.key is None else record.key
        if name == "timestamp":
            return f"{self.timestamp_type}:{record.timestamp}".encode()
        if name == "partition":
            return f"Partition:{record.partition}".encode()
        if name == "offset":
            return f"Offset:{record.offset}".encode()
        if not record.headers:
            return b"NO_HEADERS"
        return self.headers_separator.join(
            as_bytes(k) + b":" + (self.null if v is None else v) for k, v in record.headers
        )


def _json_lines(records: list[StoredRecord]) -> bytearray:
    """One JSON object per record and line; text where the bytes are UTF-8, else base64."""
    dumps = orjson.dumps
    # orjson's results are appended and dropped at once: holding many of them costs far more
    # (in memory management) than serialising them
    lines = bytearray()
    for record in records:
        key, value = record.key, record.value
        obj: dict[str, object] = {
            "topic": record.topic,
            "partition": record.partition,
            "offset": record.offset,
            "timestamp": record.timestamp,
            "key": None,
            "value": None,
            "headers": [_json_header(n, v) for n, v in record.headers] if record.headers else [],
        }
        if key is not None:
            try:
                obj["key"] = key.decode()
            except UnicodeDecodeError:
                obj["key"] = base64.b64encode(key).decode("ascii")
                obj["key_encoding"] = "base64"
        if value is not None:
            try:
                obj["value"] = value.decode()
            except UnicodeDecodeError:
                obj["value"] = base64.b64encode(value).decode("ascii")
                obj["value_encoding"] = "base64"
        lines += dumps(obj)
        lines += b"\n"
    return lines


def _json_header(name: str, value: bytes | None) -> dict[str, object]:
    if value is None:
        return {"key": name, "value": None}
    text, encoded = text_or_base64(value)
    if encoded:
        return {"key": name, "value": text, "value_encoding": "base64"}
    return {"key": name, "value": text}
