"""kcat's balanced consumer (``kcat -G group topic``): two members share the partitions, one is
killed and the other takes them all within the session timeout, and a new member of the group
starts from the committed offsets, also after a broker restart.

The sharing and failing over runs against ``millstream broker`` and against Apache Kafka (the
``remote`` fixture); the restart runs on a millstream broker of its own."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker_server import BrokerServer
from remote_store import RemoteStore

KCAT = shutil.which("kcat")
MILLSTREAM = Path(sys.executable).parent / "millstream"
pytestmark = pytest.mark.skipif(KCAT is None, reason="kcat is not installed")

PARTITIONS = 4
SESSION_S = 6
BROKER_ARGS = ("--num-partitions", str(PARTITIONS), "--group-initial-rebalance-delay-ms", "0")
_EVENT = re.compile(r"rebalanced \(memberid [^)]*\): (assigned|revoked): (.*)$")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[BrokerServer]:
    server = BrokerServer(tmp_path / "data", None, *BROKER_ARGS).start()
    try:
        yield server
    finally:
        server.kill()


def create_topic(store: RemoteStore, topic: str) -> None:
    """``topic`` with PARTITIONS partitions (the shared stores auto-create with fewer)."""
    create = ["topics", "create", topic, "--partitions", str(PARTITIONS), "--store", store.url]
    result = subprocess.run(
        [str(MILLSTREAM), *create],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def produce(
    server: BrokerServer | RemoteStore, topic: str, start: int, per_partition: int
) -> list[str]:
    """``per_partition`` records into each partition; their values."""
    values = []
    for p in range(PARTITIONS):
        lines = [f"{p}-{start + i}" for i in range(per_partition)]
        subprocess.run(
            [KCAT, "-b", server.bootstrap, "-P", "-t", topic, "-p", str(p)],
            input="\n".join(lines) + "\n",
            text=True,
            check=True,
            timeout=30,
        )
        values += lines
    return values


class Member:
    """One ``kcat -G`` process, its records in ``NAME.out`` and its rebalances in ``NAME.err``."""

    def __init__(
        self, server: BrokerServer | RemoteStore, group: str, topic: str, folder: Path, name: str
    ):
        self.out, self.err = folder / f"{name}.out", folder / f"{name}.err"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.process = subprocess.Popen(
                [
                    KCAT,
                    "-b",
                    server.bootstrap,
                    "-G",
                    group,
                    "-u",  # unbuffered: each record is in the file as soon as it is read
                    "-f",
                    "%s\n",
                    "-X",
                    "auto.offset.reset=earliest",
                    "-X",
                    f"session.timeout.ms={SESSION_S * 1000}",
                    "-X",
                    "heartbeat.interval.ms=500",
                    "-X",
                    "log_level=0",
                    topic,
                ],
                stdout=out,
                stderr=err,
            )

    def partitions(self) -> set[int]:
        """What the latest rebalance gave this member."""
        held: set[int] = set()
        for line in self.err.read_text(errors="replace").splitlines():
            event = _EVENT.search(line)
            if event:
                found = {int(p) for p in re.findall(r"\[(\d+)\]", event.group(2))}
                held = found if event.group(1) == "assigned" else set()
        return held

    def records(self) -> list[str]:
        return [line for line in self.out.read_text(errors="replace").splitlines() if line]

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for(condition, timeout: float, what: str) -> float:
    start = time.monotonic()
    while not condition():
        assert time.monotonic() - start < timeout, f"{what} did not happen in {timeout}s"
        time.sleep(0.1)
    return time.monotonic() - start


def test_kcat_balanced_consumers_share_fail_over_and_resume(remote: RemoteStore, tmp_path):
    topic, group = f"clicks-{uuid.uuid4().hex[:8]}", f"counters-{uuid.uuid4().hex[:8]}"
    create_topic(remote, topic)
    first = produce(remote, topic, 0, 25)
    a = Member(remote, group, topic, tmp_path, "a")
    b = Member(remote, group, topic, tmp_path, "b")
    members = [a, b]
    try:
        wait_for(
            lambda: (
                a.partitions()
                and b.partitions()
                and set(a.records()) | set(b.records()) >= set(first)
            ),
            60,
            "both members reading every record",
        )
        assert a.partitions().isdisjoint(b.partitions())
        assert a.partitions() | b.partitions() == set(range(PARTITIONS))

        b.stop(signal.SIGKILL)
        took = wait_for(
            lambda: a.partitions() == set(range(PARTITIONS)),
            SESSION_S + 6,
            "the survivor taking every partition",
        )
        assert took <= SESSION_S + 5
        second = produce(remote, topic, 100, 10)
        wait_for(lambda: set(a.records()) >= set(second), 30, "reading the next records")
        a.stop()  # a clean stop commits what it read
        everything = a.records() + b.records()
        assert set(everything) == set(first + second)  # nothing skipped
        # only the killed member's uncommitted tail may have been read twice
        assert len(everything) - len(set(everything)) <= len(b.records())

        third = produce(remote, topic, 200, 3)
        c = Member(remote, group, topic, tmp_path, "c")
        members.append(c)
        wait_for(lambda: set(c.records()) >= set(third), 60, "a new member reading on")
        time.sleep(1)
        assert sorted(c.records()) == sorted(third)  # it started at the committed offsets
    finally:
        for member in members:
            member.stop(signal.SIGKILL)


def test_after_a_broker_restart_a_new_kcat_member_starts_at_the_committed_offsets(server, tmp_path):
    topic, group = "clicks", "counters"
    first = produce(server, topic, 0, 5)
    a = Member(server, group, topic, tmp_path, "a")
    members = [a]
    try:
        wait_for(lambda: set(a.records()) >= set(first), 60, "reading every record")
        a.stop()  # a clean stop commits what it read

        # kcat gives up when its broker goes away, so the group resumes with a new member
        assert server.stop() == 0
        server.start()
        second = produce(server, topic, 200, 3)
        b = Member(server, group, topic, tmp_path, "b")
        members.append(b)
        wait_for(lambda: set(b.records()) >= set(second), 60, "reading on after a restart")
        time.sleep(1)
        assert sorted(b.records()) == sorted(second)  # it started at the committed offsets
    finally:
        for member in members:
            member.stop(signal.SIGKILL)
