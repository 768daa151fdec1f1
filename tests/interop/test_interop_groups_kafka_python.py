"""Consumer groups of kafka-python against ``millstream broker``: two members share a topic's
partitions, one leaves and the other takes them all within the session timeout, and after a
broker restart the group resumes from its committed offsets."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_server import BrokerServer

kafka = pytest.importorskip("kafka")

PARTITIONS = 4
SESSION_MS = 6000
BROKER_ARGS = ("--num-partitions", str(PARTITIONS), "--group-initial-rebalance-delay-ms", "0")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BrokerServer]:
    server = BrokerServer(tmp_path / "data", None, *BROKER_ARGS).start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(autouse=True)
def quiet_kafka_python():
    """kafka-python logs every refused connection while the broker restarts."""
    logger = logging.getLogger("kafka")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def produce(server: BrokerServer, topic: str, values: range) -> None:
    producer = kafka.KafkaProducer(bootstrap_servers=server.bootstrap, linger_ms=5)
    try:
        for i in values:
            producer.send(topic, key=f"k{i}".encode(), value=str(i).encode())
        producer.flush(30)
    finally:
        producer.close()


def consumer(server: BrokerServer, group: str, **extra) -> kafka.KafkaConsumer:
    return kafka.KafkaConsumer(
        bootstrap_servers=server.bootstrap,
        group_id=group,
        session_timeout_ms=SESSION_MS,
        heartbeat_interval_ms=500,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        metadata_max_age_ms=1000,
        **extra,
    )


class Reader:
    """Polls consumers in turn, committing what each poll returned once it is processed."""

    def __init__(self) -> None:
        self.seen: Counter[int] = Counter()

    def poll(self, consumers: list[kafka.KafkaConsumer]) -> None:
        for c in consumers:
            batches = c.poll(timeout_ms=100)
            for records in batches.values():
                for record in records:
                    self.seen[int(record.value)] += 1
            if batches:
                c.commit()

    def until(self, consumers, condition, timeout: float, what: str) -> float:
        start = time.monotonic()
        while not condition():
            assert time.monotonic() - start < timeout, f"{what} did not happen in {timeout}s"
            self.poll(consumers)
        return time.monotonic() - start


def partitions_of(c: kafka.KafkaConsumer) -> set[int]:
    return {tp.partition for tp in c.assignment()}


@pytest.mark.parametrize(
    "assignor",
    ["range", "roundrobin"],
)
def test_two_members_share_then_one_leaves_then_the_broker_restarts(server, assignor):
    from kafka.coordinator.assignors.range import RangePartitionAssignor
    from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor

    strategy = {"range": RangePartitionAssignor, "roundrobin": RoundRobinPartitionAssignor}
    topic, group = f"kp-orders-{assignor}", f"kp-billing-{assignor}"
    produce(server, topic, range(100))
    reader = Reader()
    options = {"partition_assignment_strategy": [strategy[assignor]]}
    c1, c2 = consumer(server, group, **options), consumer(server, group, **options)
    c1.subscribe([topic])
    c2.subscribe([topic])
    try:
        reader.until(
            [c1, c2],
            lambda: partitions_of(c1) and partitions_of(c2) and len(reader.seen) == 100,
            60,
            "both members reading all 100 records",
        )
        assert partitions_of(c1).isdisjoint(partitions_of(c2))
        assert partitions_of(c1) | partitions_of(c2) == set(range(PARTITIONS))

        c2.close()
        took = reader.until(
            [c1], lambda: len(partitions_of(c1)) == PARTITIONS, SESSION_MS / 1000, "takeover"
        )
        assert took < SESSION_MS / 1000
        produce(server, topic, range(100, 150))
        reader.until([c1], lambda: len(reader.seen) == 150, 30, "reading the next 50")

        assert server.stop() == 0
        server.start()
        produce(server, topic, range(150, 200))
        reader.until([c1], lambda: len(reader.seen) == 200, 60, "reading on after a restart")
        for _ in range(10):
            reader.poll([c1])
        assert set(reader.seen) == set(range(200))
        assert max(reader.seen.values()) == 1, "a committed record was read twice"
    finally:
        c1.close()

    produce(server, topic, range(200, 210))
    c3 = consumer(server, group, **options)
    c3.subscribe([topic])
    try:
        late = Reader()
        late.until([c3], lambda: len(late.seen) == 10, 30, "a new member reading the tail")
        for _ in range(10):
            late.poll([c3])
        assert set(late.seen) == set(range(200, 210))
    finally:
        c3.close()
