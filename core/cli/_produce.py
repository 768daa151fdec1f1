"""``millstream produce``: one record per line of stdin, as fast as the log takes them.

Lines are read from stdin in large binary chunks by a reader thread (so a pipe or a terminal
never blocks the event loop), split in bulk, and handed to :meth:`Producer.send` one by one
without awaiting each acknowledgement. The producer is flushed every few megabytes, which bounds
what is held in memory, and once at the end. The deliveries of the lines sent since the last
flush are kept, in line order, so that when the store fails the error can say exactly up to which
line it had acknowledged.

A line is everything up to ``\\n``; only the ``\\n`` is removed (a ``\\r`` stays part of the
value). An empty line is a record with an empty value. A last line without ``\\n`` is a record.

On an error at line N (a line without the key separator, a record too large), the lines before
N are flushed and acknowledged, and nothing from line N on is sent: the message says so, so the
rest can be sent again with ``tail -n +N``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import sys
import threading
import time
from collections.abc import Callable

from ..client import Delivery, Producer
from ..client.partitioner import partition_for_key
from ..errors import InvalidPartitionsError, MillstreamError, StoreError
from ._args import (
    HelpFormatter,
    UsageError,
    as_bytes,
    boolean_property,
    header,
    key_value,
    non_negative_int,
    open_store,
    shown,
)

__all__ = ["register"]

CHUNK_BYTES = 1 << 20
"""How much of stdin one read asks for."""

FLUSH_BYTES = 16 << 20
"""Flush (wait for acknowledgements) after this many bytes, to bound what is held in memory."""

_PLACES_KEPT = 100_000
"""How many keys' partitions to remember."""

_PROPERTIES = ("parse.key", "key.separator")


def register(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    produce = commands.add_parser(
        "produce",
        parents=parents,
        help="write stdin to a topic, one record per line",
        description="Write stdin to a topic, one record per line (the newline removed). The "
        "bytes are stored as they are: produce does not check them against the topic's codec.\n"
        "If a line fails (no key separator, too large), the lines before it are written and "
        "acknowledged, and nothing from that line on is sent; the error names the line.",
        epilog="examples:\n"
        "  millstream produce readings < readings.jsonl\n"
        "  printf 'dev-1:{\"temp\": 21.5}\\n' | millstream produce readings --key-separator :\n"
        "  millstream produce readings --property parse.key=true --property key.separator=:",
        formatter_class=HelpFormatter,
    )
    produce.add_argument("topic", metavar="TOPIC", help="the topic to write to")
    produce.add_argument(
        "--key-separator",
        metavar="SEP",
        help="each line is KEY<SEP>VALUE, split at the first SEP; a line without SEP is an error",
    )
    produce.add_argument(
        "--partition",
        type=non_negative_int,
        metavar="P",
        help="write every record to partition P (default: by key, else sticky per batch)",
    )
    produce.add_argument(
        "--header",
        type=header,
        action="append",
        default=[],
        metavar="K=V",
        help="add this header to every record (repeatable)",
    )
    produce.add_argument(
        "--property",
        type=key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="Kafka console-producer property: parse.key=true, key.separator=SEP",
    )
    produce.set_defaults(run=_produce, interrupt_status=130)


def _key_separator(args: argparse.Namespace) -> bytes | None:
    props = dict(args.property)
    unknown = sorted(set(props) - set(_PROPERTIES))
    if unknown:
        raise UsageError(
            f"produce: unknown --property {shown(unknown[0])}; supported: {', '.join(_PROPERTIES)}"
        )
    parse_key = boolean_property(
        "produce: --property", "parse.key", props.get("parse.key", "false")
    )
    if args.key_separator is not None:
        separator = args.key_separator
    elif parse_key:
        separator = props.get("key.separator", "\t")
    else:
        return None
    if not separator:
        raise UsageError("produce: the key separator must not be empty")
    return as_bytes(separator)


class _LineError(MillstreamError):
    """A line that could not be sent; carries its 1-based number."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


async def _produce(args: argparse.Namespace) -> int:
    separator = _key_separator(args)
    headers = tuple(args.header)
    async with await open_store(args, read_only=False) as conn:
        async with conn.admin() as admin:
            topic = await admin.describe_topic(args.topic)
        if topic.internal:  # refused before stdin is read, not at its first line
            raise StoreError(
                f"topic {args.topic!r} is internal to the store; produce cannot write to it "
                "(`millstream groups reset-offsets` moves a group's offsets)"
            )
        if args.partition is not None and args.partition >= len(topic.partitions):
            raise InvalidPartitionsError(
                f"topic {args.topic!r} has partitions 0..{len(topic.partitions) - 1}; "
                f"--partition {args.partition} is out of range"
            )
        async with conn.producer(client_id="millstream-produce") as producer:
            writer = _LineWriter(
                producer, args.topic, separator, headers, args.partition, len(topic.partitions)
            )
            status = await writer.run(_StdinChunks(asyncio.get_running_loop()))
    return status


class _LineWriter:
    """Splits chunks of stdin into lines and sends each as a record."""

    def __init__(
        self,
        producer: Producer,
        topic: str,
        separator: bytes | None,
        headers: tuple[tuple[str, bytes], ...],
        partition: int | None,
        partitions: int,
    ) -> None:
        self.producer = producer
        self.topic = topic
        self.separator = separator
        self.headers = headers
        self.partition = partition
        self.partitions = partitions
        # key -> partition, as the producer would choose it (Kafka's murmur2): keys repeat, and
        # hashing each line's key in Python is a large share of the cost of a keyed line
        self.places: dict[bytes, int] = {}
        self.held: list[bytes] = []  # the start of a line whose newline has not arrived yet
        self.sent = 0  # lines handed to the producer; line numbers are 1-based, so sent + 1
        self.acknowledged = 0  # lines the store has acknowledged (at the last flush)
        # the deliveries of the lines sent since the last flush, one list per _send, in order
        self.unflushed: list[list[Delivery]] = []
        self.started = time.monotonic()
        self.progress = _Progress(topic)

    async def run(self, chunks: _StdinChunks) -> int:
        interrupted = False
        try:
            try:
                await self._send_all(chunks)
            except asyncio.CancelledError:
                # Ctrl-C: send the complete lines already read; an unfinished last line is not
                interrupted = True
                for chunk in chunks.ready():
                    self._take(chunk)
        except _LineError as exc:
            await self._flush()
            self.progress.clear()
            before = exc.line - 1
            if not before:
                raise MillstreamError(
                    f"line 1: {exc.reason}; nothing was written to {self.topic}"
                ) from None
            written = (
                f"the {before} lines before it were written"
                if before != 1
                else "the line before it was written"
            )
            raise MillstreamError(
                f"line {exc.line}: {exc.reason}; {written} to {self.topic}, nothing from line "
                f"{exc.line} on was sent (resend with: tail -n +{exc.line})"
            ) from None
        await self._flush()
        self.progress.clear()
        elapsed = time.monotonic() - self.started
        note = " (interrupted)" if interrupted else ""
        print(
            f"produced {self.sent} record{'' if self.sent == 1 else 's'} to {self.topic} in "
            f"{elapsed:.2f} s{note}",
            file=sys.stderr,
        )
        return 130 if interrupted else 0

    async def _flush(self) -> None:
        """Wait until every line sent so far is acknowledged; on a failure, say what is safe."""
        try:
            await self.producer.flush()
        except MillstreamError as exc:
            self.progress.clear()
            done, sent = await self._acknowledged_lines(), self.sent
            if done:
                what = (
                    f"lines 1 to {done} were acknowledged by the store, lines {done + 1} to "
                    f"{sent} may or may not have been written to {self.topic}"
                )
            else:
                what = f"none of the {sent} lines sent was acknowledged, some may have been written"
            raise MillstreamError(f"{exc}; {what}") from exc
        self.acknowledged = self.sent
        self.unflushed.clear()

    async def _acknowledged_lines(self) -> int:
        """How many lines, from the first on and without a gap, the store has acknowledged."""
        done = self.acknowledged
        for deliveries in self.unflushed:
            for delivery in deliveries:
                if not delivery.done():
                    return done
                try:
                    await delivery
                except Exception:  # refused: this line and those after it are not safe
                    return done
                done += 1
        return done

    async def _send_all(self, chunks: _StdinChunks) -> None:
        unflushed = 0
        while True:
            chunk = await chunks.next()
            if not chunk:
                break
            unflushed += self._take(chunk)
            if unflushed >= FLUSH_BYTES:
                await self._flush()
                unflushed = 0
            self.progress.show(self.sent)
        if self.held:
            self._send([b"".join(self.held)])

    def _take(self, chunk: bytes) -> int:
        """Send the lines that ``chunk`` completes; hold its unfinished end. Returns the bytes
        sent."""
        held = self.held
        if b"\n" not in chunk:
            held.append(chunk)
            return 0
        if held:
            held.append(chunk)
            chunk = b"".join(held)
            held.clear()
        lines = chunk.split(b"\n")
        rest = lines.pop()
        if rest:
            held.append(rest)
        self._send(lines)
        return len(chunk)

    def _send(self, lines: list[bytes]) -> None:
        send = self.producer.send
        topic, headers, partition = self.topic, self.headers, self.partition
        separator = self.separator
        deliveries: list[Delivery] = []
        self.unflushed.append(deliveries)
        keep = deliveries.append
        # The deliveries are kept until the next flush: a garbage collection every few hundred
        # sends would scan them again and again (a fifth of produce's time). Pause it for this
        # one chunk of lines; anything collectable is collected once it is back on.
        collecting = gc.isenabled()
        gc.disable()
        try:
            if separator is None:
                for line in lines:
                    keep(send(topic, line, None, headers, partition))
            else:
                places, count = self.places, self.partitions
                for line in lines:
                    key, found, value = line.partition(separator)
                    if not found:
                        raise _LineError(
                            self.sent + len(deliveries) + 1,
                            f"no key separator {_quoted(separator)} in {_preview(line)}",
                        )
                    place = partition
                    if place is None:
                        place = places.get(key)
                        if place is None:
                            if len(places) >= _PLACES_KEPT:
                                places.clear()
                            place = places[key] = partition_for_key(key, count)
                    keep(send(topic, value, key, headers, place))
        except _LineError:
            self.sent += len(deliveries)
            raise
        except MillstreamError as exc:
            self.sent += len(deliveries)
            raise _LineError(self.sent + 1, str(exc)) from exc
        finally:
            if collecting:
                gc.enable()
        self.sent += len(lines)


def _preview(line: bytes) -> str:
    text = line[:40].decode(errors="replace")
    return repr(text + "..." if len(line) > 40 else text)


def _quoted(data: bytes) -> str:
    return "'" + data.decode(errors="backslashreplace") + "'"


class _StdinChunks:
    """Chunks of stdin, read by a daemon thread so that a slow pipe never blocks the loop.

    The thread is a daemon so that a read blocked on a terminal never keeps the process alive
    after Ctrl-C. It reads at most ``_AHEAD`` chunks ahead of the sender.
    """

    _AHEAD = 4

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._queue: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
        self._room = threading.Semaphore(self._AHEAD)
        self._read = _stdin_reader()
        threading.Thread(target=self._run, name="millstream-stdin", daemon=True).start()

    async def next(self) -> bytes:
        """The next chunk; empty at the end of the input."""
        item = await self._queue.get()
        self._room.release()
        if isinstance(item, BaseException):
            raise item
        return item

    def ready(self) -> list[bytes]:
        """The chunks already read and not yet taken, without waiting."""
        chunks = []
        while not self._queue.empty():
            item = self._queue.get_nowait()
            self._room.release()
            if isinstance(item, bytes) and item:
                chunks.append(item)
        return chunks

    def _run(self) -> None:
        try:
            while True:
                self._room.acquire()
                chunk = self._read(CHUNK_BYTES)
                if not self._put(chunk) or not chunk:
                    return
        except Exception as exc:  # a failing read is raised in the event loop, by next()
            self._put(exc)

    def _put(self, item: bytes | BaseException) -> bool:
        """Hand ``item`` to the event loop; False when the loop has closed (nobody listens)."""
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:
            return False
        return True


def _stdin_reader() -> Callable[[int], bytes]:
    """A function reading up to n bytes of stdin, returning as soon as some are there."""
    if sys.stdin is None:
        return lambda size: b""
    stream = sys.stdin.buffer
    try:
        fd = stream.fileno()
    except (OSError, ValueError, AttributeError):
        return stream.read1  # type: ignore[union-attr]  # a stand-in stdin (tests, embedding)
    return lambda size: os.read(fd, size)


class _Progress:
    """A progress line on stderr, only when stderr is a terminal."""

    def __init__(self, topic: str) -> None:
        self.topic = topic
        self.enabled = sys.stderr.isatty()
        self.last = time.monotonic()
        self.shown = False

    def show(self, sent: int) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self.last < 0.5:
            return
        self.last = now
        self.shown = True
        sys.stderr.write(f"\rsent {sent} records to {self.topic}...")
        sys.stderr.flush()

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False
