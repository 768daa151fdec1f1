"""Consumer groups of kafka-python against ``millstream broker``: two members share a topic's
partitions, one leaves and the other takes them all within the session timeout, and after a
broker restart the group resumes from its committed offsets."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_server import BrokerServer

kafka = pytest.importorskip("kafka")

PARTITIONS = 4
SESSION_MS = 6000
# Kafka's default initial rebalance delay (3 s): kafka-python 3.0 joins before it has the topic's
# metadata and rejoins once it has it; a group completed at once races that rejoin in the client
# (its leader can lose its SyncGroup answer and stop heartbeating).
BROKER_ARGS = ("--num-partitions", str(PARTITIONS))


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


class Member:
    """One consumer polling in a thread of its own (a member blocked in a JoinGroup must not
    keep the other from rejoining), committing what each poll returned once it is recorded."""

    def __init__(self, make, topic: str, seen: Counter[int], lock: threading.Lock) -> None:
        self._make, self._topic, self._seen, self._lock = make, topic, seen, lock
        self._stop = threading.Event()
        self._partitions: set[int] = set()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        c = self._make()
        try:
            c.subscribe([self._topic])
            while not self._stop.is_set():
                try:
                    batches = c.poll(timeout_ms=100)
                    with self._lock:
                        for records in batches.values():
                            for record in records:
                                self._seen[int(record.value)] += 1
                        self._partitions = {tp.partition for tp in c.assignment()}
                    if batches:
                        self._commit(c)
                except kafka.errors.KafkaError as exc:
                    if not exc.retriable:  # the broker restarting is retriable; others are not
                        raise
                    time.sleep(0.2)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            c.close()

    def _commit(self, c: kafka.KafkaConsumer) -> None:
        """Commit what was recorded, retrying while the broker is away (as an application
        would, so that nothing is read twice)."""
        while True:
            try:
                c.commit()
                return
            except kafka.errors.KafkaError as exc:
                if not exc.retriable or self._stop.is_set():
                    raise
                time.sleep(0.2)

    def partitions(self) -> set[int]:
        with self._lock:
            return set(self._partitions)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)
        assert self.error is None, f"the consumer failed: {self.error!r}"


def wait_for(members: list[Member], condition, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        for m in members:
            assert m.error is None, f"a consumer failed: {m.error!r}"
        assert time.monotonic() - start < timeout, f"{what} did not happen in {timeout}s"
        time.sleep(0.05)
    return time.monotonic() - start


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
    seen: Counter[int] = Counter()
    lock = threading.Lock()
    options = {"partition_assignment_strategy": [strategy[assignor]]}

    def member() -> Member:
        return Member(lambda: consumer(server, group, **options), topic, seen, lock)

    def count() -> int:
        with lock:
            return len(seen)

    c1, c2 = member(), member()
    members = [c1, c2]
    try:
        wait_for(
            members,
            lambda: (
                count() == 100
                and c1.partitions()
                and c2.partitions()
                and c1.partitions().isdisjoint(c2.partitions())
                and c1.partitions() | c2.partitions() == set(range(PARTITIONS))
            ),
            60,
            "both members reading all 100 records",
        )

        c2.close()
        took = wait_for(
            [c1], lambda: len(c1.partitions()) == PARTITIONS, SESSION_MS / 1000, "takeover"
        )
        assert took < SESSION_MS / 1000
        produce(server, topic, range(100, 150))
        wait_for([c1], lambda: count() == 150, 30, "reading the next 50")

        assert server.stop() == 0
        server.start()
        produce(server, topic, range(150, 200))
        wait_for([c1], lambda: count() == 200, 60, "reading on after a restart")
        time.sleep(1)
        c1.close()
        assert set(seen) == set(range(200))
        assert max(seen.values()) == 1, "a committed record was read twice"
    finally:
        for m in members:
            m._stop.set()

    produce(server, topic, range(200, 210))
    late: Counter[int] = Counter()
    c3 = Member(lambda: consumer(server, group, **options), topic, late, lock)
    try:
        wait_for([c3], lambda: len(late) == 10, 30, "a new member reading the tail")
        time.sleep(1)
    finally:
        c3.close()
    assert set(late) == set(range(200, 210))
