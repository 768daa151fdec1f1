"""Apache Kafka's Java client (kafka-clients 4.x) and its console tools against ``millstream
broker``: the Java producer with every codec, with and without idempotence, read back by the Java
consumer; the console producer and consumer round trip with keys and headers; a group of two Java
members that share, rebalance, commit and resume after a broker restart; and kafka-consumer-groups
describing a group's offsets and lag."""

from __future__ import annotations

import asyncio
import json
import queue
import re
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_server import BrokerServer
from kafka_libs import CONSOLE_CONSUMER, CONSOLE_PRODUCER, CONSUMER_GROUPS, Java, decoded

from millstream.core.client import connect
from millstream.core.log.batch import iter_batches
from millstream.core.log.compression import Compression

# fetching the jars on a fresh machine can take minutes (the first test of the group waits)
pytestmark = [pytest.mark.xdist_group("java"), pytest.mark.timeout(900)]

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
VARIANTS = [(codec, idempotent) for codec in CODECS for idempotent in (True, False)]
PARTITIONS = 3
# an hour ago: records older than a topic's retention (7 days) are deleted by the broker's
# retention pass, which may run while the session's broker serves these tests
BASE_TS = (int(time.time()) - 3600) * 1000


def create_topics(bootstrap: str, names: list[str], partitions: int = PARTITIONS) -> None:
    async def create() -> None:
        async with await connect(f"millstream://{bootstrap}") as conn:
            admin = conn.admin()
            for name in names:
                await admin.create_topic(name, partitions=partitions)

    asyncio.run(create())


def produce_with_our_client(bootstrap: str, topic: str, values: range) -> None:
    async def send() -> None:
        async with await connect(f"millstream://{bootstrap}") as conn, conn.producer() as producer:
            for i in values:
                producer.send(topic, str(i).encode(), key=f"k{i}".encode())

    asyncio.run(send())


def records_for(topic: str, codec: str, idempotent: bool) -> list[dict[str, Any]]:
    """60 records over 3 partitions: binary values, an empty and a null value, null keys,
    headers (one of them binary, one null), timestamps of our choosing."""
    out = []
    for i in range(60):
        value: bytes | None = bytes(range(i % 7, 256, 3)) + b"%d" % i
        if i % 13 == 4:
            value = b""
        elif i % 13 == 9:
            value = None
        out.append(
            {
                "topic": topic,
                "partition": i % PARTITIONS,
                "key": None if i % 10 == 0 else b"key-%d" % i,
                "value": value,
                "headers": [("n", b"%d" % i), ("bin", b"\x00\xff\n"), ("none", None)],
                "timestamp": BASE_TS + i * 1000,
                "compression": codec,
                "idempotence": str(idempotent).lower(),
            }
        )
    return out


def stored_batches(data_dir: Path, topic: str) -> list[tuple[Compression, int]]:
    """(compression, producer id) of each batch the broker stored for ``topic``."""
    out = []
    for segment in sorted(data_dir.glob(f"{topic}-*/*.log")):
        buf = segment.read_bytes()
        out.extend((header.compression, header.producer_id) for _, header in iter_batches(buf))
    return out


@pytest.fixture(scope="module")
def codec_topics(broker_session: BrokerServer, java: Java) -> dict[str, Any]:
    """One Java producer run writing a topic per codec and idempotence setting, and one Java
    consumer run reading them all (two JVM starts for the ten variants)."""
    run = uuid.uuid4().hex[:8]
    topics = {v: f"java-{v[0]}-{'idem' if v[1] else 'plain'}-{run}" for v in VARIANTS}
    create_topics(broker_session.bootstrap, list(topics.values()))
    sent = [r for v, t in topics.items() for r in records_for(t, *v)]
    metadata = java.produce(broker_session.bootstrap, sent)
    read = java.read(broker_session.bootstrap, topics.values())
    return {"topics": topics, "sent": sent, "metadata": metadata, "read": read}


def by_partition(records: list[dict[str, Any]]) -> dict[int, list[tuple]]:
    out: dict[int, list[tuple]] = {}
    for r in records:
        out.setdefault(r["partition"], []).append(
            (r["key"], r["value"], [tuple(h) for h in r["headers"]], r["timestamp"])
        )
    return out


@pytest.mark.parametrize(
    ("codec", "idempotent"), VARIANTS, ids=[f"{c}-{'idem' if i else 'plain'}" for c, i in VARIANTS]
)
def test_java_producer_and_consumer_with_every_codec(
    broker_session, codec_topics, codec, idempotent
):
    topic = codec_topics["topics"][(codec, idempotent)]
    sent = [r for r in codec_topics["sent"] if r["topic"] == topic]
    metadata = [m for m in codec_topics["metadata"] if m["topic"] == topic]
    # acknowledged in order, offsets from 0 in each partition, timestamps as given
    for p in range(PARTITIONS):
        assert [m["offset"] for m in metadata if m["partition"] == p] == list(range(20))
    assert [m["timestamp"] for m in metadata] == [r["timestamp"] for r in sent]

    read = sorted(
        (r for r in codec_topics["read"] if r["topic"] == topic),
        key=lambda r: (r["partition"], r["offset"]),
    )
    assert by_partition(read) == by_partition(sent)
    assert {r["timestamp_type"] for r in read} == {"CreateTime"}

    batches = stored_batches(broker_session.data_dir, topic)
    assert batches, "nothing stored"
    assert {c for c, _ in batches} == {Compression.from_name(codec)}
    producer_ids = {pid for _, pid in batches}
    if idempotent:
        assert len(producer_ids) == 1 and min(producer_ids) >= 0
    else:
        assert producer_ids == {-1}


def test_console_producer_and_consumer_round_trip_with_keys_and_headers(broker_session, java):
    topic, group = f"console-{uuid.uuid4().hex[:8]}", f"console-readers-{uuid.uuid4().hex[:6]}"
    create_topics(broker_session.bootstrap, [topic], partitions=2)
    lines = [f"source:cli,n:{i}\tkey{i % 5}:value {i} ünïcode" for i in range(40)]
    java.run(
        CONSOLE_PRODUCER,
        "--bootstrap-server",
        broker_session.bootstrap,
        "--topic",
        topic,
        "--compression-codec",
        "zstd",
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=:",
        "--property",
        "parse.headers=true",
        stdin="\n".join(lines) + "\n",
    )
    out = java.run(
        CONSOLE_CONSUMER,
        "--bootstrap-server",
        broker_session.bootstrap,
        "--topic",
        topic,
        "--group",
        group,
        "--from-beginning",
        "--max-messages",
        "40",
        "--timeout-ms",
        "30000",
        "--property",
        "print.key=true",
        "--property",
        "print.headers=true",
        "--property",
        "print.partition=true",
        "--property",
        "print.offset=true",
        "--property",
        "key.separator=|",
    )
    got = out.splitlines()
    assert len(got) == 40
    # Partition:P|Offset:O|headers|key|value (the separator is between every field); each key
    # keeps to one partition, in order
    parsed = [re.fullmatch(r"Partition:(\d)\|Offset:(\d+)\|(.*?)\|(.*?)\|(.*)", g) for g in got]
    assert all(parsed), got
    rows = [m.groups() for m in parsed if m]
    assert sorted((h, k, v) for _, _, h, k, v in rows) == sorted(
        (f"source:cli,n:{i}", f"key{i % 5}", f"value {i} ünïcode") for i in range(40)
    )
    for key in {k for _, _, _, k, _ in rows}:
        mine = [(int(p), int(o), v) for p, o, _, k, v in rows if k == key]
        assert len({p for p, _, _ in mine}) == 1
        assert [o for _, o, _ in mine] == sorted(o for _, o, _ in mine)

    # the console consumer committed what it read: the group's lag is 0, then what comes next
    produce_with_our_client(broker_session.bootstrap, topic, range(40, 47))
    table = describe_group(java, broker_session.bootstrap, group)
    assert {(r["GROUP"], r["TOPIC"]) for r in table} == {(group, topic)}
    assert sorted(int(r["PARTITION"]) for r in table) == [0, 1]
    assert sum(int(r["CURRENT-OFFSET"]) for r in table) == 40
    assert sum(int(r["LOG-END-OFFSET"]) for r in table) == 47
    assert sum(int(r["LAG"]) for r in table) == 7


def describe_group(java: Java, bootstrap: str, group: str) -> list[dict[str, str]]:
    """The rows of kafka-consumer-groups' --describe table, by column name."""
    text = java.run(
        CONSUMER_GROUPS, "--bootstrap-server", bootstrap, "--describe", "--group", group
    )
    lines = [line for line in text.splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if line.split()[:2] == ["GROUP", "TOPIC"])
    names = lines[start].split()
    return [dict(zip(names, line.split(), strict=False)) for line in lines[start + 1 :]]


class Member:
    """An Interop member process: its assignments and records, as they come."""

    def __init__(self, java: Java, bootstrap: str, group: str, topic: str) -> None:
        self.process = java.popen("Interop", "member", bootstrap, group, topic, "range")
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.assigned: list[int] | None = None
        self.values: list[int] = []
        self.closed = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(json.loads(line))

    def drain(self) -> None:
        while True:
            try:
                line = self.lines.get_nowait()
            except queue.Empty:
                return
            if line.get("event") == "assigned":
                self.assigned = line["partitions"]
            elif line.get("event") == "closed":
                self.closed = True
            else:
                self.values.append(int(decoded(line)["value"]))

    def leave(self) -> None:
        """Close stdin: the member commits, leaves the group and exits."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        assert self.process.wait(30) == 0, self.stderr()
        time.sleep(0.1)
        self.drain()
        assert self.closed

    def terminate(self) -> None:
        """SIGTERM: the member leaves the group as cleanly as when stdin closes."""
        self.process.terminate()
        assert self.process.wait(30) == 128 + 15, self.stderr()  # the JVM's exit on SIGTERM
        time.sleep(0.1)
        self.drain()
        assert self.closed

    def stderr(self) -> str:
        return self.process.stderr.read() if self.process.stderr else ""

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def wait_for(members: list[Member], condition: Callable[[], bool], timeout: float, what: str):
    start = time.monotonic()
    while True:
        for m in members:
            m.drain()
            assert m.process.poll() is None, f"a member exited: {m.stderr()}"
        if condition():
            return time.monotonic() - start
        assert time.monotonic() - start < timeout, f"{what} did not happen in {timeout}s"
        time.sleep(0.05)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BrokerServer]:
    server = BrokerServer(
        tmp_path / "data", None, "--num-partitions", "4", "--group-initial-rebalance-delay-ms", "0"
    ).start()
    try:
        yield server
    finally:
        server.kill()


def test_java_group_shares_rebalances_commits_and_resumes_after_a_restart(server, java):
    topic, group = "orders", "java-billing"
    create_topics(server.bootstrap, [topic], partitions=4)
    produce_with_our_client(server.bootstrap, topic, range(100))
    m1 = Member(java, server.bootstrap, group, topic)
    m2 = Member(java, server.bootstrap, group, topic)
    members = [m1, m2]

    def seen() -> Counter[int]:
        return Counter(m1.values + m2.values)

    try:
        wait_for(
            members,
            lambda: bool(m1.assigned and m2.assigned) and len(seen()) == 100,
            60,
            "both members reading all 100 records",
        )
        assert m1.assigned is not None and m2.assigned is not None
        assert set(m1.assigned).isdisjoint(m2.assigned)
        assert set(m1.assigned) | set(m2.assigned) == {0, 1, 2, 3}

        m2.leave()
        took = wait_for([m1], lambda: m1.assigned == [0, 1, 2, 3], 10, "m1 taking all partitions")
        assert took < 6, "a member that leaves hands its partitions over at once"
        produce_with_our_client(server.bootstrap, topic, range(100, 150))
        wait_for([m1], lambda: len(seen()) == 150, 30, "reading the next 50")

        assert server.stop() == 0
        server.start()
        produce_with_our_client(server.bootstrap, topic, range(150, 200))
        wait_for([m1], lambda: len(seen()) == 200, 60, "reading on after the broker restarted")
        m1.leave()
        assert set(seen()) == set(range(200))
        assert max(seen().values()) == 1, "a committed record was read twice"
    finally:
        m1.kill()
        m2.kill()

    # the group's commits survived the restart: describe shows its lag, a new member the tail
    produce_with_our_client(server.bootstrap, topic, range(200, 210))
    table = describe_group(java, server.bootstrap, group)
    assert sorted(int(r["PARTITION"]) for r in table) == [0, 1, 2, 3]
    assert sum(int(r["CURRENT-OFFSET"]) for r in table) == 200
    assert sum(int(r["LAG"]) for r in table) == 10
    m3 = Member(java, server.bootstrap, group, topic)
    try:
        wait_for([m3], lambda: len(m3.values) >= 10, 60, "a new member reading the tail")
        time.sleep(0.5)
        m3.terminate()
        assert sorted(m3.values) == list(range(200, 210))
    finally:
        m3.kill()

    async def lag() -> list[int | None]:
        async with await connect(f"millstream://{server.bootstrap}") as conn:
            return [p.lag for p in (await conn.admin().describe_group(group)).offsets]

    assert asyncio.run(lag()) == [0, 0, 0, 0], "what the member read before SIGTERM is committed"
