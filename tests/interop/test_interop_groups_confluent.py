"""Consumer groups of confluent-kafka (librdkafka): two members share a topic's partitions, one
leaves or is killed and the other takes them all within the session timeout, a static member
comes back to its partitions, and our network client shares one group with librdkafka (either
one the group's leader, running the assignor), each resuming from the other's commits.

Every test runs against ``millstream broker`` and against Apache Kafka (the ``remote``
fixture), except the one that restarts the broker, which runs on a millstream broker of its own.
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_server import BrokerServer
from remote_store import RemoteStore

from millstream.core.client import connect
from millstream.core.record import TopicPartition

confluent_kafka = pytest.importorskip("confluent_kafka")

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


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(store: RemoteStore, topic: str) -> None:
    """``topic`` with PARTITIONS partitions (the shared stores auto-create with fewer)."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": store.bootstrap}, logger=_LOG)
    (created,) = admin.create_topics([NewTopic(topic, PARTITIONS, 1)]).values()
    created.result(timeout=30)


def produce(server: BrokerServer | RemoteStore, topic: str, values: range) -> None:
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": server.bootstrap, "linger.ms": 5}, logger=_LOG
    )
    for i in values:
        producer.produce(topic, key=f"k{i}".encode(), value=str(i).encode())
    assert producer.flush(30) == 0


_LOG = logging.getLogger("librdkafka")  # its complaints while the broker restarts stay here


def consumer(
    server: BrokerServer | RemoteStore, group: str, assignor: str
) -> confluent_kafka.Consumer:
    return confluent_kafka.Consumer(
        {
            "bootstrap.servers": server.bootstrap,
            "group.id": group,
            "session.timeout.ms": SESSION_MS,
            "heartbeat.interval.ms": 500,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "partition.assignment.strategy": assignor,
            "topic.metadata.refresh.interval.ms": 1000,
        },
        logger=_LOG,
    )


class Reader:
    """Polls consumers in turn, committing each record once processed."""

    def __init__(self) -> None:
        self.seen: Counter[int] = Counter()
        self.by: dict[int, set[int]] = {}

    def poll(self, consumers: list[confluent_kafka.Consumer], rounds: int = 1) -> None:
        for _ in range(rounds):
            for c in consumers:
                message = c.poll(0.1)
                if message is None or message.error():
                    continue
                self.seen[int(message.value())] += 1
                self.by.setdefault(id(c), set()).add(message.partition())
                c.commit(message=message, asynchronous=False)

    def until(self, consumers, condition, timeout: float, what: str) -> float:
        start = time.monotonic()
        while not condition():
            assert time.monotonic() - start < timeout, f"{what} did not happen in {timeout}s"
            self.poll(consumers)
        return time.monotonic() - start


def partitions_of(c: confluent_kafka.Consumer) -> set[int]:
    return {tp.partition for tp in c.assignment()}


@pytest.mark.parametrize("assignor", ["range", "cooperative-sticky"])
def test_two_members_share_then_one_leaves_then_the_broker_restarts(server, assignor):
    topic, group = f"orders-{assignor}", f"billing-{assignor}"
    produce(server, topic, range(100))
    reader = Reader()
    c1, c2 = consumer(server, group, assignor), consumer(server, group, assignor)
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
        reader.poll([c1], rounds=10)
        assert set(reader.seen) == set(range(200))
        assert max(reader.seen.values()) == 1, "a committed record was read twice"
    finally:
        c1.close()

    # a new member of the group starts where the group's commits left off
    produce(server, topic, range(200, 210))
    c3 = consumer(server, group, assignor)
    c3.subscribe([topic])
    try:
        late = Reader()
        late.until([c3], lambda: len(late.seen) == 10, 30, "a new member reading the tail")
        late.poll([c3], rounds=10)
        assert set(late.seen) == set(range(200, 210))
    finally:
        c3.close()


_KILLED_MEMBER = textwrap.dedent(
    """
    import sys, confluent_kafka
    bootstrap, group, topic = sys.argv[1:4]
    c = confluent_kafka.Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500, "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
    })
    c.subscribe([topic])
    while True:
        m = c.poll(0.1)
        if m is not None and not m.error():
            # printed before the commit: a kill between the two repeats a record, never
            # hides one (committed but not printed, no member would ever show it)
            print(m.value().decode(), flush=True)
            c.commit(message=m, asynchronous=False)
    """
)


def test_a_killed_member_s_partitions_go_to_the_other_within_the_session_timeout(
    remote: RemoteStore, tmp_path: Path
) -> None:
    topic, group = unique("payments"), unique("ledger")
    create_topic(remote, topic)
    produce(remote, topic, range(40))
    script = tmp_path / "member.py"
    script.write_text(_KILLED_MEMBER)
    out = open(tmp_path / "member.out", "wb")  # noqa: SIM115 - the subprocess writes it
    member = subprocess.Popen(
        [sys.executable, str(script), remote.bootstrap, group, topic], stdout=out
    )
    reader = Reader()
    c1 = consumer(remote, group, "range")
    c1.subscribe([topic])
    try:
        reader.until(
            [c1],
            lambda: partitions_of(c1) and len(partitions_of(c1)) < PARTITIONS,
            60,
            "sharing the partitions with the other member",
        )
        time.sleep(1)  # the other member reads its share
        member.send_signal(signal.SIGKILL)
        member.wait()
        took = reader.until(
            [c1],
            lambda: len(partitions_of(c1)) == PARTITIONS,
            SESSION_MS / 1000 + 5,
            "taking over the killed member's partitions",
        )
        assert took <= SESSION_MS / 1000 + 4
        reader.until(
            [c1],
            lambda: len(reader.seen.keys() | _lines(tmp_path / "member.out")) == 40,
            30,
            "every record read by one member or the other",
        )
        # the killed member committed each record it printed: at most its last one comes again
        others = _lines(tmp_path / "member.out")
        assert len(set(reader.seen) & others) <= PARTITIONS
    finally:
        if member.poll() is None:
            member.kill()
        out.close()
        c1.close()


def _lines(path: Path) -> set[int]:
    return {int(line) for line in path.read_text().split() if line.strip()}


def test_a_static_member_that_restarts_gets_its_partitions_back_without_a_rebalance(
    remote: RemoteStore,
) -> None:
    topic, group = unique("sensors"), unique("static-readers")
    create_topic(remote, topic)
    produce(remote, topic, range(20))
    events: list[str] = []

    def static(instance: str) -> confluent_kafka.Consumer:
        return confluent_kafka.Consumer(
            {
                "bootstrap.servers": remote.bootstrap,
                "group.id": group,
                "group.instance.id": instance,
                "session.timeout.ms": SESSION_MS,
                "heartbeat.interval.ms": 500,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
            },
            logger=_LOG,
        )

    c1, c2 = static("box-1"), static("box-2")
    c1.subscribe(
        [topic],
        on_assign=lambda _c, ps: events.append("assign"),
        on_revoke=lambda _c, ps: events.append("revoke"),
    )
    c2.subscribe([topic])
    reader = Reader()
    try:
        reader.until(
            [c1, c2],
            lambda: partitions_of(c1) and partitions_of(c2) and len(reader.seen) == 20,
            60,
            "both static members reading",
        )
        held = partitions_of(c2)
        events.clear()
        c2.close()  # a static member leaves no word: its place is kept for its session
        c2 = static("box-2")
        c2.subscribe([topic])
        reader.until([c1, c2], lambda: partitions_of(c2) == held, SESSION_MS / 1000, "rejoin")
        reader.poll([c1, c2], rounds=10)
        assert events == []  # the other member saw no rebalance

        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": remote.bootstrap}, logger=_LOG)
        listed = admin.list_consumer_groups().result(timeout=30)
        assert group in {g.group_id for g in listed.valid}
        (described,) = [
            f.result(timeout=30) for f in admin.describe_consumer_groups([group]).values()
        ]
        assert described.state == confluent_kafka.ConsumerGroupState.STABLE
        assert described.partition_assignor == "range"
        members = {m.group_instance_id: m for m in described.members}
        assert set(members) == {"box-1", "box-2"}
        assert {tp.partition for tp in members["box-2"].assignment.topic_partitions} == held
        (refused,) = admin.delete_consumer_groups([group]).values()
        with pytest.raises(confluent_kafka.KafkaException, match="NON_EMPTY_GROUP"):
            refused.result(timeout=30)
    finally:
        c1.close()
        c2.close()


@pytest.mark.parametrize(
    ("leader", "assignor"),
    [("millstream", "range"), ("librdkafka", "roundrobin"), ("librdkafka", None)],
    ids=["ours-leads-range", "librdkafka-leads-roundrobin", "both-defaults"],
)
async def test_our_client_and_librdkafka_share_a_group_and_resume_from_each_other_s_commits(
    remote: RemoteStore, leader: str, assignor: str | None
) -> None:
    # the member that joins first leads the group: it runs the assignor for both, and the
    # other decodes its assignment; None: each client's default assignors, as a user gets them
    topic, group = unique("shared"), unique("mixed")
    create_topic(remote, topic)
    everything = {f"{p}-{i}" for p in range(PARTITIONS) for i in range(10)}
    conn = await connect(remote.url)
    theirs = confluent_kafka.Consumer(
        {
            "bootstrap.servers": remote.bootstrap,
            "group.id": group,
            "session.timeout.ms": SESSION_MS,
            "heartbeat.interval.ms": 500,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            **({"partition.assignment.strategy": assignor} if assignor else {}),
        },
        logger=_LOG,
    )
    ours = None
    seen: Counter[str] = Counter()

    def their_poll() -> str | None:
        message = theirs.poll(0.05)
        if message is None or message.error():
            return None
        theirs.commit(message=message, asynchronous=False)
        return message.value().decode()

    async def our_poll(consumer) -> list[str]:
        got = await consumer.getmany(timeout_ms=50)
        if got:
            await consumer.commit()
        return [r.value.decode() for records in got.values() for r in records]

    def held(consumer) -> set[int]:
        return {tp.partition for tp in consumer.assignment()}

    try:
        async with conn.producer() as producer:
            for value in sorted(everything):
                producer.send(topic, value.encode(), partition=int(value.split("-")[0]))
        assignors = {"assignors": (assignor,)} if assignor else {}
        if leader == "librdkafka":
            theirs.subscribe([topic])
            deadline = time.monotonic() + 30
            while not partitions_of(theirs):
                assert time.monotonic() < deadline, "librdkafka alone got no partitions"
                seen.update(v for v in [their_poll()] if v)
        ours = conn.consumer(
            [topic], group=group, auto_offset_reset="earliest", client_id="ours", **assignors
        )
        if leader == "millstream":
            assert len(await ours.wait_for_assignment(30_000)) == PARTITIONS
            theirs.subscribe([topic])

        deadline = time.monotonic() + 60
        while not (held(ours) and partitions_of(theirs) and set(seen) == everything):
            assert time.monotonic() < deadline, (
                f"not shared: ours {held(ours)}, librdkafka {partitions_of(theirs)}, "
                f"{len(set(seen))} of {len(everything)} read"
            )
            seen.update(await our_poll(ours))
            seen.update(v for v in [their_poll()] if v)
        assert held(ours).isdisjoint(partitions_of(theirs))
        assert held(ours) | partitions_of(theirs) == set(range(PARTITIONS))
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": remote.bootstrap}, logger=_LOG)
        (shown,) = [f.result(timeout=30) for f in admin.describe_consumer_groups([group]).values()]
        assert len(shown.members) == 2
        if assignor:
            assert shown.partition_assignor == assignor
        await ours.commit()  # whatever the last poll returned

        # ours leaves: librdkafka takes every partition and starts at ours' commits
        await ours.close()
        deadline = time.monotonic() + SESSION_MS / 1000 + 10
        while len(partitions_of(theirs)) < PARTITIONS:
            assert time.monotonic() < deadline, "librdkafka did not take every partition"
            seen.update(v for v in [their_poll()] if v)
        later = [f"{p}-{i}" for p in range(PARTITIONS) for i in range(10, 12)]
        async with conn.producer() as producer:
            for value in later:
                producer.send(topic, value.encode(), partition=int(value.split("-")[0]))
        after: list[str] = []
        deadline = time.monotonic() + 30
        while set(after) != set(later):
            assert time.monotonic() < deadline, f"librdkafka read {after} of {later}"
            after += [v for v in [their_poll()] if v]
        for _ in range(10):
            after += [v for v in [their_poll()] if v]
        assert sorted(after) == sorted(later)  # nothing ours committed came again
        theirs.close()
        theirs = None

        # a new member of ours starts at librdkafka's commits: nothing is left to read
        lags = (await conn.admin().describe_group(group)).offsets
        assert {(lag.partition, lag.committed, lag.lag) for lag in lags} == {
            (p, 12, 0) for p in range(PARTITIONS)
        }
        ours = conn.consumer([topic], group=group, auto_offset_reset="earliest", client_id="new")
        assert len(await ours.wait_for_assignment(30_000)) == PARTITIONS
        assert await ours.getmany(timeout_ms=500) == {}
        assert {await ours.committed(TopicPartition(topic, p)) for p in range(PARTITIONS)} == {12}
    finally:
        if theirs is not None:
            theirs.close()
        await conn.close()
