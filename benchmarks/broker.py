"""The broker: Kafka clients producing to and consuming from ``millstream broker``.

Each round starts ``millstream broker`` as a subprocess on a free port with a fresh data
directory, then runs the measuring functions against its bootstrap address. Those functions
take nothing but the address (and the topic and count), so the very same ones run against any
Kafka broker:

- **produce**: N messages of 100 bytes through a confluent-kafka (librdkafka) producer
  (``linger.ms=5``, ``batch.size=1048576``, ``acks=1``, no compression), to a topic of 1 and of
  6 partitions; timed from the first ``produce`` until ``flush`` returns.
- **consume**: a confluent-kafka consumer reading them back with ``assign`` from the beginning
  (a group id for the configuration only: no join, no offset commits), its queue large enough
  for the run; timed from its first messages (librdkafka spends a fixed 0.5 s on an offset-query
  timer before them, whatever the broker) until it holds N.
- **our client** (``millstream://HOST:PORT``): the same produce (``send`` per record,
  ``linger_ms=5``, ``acks=1``) and consume (``getmany_blocks``, assigned, no commits).
- **latency**: produce-to-consume at 1,000 messages/s, each message carrying the time it was
  sent, the consumer in the same process (librdkafka: a thread; ours: a task on the same loop).
- **the broker's cost**: its CPU time (user + sys from ``/proc/PID/stat``) as % of one core
  over each measured run, and its peak RSS during the run (``VmRSS`` sampled every 20 ms).

Baselines, measured in the same round, so that ratios can be compared on a noisy machine:

- for librdkafka's produce: the same producer loop with no broker (nothing listens on its
  bootstrap port; ``produce`` only queues), the client's own ceiling;
- for librdkafka's consume: ``consume()`` handing out messages the client had fetched before
  the clock started, again the client's own ceiling;
- for our client: the embedded store (``file:``, no network) appending the same records with
  ``Producer.send`` and reading them with ``getmany_blocks``;
- for latency: the round trip of 100 bytes over loopback TCP at the same 1,000 messages/s;
- and, in the notes, the raw TCP loopback rate of sending the same bytes (one socket, 1 MiB
  writes, a thread reading).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._harness import Result, median

PAYLOAD = b"m" * 100
PARTITIONS = (1, 6)
LATENCY_RATE = 1000
LATENCY_SECONDS = 3.0
LATENCY_WARMUP = 200
DEADLINE_S = 300.0

PRODUCE_TARGET = 500_000
CONSUME_TARGET = 1_000_000
OURS_PRODUCE_TARGET = 300_000
OURS_CONSUME_TARGET = 500_000
LATENCY_TARGET_MS = 10.0


# --- the broker under test --------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BrokerProcess:
    """``millstream broker`` on a free port with its own data directory."""

    def __init__(self, folder: Path) -> None:
        cli = Path(sys.executable).with_name("millstream")
        self.port = _free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log = open(folder / "broker.log", "wb")  # noqa: SIM115  # closed in stop()
        self.process = subprocess.Popen(
            [
                str(cli),
                "broker",
                f"--data-dir={folder / 'data'}",
                f"--listen={self.bootstrap}",
                "--no-auto-create-topics",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"millstream broker exited: {(folder / 'broker.log').read_text()}"
                )
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("millstream broker did not listen within 30 s") from None
                time.sleep(0.05)

    @property
    def pid(self) -> int:
        return self.process.pid

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()


@dataclass
class Usage:
    """A process's CPU (% of one core) and peak RSS (MB) over one measured run."""

    cpu_percent: float = 0.0
    peak_rss_mb: float = 0.0


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


@contextlib.contextmanager
def measuring(pid: int | None) -> Iterator[Usage]:
    """Measure process ``pid`` (nothing when None: a broker not ours) while the block runs."""
    usage = Usage()
    if pid is None:
        yield usage
        return
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                usage.peak_rss_mb = max(usage.peak_rss_mb, _rss_mb(pid))
            stop.wait(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    cpu0, t0 = _cpu_seconds(pid), time.perf_counter()
    sampler.start()
    try:
        yield usage
    finally:
        cpu1, t1 = _cpu_seconds(pid), time.perf_counter()
        stop.set()
        sampler.join()
        usage.cpu_percent = 100 * (cpu1 - cpu0) / (t1 - t0)


# --- measuring functions: a bootstrap address is all they know of the broker ------------------


def create_topic(
    bootstrap: str, topic: str, partitions: int, config: dict[str, str] | None = None
) -> None:
    """Create ``topic`` (with topic ``config``) with the Kafka admin API."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    new = NewTopic(topic, partitions, 1, config=config or {})
    futures = admin.create_topics([new], operation_timeout=30)
    futures[topic].result(30)


def confluent_produce(bootstrap: str, topic: str, n: int) -> float:
    """Messages/s of a librdkafka producer sending ``n`` messages of 100 bytes."""
    from confluent_kafka import KafkaException, Producer

    failures: list[str] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "linger.ms": 5,
            "batch.size": 1_048_576,
            "acks": 1,
            "compression.type": "none",
            "queue.buffering.max.messages": 2_000_000,
            "queue.buffering.max.kbytes": 2_097_151,
            "error_cb": lambda err: failures.append(str(err)),
        }
    )
    producer.list_topics(topic, timeout=30)  # metadata before the clock starts
    produce, poll = producer.produce, producer.poll
    start = time.perf_counter()
    for i in range(n):
        try:
            produce(topic, PAYLOAD)
        except BufferError:
            poll(0.005)
            produce(topic, PAYLOAD)
        if i % 10_000 == 0:
            poll(0)
    left = producer.flush(DEADLINE_S)
    elapsed = time.perf_counter() - start
    if left:
        raise KafkaException(f"{left} messages not delivered: {failures[:3]}")
    return n / elapsed


def confluent_consume(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    """Messages/s of a librdkafka consumer reading ``n`` messages back (assigned, no commits)."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-assigned",  # required by the client; assign() never joins it
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "enable.partition.eof": False,
            # room for the whole run in the client's queue; without it a consumer that falls
            # behind its fetches stops fetching for fetch.queue.backoff.ms (1 s by default)
            "queued.min.messages": 1_000_000,
            "queued.max.messages.kbytes": 1_048_576,
            "fetch.queue.backoff.ms": 10,
        }
    )
    try:
        got = 0
        consume = consumer.consume
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        deadline = time.perf_counter() + DEADLINE_S
        start = 0.0
        counted = 0
        while got < n and time.perf_counter() < deadline:
            messages = consume(min(10_000, n - got), 1.0)
            if messages and messages[-1].error() is not None:
                raise KafkaException(messages[-1].error())
            if not start and messages:
                # the clock starts at the first messages: before them the client spends a fixed
                # 0.5 s on its own offset-query timer, whatever the broker
                start = time.perf_counter()
                counted = -len(messages)
            got += len(messages)
            counted += len(messages)
        elapsed = time.perf_counter() - start
    finally:
        consumer.close()
    if got != n:
        raise RuntimeError(f"consumed {got} messages of {topic}, expected {n}")
    return counted / elapsed


async def _ours_produce(bootstrap: str, topic: str, n: int) -> float:
    from millstream.core.client import connect
    from millstream.core.client.network.producer import BufferFullError

    async with await connect(f"millstream://{bootstrap}") as conn:
        producer = conn.producer(  # type: ignore[call-arg]
            linger_ms=5, batch_bytes=1_048_576, acks=1, idempotence=False
        )
        await producer.send(topic, PAYLOAD)  # metadata and connection before the clock starts
        send = producer.send
        marks: collections.deque[Any] = collections.deque()  # every 20,000th delivery
        start = time.perf_counter()
        for i in range(n - 1):
            while True:
                try:
                    delivery = send(topic, PAYLOAD)
                    break
                except BufferFullError:  # its buffer is full: wait as an application would
                    await (marks.popleft() if marks else producer.flush())
            if i % 20_000 == 0:
                marks.append(delivery)
                await asyncio.sleep(0)  # let the sender run, as a live application would
        await producer.flush()
        elapsed = time.perf_counter() - start
        await producer.close()
    return n / elapsed


def ours_produce(bootstrap: str, topic: str, n: int) -> float:
    """Messages/s of our network producer sending ``n`` messages of 100 bytes."""
    return asyncio.run(_ours_produce(bootstrap, topic, n))


async def _ours_consume(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    from millstream.core.client import connect
    from millstream.core.record import TopicPartition

    async with await connect(f"millstream://{bootstrap}") as conn:
        consumer = conn.consumer()
        tps = [TopicPartition(topic, p) for p in range(partitions)]
        got = 0
        start = time.perf_counter()
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = start + DEADLINE_S
        while got < n and time.perf_counter() < deadline:
            blocks = await consumer.getmany_blocks(timeout_ms=1000)
            for block in blocks.values():
                got += len(block)
        elapsed = time.perf_counter() - start
        await consumer.close()
    if got != n:
        raise RuntimeError(f"consumed {got} messages of {topic}, expected {n}")
    return n / elapsed


def ours_consume(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    """Messages/s of our network consumer reading ``n`` messages back (getmany_blocks)."""
    return asyncio.run(_ours_consume(bootstrap, topic, partitions, n))


def _stamped() -> bytes:
    return struct.pack(">q", time.perf_counter_ns()) + PAYLOAD[8:]


def _latency_ms(value: bytes) -> float:
    return (time.perf_counter_ns() - struct.unpack_from(">q", value)[0]) / 1e6


def confluent_latency(bootstrap: str, topic: str) -> list[float]:
    """Produce-to-consume latencies (ms) at 1,000 messages/s through librdkafka."""
    from confluent_kafka import OFFSET_END, Consumer, Producer, TopicPartition

    count = int(LATENCY_RATE * LATENCY_SECONDS)
    samples: list[float] = []
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-latency",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_END)])
    done = threading.Event()

    def consume() -> None:
        while not done.is_set() and len(samples) < count:
            message = consumer.poll(0.05)  # consume(n) would wait for n messages
            if message is not None and message.error() is None:
                samples.append(_latency_ms(message.value()))

    reader = threading.Thread(target=consume, daemon=True)
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 1, "acks": 1})
    producer.list_topics(topic, timeout=30)
    reader.start()
    time.sleep(1.0)  # the consumer's first fetch is in place
    next_at = time.perf_counter()
    for _ in range(count):
        producer.produce(topic, _stamped())
        producer.poll(0)
        next_at += 1 / LATENCY_RATE
        time.sleep(max(0.0, next_at - time.perf_counter()))
    producer.flush(30)
    reader.join(10)
    done.set()
    reader.join()
    consumer.close()
    if len(samples) < count:
        raise RuntimeError(f"latency run received {len(samples)} of {count} messages")
    return samples[LATENCY_WARMUP:]


async def _ours_latency(bootstrap: str, topic: str) -> list[float]:
    from millstream.core.client import connect
    from millstream.core.record import TopicPartition

    count = int(LATENCY_RATE * LATENCY_SECONDS)
    samples: list[float] = []
    async with await connect(f"millstream://{bootstrap}") as conn:
        producer = conn.producer(acks=1, idempotence=False)  # type: ignore[call-arg]
        consumer = conn.consumer()
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_end(tp)

        async def consume() -> None:
            while len(samples) < count:
                batches = await consumer.getmany(timeout_ms=100)
                for records in batches.values():
                    samples.extend(_latency_ms(r.value) for r in records)  # type: ignore[arg-type]

        reader = asyncio.ensure_future(consume())
        await asyncio.sleep(1.0)
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        for _ in range(count):
            producer.send(topic, _stamped())
            next_at += 1 / LATENCY_RATE
            await asyncio.sleep(max(0.0, next_at - loop.time()))
        await producer.flush()
        await asyncio.wait_for(reader, 10)
        await producer.close()
        await consumer.close()
    return samples[LATENCY_WARMUP:]


def ours_latency(bootstrap: str, topic: str) -> list[float]:
    """Produce-to-consume latencies (ms) at 1,000 messages/s through our network client."""
    return asyncio.run(_ours_latency(bootstrap, topic))


# --- baselines ---------------------------------------------------------------------------------


def tcp_rate(n: int) -> float:
    """Messages/s of sending ``n`` × 100 bytes over one loopback TCP connection."""
    total = n * len(PAYLOAD)
    chunk = memoryview(PAYLOAD * 10_486)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        received = [0]

        def drain() -> None:
            conn, _ = listener.accept()
            with conn:
                buffer = bytearray(1 << 20)
                while received[0] < total:
                    got = conn.recv_into(buffer)
                    if not got:
                        return
                    received[0] += got

        reader = threading.Thread(target=drain)
        reader.start()
        with socket.create_connection(listener.getsockname()) as sender:
            start = time.perf_counter()
            sent = 0
            while sent < total:
                piece = chunk[: min(len(chunk), total - sent)]
                sender.sendall(piece)
                sent += len(piece)
            reader.join()
            elapsed = time.perf_counter() - start
    return n / elapsed


def tcp_round_trips() -> list[float]:
    """Round trips (ms) of 100 bytes over loopback TCP at 1,000 messages/s."""
    count = int(LATENCY_RATE * LATENCY_SECONDS)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def echo() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                while data := conn.recv(4096):
                    conn.sendall(data)

        server = threading.Thread(target=echo, daemon=True)
        server.start()
        samples = []
        with socket.create_connection(listener.getsockname()) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            next_at = time.perf_counter()
            for _ in range(count):
                start = time.perf_counter()
                client.sendall(PAYLOAD)
                got = 0
                while got < len(PAYLOAD):
                    got += len(client.recv(4096))
                samples.append((time.perf_counter() - start) * 1000)
                next_at += 1 / LATENCY_RATE
                time.sleep(max(0.0, next_at - time.perf_counter()))
        server.join(5)
    return samples[LATENCY_WARMUP:]


def confluent_produce_alone(n: int) -> float:
    """Messages/s of the same librdkafka producer loop with no broker at all (nothing listens
    on its bootstrap port): what the client itself costs, the ceiling of the produce rows."""
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": f"127.0.0.1:{_free_port()}",
            "linger.ms": 5,
            "batch.size": 1_048_576,
            "acks": 1,
            "queue.buffering.max.messages": max(2_000_000, n),
            "queue.buffering.max.kbytes": 2_097_151,
            "log_level": 0,
            "error_cb": lambda err: None,
        }
    )
    produce, poll = producer.produce, producer.poll
    start = time.perf_counter()
    for i in range(n):
        produce("nowhere", PAYLOAD)
        if i % 10_000 == 0:
            poll(0)
    elapsed = time.perf_counter() - start
    producer.purge()
    producer.flush(0)
    return n / elapsed


def confluent_consume_queued(bootstrap: str, topic: str, partitions: int, n: int) -> float:
    """Messages/s of consume() handing out messages librdkafka fetched before the clock
    started: what the client itself costs, the ceiling of the consume rows."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-queued",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "queued.min.messages": max(1_000_000, n),
            "queued.max.messages.kbytes": 2_097_151,
            "fetch.queue.backoff.ms": 10,
        }
    )
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        got = len(consumer.consume(1, 30.0))
        time.sleep(max(2.0, n / 250_000))  # the client fetches the rest meanwhile
        consume = consumer.consume
        start = time.perf_counter()
        while got < n:
            messages = consume(min(10_000, n - got), 1.0)
            got += len(messages)
        elapsed = time.perf_counter() - start
    finally:
        consumer.close()
    return (n - 1) / elapsed


def embedded_rates(n: int) -> tuple[float, float]:
    """Records/s of the embedded store (``file:``, no network) appending the same records with
    Producer.send and reading them back with getmany_blocks: what our client does without
    the broker, the baseline of its rows."""
    from . import embedded

    work = Path(tempfile.mkdtemp(prefix="millstream-bench-embedded-"))
    try:
        append = asyncio.run(embedded._produce(work / "store", n))
        read = asyncio.run(embedded._consume(work / "store", n, blocks=True))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return append, read


# --- what the profiles showed (py-spy of the broker and of our client during these runs) -------

PRODUCE_PROFILE = (
    "The client is the limit here, not the broker: the baseline is the same loop with no broker "
    "at all, and the broker uses well under a core. py-spy of the broker: writing each batch "
    "to the segment (pwrite) about a fifth of its time, reading the request frame (asyncio's "
    "StreamReader copies it twice) about a fifth, the group commit's fsync in its thread; "
    "Produce checks each batch (length, magic, CRC-32C) once and copies it once"
)
CONSUME_PROFILE = (
    "The client is the limit: consume() makes a Python Message per message, and its rate with "
    "every message already fetched (the baseline) is the ceiling of this row on this machine, "
    "whatever the broker. The broker serves each partition's batches as one view of the bytes "
    "it read (no copy per batch), with a few per cent of a core"
)
OURS_PRODUCE_PROFILE = (
    "Ratio to the embedded store: what the network costs our client. The client's time is the "
    "same send() and batch encoding as the embedded producer's; the Produce requests are "
    "pipelined, up to 5 batches per partition in flight"
)
OURS_CONSUME_PROFILE = (
    "py-spy of the client: decode_columns (the embedded client's batch decoder) about 60%, "
    "the rest reading frames and the event loop. getmany_blocks hands out the decoded columns "
    "as they are, and the next fetch of a partition starts when its last fetched batch is "
    "being handed out, so the broker's answer arrives while the client decodes"
)
LATENCY_PROFILE = (
    "A consumer sees a record once the group commit's fsync has moved the high watermark "
    "(acks=1 and the Fetch both wait for it), so the tail follows this disk's fsync tail and "
    "the scheduling of three processes on two shared cores"
)

NOSYNC_NOTE = (
    "The same run on a topic whose writes are acknowledged once the OS has the bytes, not after "
    "an fsync (survives a crash of the broker, not a power loss; Kafka's own default): what "
    "the broker and the clients cost without the disk"
)


# --- rounds and results ------------------------------------------------------------------------


def _percentile(samples: list[float], q: int) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[q - 1]


@dataclass
class _Series:
    """One benchmark's figures over the rounds, with the broker's cost in each."""

    values: list[float] = field(default_factory=list)
    usages: list[Usage] = field(default_factory=list)
    extra: list[float] = field(default_factory=list)

    def add(self, value: float, usage: Usage, extra: float = 0.0) -> None:
        self.values.append(value)
        self.usages.append(usage)
        self.extra.append(extra)

    def cost(self) -> str:
        if not self.usages or not any(u.peak_rss_mb for u in self.usages):
            return ""
        cpu = median([u.cpu_percent for u in self.usages])
        rss = median([u.peak_rss_mb for u in self.usages])
        return f"broker: {cpu:.0f}% of one core (user + sys), peak RSS {rss:.0f} MB"


def _measure(pid: int | None, series: _Series, fn: Callable[..., float], *args: object) -> None:
    with measuring(pid) as usage:
        value = fn(*args)
    series.add(value, usage)


def run_round(
    bootstrap: str,
    n: int,
    series: dict[str, _Series],
    pid: int | None,
    tag: str,
    millstream: bool = True,
) -> None:
    """One round of every benchmark against ``bootstrap``; topics are named after ``tag``.
    ``millstream``: the broker is ours, so the run with a millstream topic config (the
    latency of a topic whose writes are acknowledged without an fsync) is measured too."""
    for prefix, produce, consume in (
        ("", confluent_produce, confluent_consume),
        ("ours-", ours_produce, ours_consume),
    ):
        for parts in PARTITIONS:
            topic = f"bench-{tag}-{prefix or 'librdkafka-'}{parts}"
            create_topic(bootstrap, topic, parts)
            _measure(pid, series[f"{prefix}produce-{parts}"], produce, bootstrap, topic, n)
            _measure(pid, series[f"{prefix}consume-{parts}"], consume, bootstrap, topic, parts, n)
            if not prefix:
                _measure(
                    None,
                    series[f"queued-{parts}"],
                    confluent_consume_queued,
                    bootstrap,
                    topic,
                    parts,
                    n,
                )
    latency_runs = [
        ("latency", confluent_latency, None),
        ("ours-latency", ours_latency, None),
    ]
    if millstream:
        latency_runs.append(("latency-nosync", confluent_latency, {"flush.policy": "never"}))
    for name, fn, config in latency_runs:
        topic = f"bench-{tag}-{name}"
        create_topic(bootstrap, topic, 1, config)
        with measuring(pid) as usage:
            samples = fn(bootstrap, topic)
        series[name].add(_percentile(samples, 99), usage, _percentile(samples, 50))


def _rate_result(
    name: str,
    s: _Series,
    base: _Series,
    target: float,
    what: str,
    note: str = "",
    profile: str = "",
) -> Result:
    value = median(s.values)
    cost = s.cost()
    note = "; ".join(x for x in (note, cost) if x)
    if profile:
        note = f"{note}. {profile}"
    return Result(
        name,
        "messages/s",
        value,
        f"≥ {target:,.0f} messages/s",
        value >= target,
        median(base.values),
        what,
        s.values,
        base.values,
        note=note,
    )


def run(runs: int, records: int) -> list[Result]:
    names = [
        *(
            f"{kind}-{p}"
            for kind in ("produce", "consume", "ours-produce", "ours-consume")
            for p in PARTITIONS
        ),
        *(f"queued-{p}" for p in PARTITIONS),
        "latency",
        "ours-latency",
        "latency-nosync",
        "tcp",
        "tcp-rtt",
        "alone",
        "embedded-append",
        "embedded-read",
    ]
    series = {name: _Series() for name in names}
    for round_no in range(runs):
        series["tcp"].add(tcp_rate(records), Usage())
        series["alone"].add(confluent_produce_alone(records), Usage())
        append, read = embedded_rates(records)
        series["embedded-append"].add(append, Usage())
        series["embedded-read"].add(read, Usage())
        rtt = tcp_round_trips()
        series["tcp-rtt"].add(_percentile(rtt, 99), Usage(), _percentile(rtt, 50))
        work = Path(tempfile.mkdtemp(prefix="millstream-bench-broker-"))
        broker = BrokerProcess(work)
        try:
            run_round(broker.bootstrap, records, series, broker.pid, str(round_no))
        finally:
            broker.stop()
            shutil.rmtree(work, ignore_errors=True)
        print(
            f"  round {round_no + 1}: "
            + ", ".join(f"{k} {v.values[-1]:,.1f}" for k, v in series.items()),
            file=sys.stderr,
        )
    tcp = f"raw TCP loopback moves the same bytes at {median(series['tcp'].values):,.0f} messages/s"
    results = []
    for parts in PARTITIONS:
        results.append(
            _rate_result(
                f"produce: {records:,} × 100 B, confluent-kafka, {parts} partition(s)",
                series[f"produce-{parts}"],
                series["alone"],
                PRODUCE_TARGET,
                "the same producer loop, no broker",
                f"linger.ms=5, batch.size=1048576, acks=1; {tcp}",
                PRODUCE_PROFILE if parts == 1 else "",
            )
        )
    for parts in PARTITIONS:
        results.append(
            _rate_result(
                f"consume: {records:,} × 100 B, confluent-kafka, {parts} partition(s)",
                series[f"consume-{parts}"],
                series[f"queued-{parts}"],
                CONSUME_TARGET,
                "consume() of messages already fetched",
                "assign() from the beginning, consume(10000); no group join, no commits; "
                "timed from the first messages",
                CONSUME_PROFILE if parts == 1 else "",
            )
        )
    for parts in PARTITIONS:
        results.append(
            _rate_result(
                f"produce: {records:,} × 100 B, our network client, {parts} partition(s)",
                series[f"ours-produce-{parts}"],
                series["embedded-append"],
                OURS_PRODUCE_TARGET,
                "embedded store, Producer.send",
                "Producer.send per message, linger_ms=5, acks=1, idempotence off",
                OURS_PRODUCE_PROFILE if parts == 1 else "",
            )
        )
    for parts in PARTITIONS:
        results.append(
            _rate_result(
                f"consume: {records:,} × 100 B, our network client, {parts} partition(s)",
                series[f"ours-consume-{parts}"],
                series["embedded-read"],
                OURS_CONSUME_TARGET,
                "embedded store, getmany_blocks",
                "assign() and seek_to_beginning, getmany_blocks; no group, no commits",
                OURS_CONSUME_PROFILE if parts == 1 else "",
            )
        )
    rtt = series["tcp-rtt"]
    for key, who in (
        ("latency", "confluent-kafka"),
        ("ours-latency", "our network client"),
        ("latency-nosync", "confluent-kafka, topic with flush.policy=never"),
    ):
        s = series[key]
        if not s.values:
            continue
        p99 = median(s.values)
        note = (
            f"p50 {median(s.extra):.2f} ms (TCP round trip p50 {median(rtt.extra):.2f} ms); "
            "producer linger 1 ms, acks=1; the consumer in the same process"
        )
        cost = s.cost()
        results.append(
            Result(
                f"latency p99: produce → consume at {LATENCY_RATE:,} messages/s, {who}",
                "ms",
                p99,
                f"p99 < {LATENCY_TARGET_MS:.0f} ms",
                p99 < LATENCY_TARGET_MS,
                median(rtt.values),
                "round trip of 100 B over loopback TCP, same rate",
                s.values,
                rtt.values,
                note="; ".join(x for x in (note, cost) if x)
                + (f". {LATENCY_PROFILE}" if key == "latency" else "")
                + (f". {NOSYNC_NOTE}" if key == "latency-nosync" else ""),
            )
        )
    return results
