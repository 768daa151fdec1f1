"""Every client against every other through ``millstream broker``: kcat, confluent-kafka,
kafka-python, the Java client and millstream's own network client each write records (keys,
values, empty and null ones, binary bytes, headers and timestamps of their own choosing, where the
tool can) with every compression codec, and each of them reads every producer's records back:
key, value, headers, timestamp, partition and offset order all compare equal.

Each producer and each consumer runs once for all its topics (one JVM start each for Java)."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import pytest
from broker_server import BrokerServer
from kafka_libs import Java

from millstream.core.client import connect
from millstream.core.log.batch import iter_batches
from millstream.core.log.compression import Compression
from millstream.core.record import TopicPartition

confluent_kafka = pytest.importorskip("confluent_kafka")
kafka = pytest.importorskip("kafka")

# fetching the jars on a fresh machine can take minutes (the first test of the group waits)
pytestmark = [
    pytest.mark.xdist_group("java"),
    pytest.mark.timeout(900),
    pytest.mark.skipif(not shutil.which("kcat"), reason="kcat is not installed"),
]

CLIENTS = ["kcat", "confluent-kafka", "kafka-python", "java", "millstream"]
LIBRDKAFKA = {"kcat", "confluent-kafka"}
CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
PARTITIONS = 2
KCAT = shutil.which("kcat") or "kcat"
KCAT_FORMAT = "%p %o %T %K %S %h\n%k%s\n"  # the key's and value's lengths make it binary-safe
COUNT = 12
# an hour ago: records older than a topic's retention (7 days) are deleted by the broker's
# retention pass, which may run while the session's broker serves these tests
BASE_TS = (int(time.time()) - 3600) * 1000
# librdkafka sends a batch uncompressed when its codec would not make it smaller: values that
# compress well keep every batch compressed
PADDING = b"=" * 200

Header = tuple[str, bytes]


@dataclass(frozen=True)
class Sent:
    """A record as its producer meant it (timestamp None: the producer's clock chose it)."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    timestamp: int | None


@dataclass(frozen=True, order=True)
class Read:
    """A record as a consumer got it."""

    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]


def rich_records(producer: str) -> list[Sent]:
    """What a client that can set everything sends: null keys, empty and null values, binary
    bytes in keys and values, records with and without headers, chosen timestamps."""
    tag = producer.encode()
    out = []
    for i in range(COUNT):
        value: bytes | None = b"%s %d \x00\x01\xfe\xff\n\xe2\x82" % (tag, i) + PADDING
        if i % 6 == 3:
            value = b""
        elif i % 6 == 5:
            value = None
        out.append(
            Sent(
                partition=i % PARTITIONS,
                key=None if i % 4 == 0 else b"key-%d-\x00\xfe" % i,
                value=value,
                headers=(("i", b"%d" % i), ("from", tag), ("text", "ünï 😀".encode()))
                if i % 4
                else (),
                timestamp=BASE_TS + i * 1000,
            )
        )
    return out


def kcat_records() -> list[Sent]:
    """What kcat sends from lines: text keys (a line without the separator has a null key),
    empty values, one set of headers for a whole run, its own timestamps."""
    out = []
    for i in range(COUNT):
        key: bytes | None = None if i % 5 == 0 else f"këy-{i}".encode()
        value = b"" if i % 6 == 3 else f"kcat {i} ünïcode ".encode() + PADDING
        out.append(Sent(i % PARTITIONS, key, value, (("from", b"kcat"),), None))
    return out


# --- producers: each writes its records to one topic per codec --------------------------------


def kcat_produce(bootstrap: str, topics: dict[str, str]) -> dict[str, list[Sent]]:
    sent = kcat_records()
    for codec, topic in topics.items():
        for p in range(PARTITIONS):
            lines = [
                (r.value or b"") if r.key is None else r.key + b"\t" + (r.value or b"")
                for r in sent
                if r.partition == p
            ]
            done = subprocess.run(
                [
                    KCAT,
                    "-b",
                    bootstrap,
                    "-P",
                    "-t",
                    topic,
                    "-p",
                    str(p),
                    "-K",
                    "\t",
                    "-z",
                    codec,
                    "-H",
                    "from=kcat",
                ],
                input=b"\n".join(lines) + b"\n",
                capture_output=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
    return dict.fromkeys(topics.values(), sent)


def confluent_produce(bootstrap: str, topics: dict[str, str]) -> dict[str, list[Sent]]:
    sent = rich_records("confluent-kafka")
    for codec, topic in topics.items():
        producer = confluent_kafka.Producer(
            {
                "bootstrap.servers": bootstrap,
                "compression.type": codec,
                "enable.idempotence": True,
                "linger.ms": 5,
            }
        )
        for r in sent:
            producer.produce(
                topic,
                value=r.value,
                key=r.key,
                partition=r.partition,
                timestamp=r.timestamp or 0,
                headers=list(r.headers),
            )
        assert producer.flush(30) == 0
    return dict.fromkeys(topics.values(), sent)


def kafka_python_produce(bootstrap: str, topics: dict[str, str]) -> dict[str, list[Sent]]:
    sent = rich_records("kafka-python")
    for codec, topic in topics.items():
        producer = kafka.KafkaProducer(
            bootstrap_servers=bootstrap,
            compression_type=None if codec == "none" else codec,
            linger_ms=5,
            acks="all",
        )
        for r in sent:
            producer.send(
                topic,
                value=r.value,
                key=r.key,
                partition=r.partition,
                timestamp_ms=r.timestamp,
                headers=list(r.headers),
            )
        producer.flush()
        producer.close()
    return dict.fromkeys(topics.values(), sent)


def java_produce(bootstrap: str, topics: dict[str, str], java: Java) -> dict[str, list[Sent]]:
    sent = rich_records("java")
    java.produce(
        bootstrap,
        (
            {
                "topic": topic,
                "compression": codec,
                "partition": r.partition,
                "key": r.key,
                "value": r.value,
                "headers": list(r.headers),
                "timestamp": r.timestamp,
            }
            for codec, topic in topics.items()
            for r in sent
        ),
    )
    return dict.fromkeys(topics.values(), sent)


def millstream_produce(bootstrap: str, topics: dict[str, str]) -> dict[str, list[Sent]]:
    sent = rich_records("millstream")

    async def produce() -> None:
        async with await connect(f"millstream://{bootstrap}") as conn:
            for codec, topic in topics.items():
                async with conn.producer(compression=codec) as producer:
                    for r in sent:
                        producer.send(topic, r.value, r.key, r.headers, r.partition, r.timestamp)

    asyncio.run(produce())
    return dict.fromkeys(topics.values(), sent)


# --- consumers: each reads every topic from its start to its end ------------------------------


def kcat_read(bootstrap: str, topics: list[str]) -> dict[str, list[Read]]:
    # one kcat per topic (it reads one topic to its end and exits), all at once
    running = {
        topic: subprocess.Popen(
            [KCAT, "-b", bootstrap, "-C", "-t", topic, "-e", "-q", "-f", KCAT_FORMAT],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for topic in topics
    }
    out = {}
    for topic, process in running.items():
        stdout, stderr = process.communicate(timeout=60)
        assert process.returncode == 0, stderr
        out[topic] = _parse_kcat(stdout)
    return out


def _parse_kcat(data: bytes) -> list[Read]:
    """kcat's output in the format above: a line of fields with the key's and value's lengths
    (-1 for null), then the key and value bytes and a newline."""
    records, pos = [], 0
    while pos < len(data):
        end = data.index(b"\n", pos)
        p, o, ts, klen, vlen, headers = data[pos:end].decode().split(" ", 5)
        pos = end + 1
        key: bytes | None = None
        value: bytes | None = None
        if int(klen) >= 0:
            key, pos = data[pos : pos + int(klen)], pos + int(klen)
        if int(vlen) >= 0:
            value, pos = data[pos : pos + int(vlen)], pos + int(vlen)
        assert data[pos : pos + 1] == b"\n"
        pos += 1
        pairs = tuple(
            (name, text.encode())
            for name, _, text in (h.partition("=") for h in headers.split(",") if h)
        )
        records.append(Read(int(p), int(o), int(ts), key, value, pairs))
    return records


def _ends(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    async def ends() -> dict[TopicPartition, int]:
        async with await connect(f"millstream://{bootstrap}") as conn:
            admin = conn.admin()
            return {
                tp: await admin.list_offsets(tp, "latest")
                for tp in (TopicPartition(t, p) for t in topics for p in range(PARTITIONS))
            }

    return asyncio.run(ends())


def _until_ends(
    ends: dict[TopicPartition, int], poll: Callable[[], Iterable[tuple[str, Read]]]
) -> dict[str, list[Read]]:
    out: dict[str, list[Read]] = {t.topic: [] for t in ends}
    deadline = time.monotonic() + 60
    while sum(map(len, out.values())) < sum(ends.values()):
        assert time.monotonic() < deadline, "records missing after 60 s"
        for topic, record in poll():
            out[topic].append(record)
    return out


def confluent_read(bootstrap: str, topics: list[str]) -> dict[str, list[Read]]:
    ends = _ends(bootstrap, topics)
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "matrix", "enable.auto.commit": False}
    )
    consumer.assign(
        [
            confluent_kafka.TopicPartition(tp.topic, tp.partition, confluent_kafka.OFFSET_BEGINNING)
            for tp in ends
        ]
    )

    def poll() -> Iterable[tuple[str, Read]]:
        for m in consumer.consume(1000, 0.5):
            assert m.error() is None, m.error()
            headers = tuple(m.headers() or ())
            read = Read(m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value(), headers)
            yield m.topic(), read

    try:
        return _until_ends(ends, poll)
    finally:
        consumer.close()


def kafka_python_read(bootstrap: str, topics: list[str]) -> dict[str, list[Read]]:
    ends = _ends(bootstrap, topics)
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=100
    )
    tps = [kafka.TopicPartition(tp.topic, tp.partition) for tp in ends]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)

    def poll() -> Iterable[tuple[str, Read]]:
        for tp, messages in consumer.poll(500).items():
            for m in messages:
                headers = tuple((name, value) for name, value in m.headers)
                yield tp.topic, Read(m.partition, m.offset, m.timestamp, m.key, m.value, headers)

    try:
        return _until_ends(ends, poll)
    finally:
        consumer.close()


def java_read(bootstrap: str, topics: list[str], java: Java) -> dict[str, list[Read]]:
    out: dict[str, list[Read]] = {t: [] for t in topics}
    for r in java.read(bootstrap, topics):
        out[r["topic"]].append(
            Read(
                r["partition"],
                r["offset"],
                r["timestamp"],
                r["key"],
                r["value"],
                tuple(r["headers"]),
            )
        )
    return out


def millstream_read(bootstrap: str, topics: list[str]) -> dict[str, list[Read]]:
    ends = _ends(bootstrap, topics)

    async def read() -> dict[str, list[Read]]:
        out: dict[str, list[Read]] = {t: [] for t in topics}
        async with await connect(f"millstream://{bootstrap}") as conn:
            consumer = conn.consumer(auto_offset_reset="earliest")
            consumer.assign(ends)
            deadline = time.monotonic() + 60
            while sum(map(len, out.values())) < sum(ends.values()):
                assert time.monotonic() < deadline, "records missing after 60 s"
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    out[tp.topic].extend(
                        Read(r.partition, r.offset, r.timestamp, r.key, r.value, tuple(r.headers))
                        for r in records
                    )
        return out

    return asyncio.run(read())


# --- the matrix -------------------------------------------------------------------------------


@dataclass
class Matrix:
    """The topics each producer wrote (per codec), what it sent, and each consumer's reads."""

    server: BrokerServer
    java: Java
    topics: dict[str, dict[str, str]]
    sent: dict[str, list[Sent]]
    started_ms: int
    reads: dict[str, dict[str, list[Read]]]

    def read_by(self, consumer: str) -> dict[str, list[Read]]:
        if consumer not in self.reads:
            everything = [t for by_codec in self.topics.values() for t in by_codec.values()]
            bootstrap = self.server.bootstrap
            if consumer == "java":
                self.reads[consumer] = java_read(bootstrap, everything, self.java)
            else:
                self.reads[consumer] = _READERS[consumer](bootstrap, everything)
        return self.reads[consumer]


_READERS: dict[str, Callable[[str, list[str]], dict[str, list[Read]]]] = {
    "kcat": kcat_read,
    "confluent-kafka": confluent_read,
    "kafka-python": kafka_python_read,
    "millstream": millstream_read,
}


@pytest.fixture(scope="module")
def matrix(broker_session: BrokerServer, java: Java) -> Matrix:
    run = uuid.uuid4().hex[:6]
    topics = {
        producer: {codec: f"matrix-{producer}-{codec}-{run}" for codec in CODECS}
        for producer in CLIENTS
    }
    bootstrap = broker_session.bootstrap

    async def create() -> None:
        async with await connect(f"millstream://{bootstrap}") as conn:
            for by_codec in topics.values():
                for topic in by_codec.values():
                    await conn.admin().create_topic(topic, partitions=PARTITIONS)

    asyncio.run(create())
    started_ms = int(time.time() * 1000)
    sent: dict[str, list[Sent]] = {}
    sent.update(kcat_produce(bootstrap, topics["kcat"]))
    sent.update(confluent_produce(bootstrap, topics["confluent-kafka"]))
    sent.update(kafka_python_produce(bootstrap, topics["kafka-python"]))
    sent.update(java_produce(bootstrap, topics["java"], java))
    sent.update(millstream_produce(bootstrap, topics["millstream"]))
    return Matrix(broker_session, java, topics, sent, started_ms, {})


def expected(sent: list[Sent], reference: list[Read], since_ms: int) -> list[Read]:
    """``sent`` as a consumer should read it from a fresh topic: per partition in the order sent,
    offsets from 0. A timestamp the producer's clock chose is taken from ``reference`` (another
    consumer's read), after a check that it is a time of this run."""
    stamps = {(r.partition, r.offset): r.timestamp for r in reference}
    out = []
    for p in range(PARTITIONS):
        for offset, r in enumerate(s for s in sent if s.partition == p):
            timestamp = r.timestamp
            if timestamp is None:
                timestamp = stamps.get((p, offset), -1)
                assert since_ms - 1000 <= timestamp <= time.time() * 1000 + 1000
            out.append(Read(p, offset, timestamp, r.key, r.value, r.headers))
    return out


@pytest.mark.parametrize("consumer", CLIENTS)
@pytest.mark.parametrize("producer", CLIENTS)
def test_every_consumer_reads_every_producer_s_records(matrix, producer, consumer):
    reads = matrix.read_by(consumer)
    reference = matrix.read_by("millstream")
    for codec, topic in matrix.topics[producer].items():
        want = expected(matrix.sent[topic], reference[topic], matrix.started_ms)
        got = sorted(reads[topic])
        assert got == want, f"{consumer} reading {producer}'s {codec} records"


@pytest.mark.parametrize("producer", CLIENTS)
def test_every_producer_s_batches_are_stored_with_its_codec(matrix, producer):
    for codec, topic in matrix.topics[producer].items():
        stored = [
            header.compression
            for segment in sorted(matrix.server.data_dir.glob(f"{topic}-*/*.log"))
            for _, header in iter_batches(segment.read_bytes())
        ]
        assert stored, f"nothing stored for {producer} with {codec}"
        wanted = Compression.from_name(codec)
        assert wanted in stored, f"{producer} with {codec}"
        # librdkafka (kcat, confluent-kafka) sends a batch uncompressed when its codec would
        # not make it smaller: a batch of one or two records, say; nothing else may appear
        allowed = {wanted, Compression.NONE} if producer in LIBRDKAFKA else {wanted}
        assert set(stored) <= allowed, f"{producer} with {codec}"
