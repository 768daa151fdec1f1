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

Apache Kafka 4.1.1 beside it: the very same runs against one Kafka node on the same machine
(:class:`KafkaProcess`, tests/kafka_server.py's KafkaCluster with ``BENCH_JVM``), our client
reaching it by a ``kafka://`` URL. Kafka is started once per suite run, warmed up by one
uncounted pass of the throughput runs (the JVM compiles its hot paths during the first), and
in each round every run against the millstream broker takes turns with the same run against
Kafka, the order reversed from one run to the next, so the shared machine's noise falls on
both alike. Kafka runs with its defaults, as its users run it: a write is acknowledged once
the OS has it, where our broker acknowledges after the group commit's fsync. A third target,
Kafka with ``flush.messages=1`` on the topic (an fsync after every append, before the answer),
is the like-for-like case for the produce and latency runs. The comparison rows put the
millstream broker's median beside Kafka's from the same rounds (ratio millstream / Kafka;
target ≥ 0.5× for produce and consume, 0.8× the goal beyond). Without Java or Kafka's jars the
comparison rows are left out and say why.
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
from collections.abc import Callable, Iterator, Sequence
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
    """``millstream broker`` on a free port with its own data directory. A new consumer group
    forms at once (no initial rebalance delay), as on the Kafka node it is compared with
    (tests/kafka_server.py sets ``group.initial.rebalance.delay.ms=0``), so a run that joins a
    group does not time a 3-second wait on one broker and not on the other."""

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
                "--group-initial-rebalance-delay-ms=0",
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


class KafkaProcess:
    """Apache Kafka 4.1.1 for the comparison rows: one KRaft node (tests/kafka_server.py's
    :class:`KafkaCluster`) with the JVM settings of Kafka's own start script and Kafka's
    defaults otherwise, so a write is acknowledged once the OS has it, before any fsync.
    Topics are made by the benchmark, so auto-creation is off, as on the broker under test."""

    def __init__(self, folder: Path) -> None:
        tests = str(Path(__file__).resolve().parent.parent / "tests")
        if tests not in sys.path:
            sys.path.insert(0, tests)
        from kafka_server import BENCH_JVM, KafkaCluster

        self.cluster = KafkaCluster(
            folder, jvm=BENCH_JVM, configs={"auto.create.topics.enable": "false"}
        ).start()
        self.bootstrap = self.cluster.bootstrap

    @property
    def pid(self) -> int:
        process = self.cluster.members[0].process
        if process is None:
            raise RuntimeError("Kafka is not running")
        return process.pid

    def stop(self) -> None:
        self.cluster.stop()


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


_ADMIN = {"log_level": 5}
"""The admin clients' settings: warnings and errors logged, not librdkafka's info lines (one
says, as a client closes after Kafka answered, that it drops an event nobody waits for)."""


def create_topic(
    bootstrap: str, topic: str, partitions: int, config: dict[str, str] | None = None
) -> None:
    """Create ``topic`` (with topic ``config``) with the Kafka admin API."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(_ADMIN | {"bootstrap.servers": bootstrap})
    new = NewTopic(topic, partitions, 1, config=config or {})
    futures = admin.create_topics([new], operation_timeout=30)
    futures[topic].result(30)


def delete_topics(bootstrap: str, topics: list[str]) -> None:
    """Delete ``topics`` with the Kafka admin API (a round's topics, once it has measured)."""
    from confluent_kafka.admin import AdminClient

    if not topics:
        return
    admin = AdminClient(_ADMIN | {"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(topics, operation_timeout=30).values():
        future.result(30)


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


async def _ours_produce(bootstrap: str, topic: str, n: int, scheme: str) -> float:
    from millstream.core.client import connect
    from millstream.core.client.network.producer import BufferFullError

    async with await connect(f"{scheme}://{bootstrap}") as conn:
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


def ours_produce(bootstrap: str, topic: str, n: int, scheme: str = "millstream") -> float:
    """Messages/s of our network producer sending ``n`` messages of 100 bytes (store URL
    ``SCHEME://BOOTSTRAP``: ``millstream`` for our broker, ``kafka`` for Apache Kafka)."""
    return asyncio.run(_ours_produce(bootstrap, topic, n, scheme))


async def _ours_consume(bootstrap: str, topic: str, partitions: int, n: int, scheme: str) -> float:
    from millstream.core.client import connect
    from millstream.core.record import TopicPartition

    async with await connect(f"{scheme}://{bootstrap}") as conn:
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


def ours_consume(
    bootstrap: str, topic: str, partitions: int, n: int, scheme: str = "millstream"
) -> float:
    """Messages/s of our network consumer reading ``n`` messages back (getmany_blocks)."""
    return asyncio.run(_ours_consume(bootstrap, topic, partitions, n, scheme))


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


async def _ours_latency(bootstrap: str, topic: str, scheme: str) -> list[float]:
    from millstream.core.client import connect
    from millstream.core.record import TopicPartition

    count = int(LATENCY_RATE * LATENCY_SECONDS)
    samples: list[float] = []
    async with await connect(f"{scheme}://{bootstrap}") as conn:
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


def ours_latency(bootstrap: str, topic: str, scheme: str = "millstream") -> list[float]:
    """Produce-to-consume latencies (ms) at 1,000 messages/s through our network client."""
    return asyncio.run(_ours_latency(bootstrap, topic, scheme))


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

    def cost(self, who: str = "broker") -> str:
        if not self.usages or not any(u.peak_rss_mb for u in self.usages):
            return ""
        cpu = median([u.cpu_percent for u in self.usages])
        rss = median([u.peak_rss_mb for u in self.usages])
        return f"{who}: {cpu:.0f}% of one core (user + sys), peak RSS {rss:.0f} MB"


@dataclass(frozen=True)
class Target:
    """A broker a round measures: where it listens, and how its topics are made.

    ``key`` names its series (``millstream``, ``kafka``, ``kafka-flush``); ``scheme`` is the
    store URL scheme our client reaches it with; ``pid`` the process whose cost is measured;
    ``topic_config`` the configs of every topic made on it; ``consumes``: whether the consume
    and latency runs are made against it too (a flush config changes only how writes are
    acknowledged, so the consume runs of ``kafka-flush`` would repeat those of ``kafka``)."""

    key: str
    bootstrap: str
    scheme: str
    pid: int | None
    topic_config: dict[str, str] = field(default_factory=dict)
    consumes: bool = True
    ours: bool = False


def _measure(
    pid: int | None, series: _Series, fn: Callable[..., float], *args: Any, **kwargs: Any
) -> None:
    with measuring(pid) as usage:
        value = fn(*args, **kwargs)
    series.add(value, usage)


def run_round(
    targets: Sequence[Target],
    n: int,
    series: dict[str, _Series],
    tag: str,
    flip: bool = False,
    latency: bool = True,
) -> None:
    """One round of every benchmark against each of ``targets``, taking turns: a step (say,
    librdkafka producing to 6 partitions) runs against every target before the next step
    starts, in an order reversed from one step to the next (and, with ``flip``, from one round
    to the next), so the machine's noise falls on them alike. Figures go to
    ``series["KEY:NAME"]``; topics are named after ``tag`` and deleted again at the end.
    ``latency``: the produce-to-consume runs too (a warm-up round leaves them out)."""
    steps = 0
    created: dict[str, list[str]] = {t.bootstrap: [] for t in targets}

    def turns() -> list[Target]:
        nonlocal steps
        order = list(targets) if (steps + flip) % 2 == 0 else list(reversed(targets))
        steps += 1
        return order

    def topic_on(target: Target, name: str, partitions: int, config: dict[str, str]) -> str:
        topic = f"bench-{tag}-{target.key}-{name}"
        create_topic(target.bootstrap, topic, partitions, config)
        created[target.bootstrap].append(topic)
        return topic

    for prefix, produce, consume in (
        ("", confluent_produce, confluent_consume),
        ("ours-", ours_produce, ours_consume),
    ):
        for parts in PARTITIONS:
            for t in turns():
                topic = topic_on(t, f"{prefix or 'librdkafka-'}{parts}", parts, t.topic_config)
                how = {"scheme": t.scheme} if prefix else {}
                _measure(
                    t.pid, series[f"{t.key}:{prefix}produce-{parts}"], produce,
                    t.bootstrap, topic, n, **how,
                )  # fmt: skip
                if not t.consumes:
                    continue
                _measure(
                    t.pid, series[f"{t.key}:{prefix}consume-{parts}"], consume,
                    t.bootstrap, topic, parts, n, **how,
                )  # fmt: skip
                if not prefix and t.ours:
                    _measure(
                        None, series[f"queued-{parts}"], confluent_consume_queued,
                        t.bootstrap, topic, parts, n,
                    )  # fmt: skip
    if latency:
        for name, fn in (("latency", confluent_latency), ("ours-latency", ours_latency)):
            for t in turns():
                topic = topic_on(t, name, 1, t.topic_config)
                how = {"scheme": t.scheme} if fn is ours_latency else {}
                with measuring(t.pid) as usage:
                    samples = fn(t.bootstrap, topic, **how)
                series[f"{t.key}:{name}"].add(
                    _percentile(samples, 99), usage, _percentile(samples, 50)
                )
        for t in targets:
            if t.ours:  # a millstream topic config: acknowledged without an fsync
                topic = topic_on(t, "latency-nosync", 1, {"flush.policy": "never"})
                with measuring(t.pid) as usage:
                    samples = confluent_latency(t.bootstrap, topic)
                series[f"{t.key}:latency-nosync"].add(
                    _percentile(samples, 99), usage, _percentile(samples, 50)
                )
    for bootstrap, topics in created.items():
        delete_topics(bootstrap, topics)


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


def _versus_kafka(
    name: str, ours: _Series, kafka: _Series, kafka_label: str, note: str = ""
) -> Result:
    """A millstream broker figure beside Apache Kafka's from the same rounds; the ratio is
    millstream / Kafka (for rates, ≥ 0.5 is the target and 0.8 the goal beyond it)."""
    latency = name.startswith("latency")
    unit = "ms" if latency else "messages/s"
    value, base = median(ours.values), median(kafka.values)
    costs = "; ".join(
        x for x in (ours.cost("millstream broker"), kafka.cost("Kafka (the JVM)")) if x
    )
    if latency:
        note = (
            f"p50 {median(ours.extra):.2f} ms against Kafka's {median(kafka.extra):.2f} ms. {note}"
        )
    note = "; ".join(x for x in (note.strip(), costs) if x)
    runs = "per run (millstream / Kafka): " + ", ".join(
        f"{a:,.0f}/{b:,.0f}" if not latency else f"{a:.2f}/{b:.2f}"
        for a, b in zip(ours.values, kafka.values, strict=False)
    )
    note = f"{note}; {runs}"
    if latency:
        return Result(
            name, unit, value, "(reported)", True, base, kafka_label, ours.values,
            kafka.values, note=note,
        )  # fmt: skip
    return Result(
        name,
        unit,
        value,
        "≥ 0.5× Kafka (goal 0.8×)",
        bool(base) and value >= 0.5 * base,
        base,
        kafka_label,
        ours.values,
        kafka.values,
        note=note,
    )


KAFKA_DURABILITY = (
    "Durability differs: millstream's broker acknowledges a write after the group commit's "
    "fsync (flush.policy=commit, its default), Kafka by default once the write is in the OS's "
    "page cache (log.flush.interval.messages unbounded; a single node's acknowledged write "
    "survives a crash of the broker, not a power loss, and Kafka counts on replication instead). "
    "The 'Kafka, flush.messages=1' rows are the like-for-like case: the topic makes Kafka fsync "
    "after every append (each Produce request's batch per partition) before it answers; "
    "millstream's own 'flush.policy=never' latency row is the other like-for-like pair, neither "
    "broker waiting for the disk. Kafka 4.1.1: one KRaft node (broker and controller in one "
    "JVM, -Xms1g -Xmx1g G1, as kafka-server-start.sh), its defaults otherwise (auto-creation "
    "off, as on our broker; topics made by the benchmark, replication factor 1), started once "
    "per suite run and warmed up by one uncounted pass of the throughput runs; every run "
    "alternates with the millstream broker's, in an order reversed from one step to the next"
)


def _start_kafka(folder: Path) -> tuple[KafkaProcess | None, str]:
    """Kafka for the comparison rows, or None and why not (no Java, no jars)."""
    try:
        return KafkaProcess(folder), ""
    except Exception as exc:  # the millstream rows are still worth having
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"  Apache Kafka not started, its rows are left out: {reason}", file=sys.stderr)
        return None, reason


def run(runs: int, records: int) -> list[Result]:
    series: dict[str, _Series] = collections.defaultdict(_Series)
    kafka_dir = Path(tempfile.mkdtemp(prefix="millstream-bench-kafka-"))
    kafka, why_not = _start_kafka(kafka_dir)
    kafka_targets: list[Target] = []
    try:
        if kafka is not None:
            kafka_targets = [
                Target("kafka", kafka.bootstrap, "kafka", kafka.pid),
                Target(
                    "kafka-flush", kafka.bootstrap, "kafka", kafka.pid,
                    {"flush.messages": "1"}, consumes=False,
                ),
            ]  # fmt: skip
            print("  warming Kafka's JVM up (not counted)", file=sys.stderr)
            run_round(  # the flushed topics run the same code, and take longer
                kafka_targets[:1], records, collections.defaultdict(_Series), "warmup",
                latency=False,
            )  # fmt: skip
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
                ours = Target("millstream", broker.bootstrap, "millstream", broker.pid, ours=True)
                run_round(
                    [ours, *kafka_targets], records, series, str(round_no), flip=round_no % 2 == 1
                )
            finally:
                broker.stop()
                shutil.rmtree(work, ignore_errors=True)
            print(
                f"  round {round_no + 1}: "
                + ", ".join(f"{k} {v.values[-1]:,.1f}" for k, v in series.items()),
                file=sys.stderr,
            )
    finally:
        if kafka is not None:
            kafka.stop()
        shutil.rmtree(kafka_dir, ignore_errors=True)
    return [*_millstream_results(series, records), *_kafka_results(series, records, why_not)]


def _millstream_results(series: dict[str, _Series], records: int) -> list[Result]:
    """The millstream broker's rows, each beside a ceiling of its own client."""
    tcp = f"raw TCP loopback moves the same bytes at {median(series['tcp'].values):,.0f} messages/s"
    results = []
    for parts in PARTITIONS:
        results.append(
            _rate_result(
                f"produce: {records:,} × 100 B, confluent-kafka, {parts} partition(s)",
                series[f"millstream:produce-{parts}"],
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
                series[f"millstream:consume-{parts}"],
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
                series[f"millstream:ours-produce-{parts}"],
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
                series[f"millstream:ours-consume-{parts}"],
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
        s = series[f"millstream:{key}"]
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


def _kafka_results(series: dict[str, _Series], records: int, why_not: str) -> list[Result]:
    """The millstream broker beside Apache Kafka: the same runs, the same clients, the same
    rounds; ratio millstream / Kafka."""
    if why_not:
        return [
            Result(
                "millstream broker vs Apache Kafka",
                "messages/s",
                0.0,
                "≥ 0.5× Kafka (goal 0.8×)",
                False,
                note=f"not measured: Apache Kafka did not start ({why_not})",
            )
        ]
    kafka, flushed = "Apache Kafka 4.1.1, same run", "Kafka with flush.messages=1, same run"
    results = []
    durability_said = False
    for prefix, client in (("", "confluent-kafka"), ("ours-", "our network client")):
        for parts in PARTITIONS:
            what = f"{records:,} × 100 B, {client}, {parts} partition(s)"
            note = "" if durability_said else KAFKA_DURABILITY
            durability_said = True
            results.append(
                _versus_kafka(
                    f"produce vs Kafka: {what}",
                    series[f"millstream:{prefix}produce-{parts}"],
                    series[f"kafka:{prefix}produce-{parts}"],
                    kafka,
                    note,
                )
            )
            results.append(
                _versus_kafka(
                    f"produce vs Kafka (flush.messages=1): {what}",
                    series[f"millstream:{prefix}produce-{parts}"],
                    series[f"kafka-flush:{prefix}produce-{parts}"],
                    flushed,
                )
            )
        for parts in PARTITIONS:
            what = f"{records:,} × 100 B, {client}, {parts} partition(s)"
            results.append(
                _versus_kafka(
                    f"consume vs Kafka: {what}",
                    series[f"millstream:{prefix}consume-{parts}"],
                    series[f"kafka:{prefix}consume-{parts}"],
                    kafka,
                )
            )
        rate = f"{LATENCY_RATE:,} messages/s, {client}"
        results.append(
            _versus_kafka(
                f"latency p99 vs Kafka: produce → consume at {rate}",
                series[f"millstream:{prefix}latency"],
                series[f"kafka:{prefix}latency"],
                kafka,
                "ratio above 1: millstream slower",
            )
        )
        results.append(
            _versus_kafka(
                f"latency p99 vs Kafka (flush.messages=1): produce → consume at {rate}",
                series[f"millstream:{prefix}latency"],
                series[f"kafka-flush:{prefix}latency"],
                flushed,
                "both brokers fsync before they answer",
            )
        )
    results.append(
        _versus_kafka(
            f"latency p99 vs Kafka, neither fsyncs: produce → consume at {LATENCY_RATE:,} "
            "messages/s, confluent-kafka, millstream topic with flush.policy=never",
            series["millstream:latency-nosync"],
            series["kafka:latency"],
            kafka,
            "both brokers answer once the OS has the bytes",
        )
    )
    return results
