"""The consumer protocol bytes and the client-side assignors, checked against kafka-python's
own encodings and assignors, so members of other clients can share a group with ours."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from kafka.protocol.old.consumer_protocol import (
    ConsumerProtocolMemberAssignment_v0,
    ConsumerProtocolMemberMetadata_v0,
)

from millstream.core.client.network import (
    Assignment,
    Subscription,
    assign_range,
    assign_roundrobin,
    assign_sticky,
)
from millstream.core.errors import ProtocolError
from millstream.core.record import TopicPartition


def test_subscription_bytes_are_kafka_pythons() -> None:
    ours = Subscription(("orders", "payments")).encode()
    theirs = ConsumerProtocolMemberMetadata_v0(0, ["orders", "payments"], None).encode()
    assert ours == theirs
    decoded = ConsumerProtocolMemberMetadata_v0.decode(ours)
    assert decoded.topics == ["orders", "payments"]


def test_kafka_python_subscription_decodes() -> None:
    theirs = ConsumerProtocolMemberMetadata_v0(0, ["a", "b"], b"user").encode()
    assert Subscription.decode(theirs) == Subscription(("a", "b"), b"user")


def test_a_v1_subscription_with_owned_partitions_decodes() -> None:
    # version 1 (Java's cooperative clients) adds owned partitions after the user data
    v1 = bytearray(b"\x00\x01" + b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\xff\xff\xff\xff")
    v1 += b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\x00\x00\x00\x02" + b"\x00\x00\x00\x00"
    v1 += b"\x00\x00\x00\x03"
    found = Subscription.decode(bytes(v1))
    assert found.topics == ("t",)
    assert found.owned == (TopicPartition("t", 0), TopicPartition("t", 3))


def test_assignment_bytes_are_kafka_pythons() -> None:
    tps = (TopicPartition("b", 1), TopicPartition("a", 2), TopicPartition("a", 0))
    ours = Assignment(tps).encode()
    theirs = ConsumerProtocolMemberAssignment_v0(0, [("a", [0, 2]), ("b", [1])], None).encode()
    assert ours == theirs
    assert set(Assignment.decode(theirs).partitions) == set(tps)


def test_an_empty_assignment_is_no_partitions_and_garbage_is_refused() -> None:
    assert Assignment.decode(b"").partitions == ()
    with pytest.raises(ProtocolError):
        Assignment.decode(b"\x00\x00\x00\x00\x00\x09")
    with pytest.raises(ProtocolError):
        Subscription.decode(b"\x00")


def test_range_gives_the_first_members_one_more() -> None:
    members = {m: Subscription(("t0", "t1")) for m in ("c0", "c1")}
    got = assign_range(members, {"t0": 3, "t1": 3})
    assert got["c0"] == tuple(
        TopicPartition(t, p) for t, p in (("t0", 0), ("t0", 1), ("t1", 0), ("t1", 1))
    )
    assert got["c1"] == (TopicPartition("t0", 2), TopicPartition("t1", 2))


def test_roundrobin_skips_members_not_subscribed() -> None:
    members = {
        "c0": Subscription(("t0",)),
        "c1": Subscription(("t0", "t1")),
        "c2": Subscription(("t0", "t1", "t2")),
    }
    got = assign_roundrobin(members, {"t0": 1, "t1": 2, "t2": 3})
    assert got["c0"] == (TopicPartition("t0", 0),)
    assert got["c1"] == (TopicPartition("t1", 0),)
    assert got["c2"] == tuple(
        TopicPartition(t, p) for t, p in (("t1", 1), ("t2", 0), ("t2", 1), ("t2", 2))
    )


class _Cluster:
    def __init__(self, counts: dict[str, int]) -> None:
        self.counts = counts

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        count = self.counts.get(topic)
        return None if count is None else set(range(count))


_TOPICS = ["a", "b", "c", "d"]


@settings(max_examples=150, deadline=None)
@given(
    counts=st.fixed_dictionaries({t: st.integers(1, 9) for t in _TOPICS}),
    subscriptions=st.lists(
        st.lists(st.sampled_from(_TOPICS), min_size=1, max_size=4, unique=True),
        min_size=1,
        max_size=6,
    ),
    uniform=st.booleans(),
)
def test_assignors_place_partitions_as_kafka_python_does(
    counts: dict[str, int], subscriptions: list[list[str]], uniform: bool
) -> None:
    if uniform:
        subscriptions = [subscriptions[0]] * len(subscriptions)
    members = {f"member-{i}": Subscription(tuple(sorted(t))) for i, t in enumerate(subscriptions)}
    theirs_members = [
        SimpleNamespace(
            member_id=member,
            group_instance_id=None,
            metadata=SimpleNamespace(topics=list(sub.topics)),
        )
        for member, sub in members.items()
    ]
    pairs: list[tuple[Any, Any]] = [(assign_range, RangePartitionAssignor)]
    if len({s.topics for s in members.values()}) == 1:
        # kafka-python's round robin fails on members with different subscriptions (it takes
        # a (instance id, member id) pair for a member id): compare the uniform case, and the
        # other against the Java client's documented example above
        pairs.append((assign_roundrobin, RoundRobinPartitionAssignor))
    for ours_assign, theirs_assignor in pairs:
        ours = ours_assign(members, counts)
        theirs = theirs_assignor.assign(_Cluster(counts), theirs_members)
        for member in members:
            expected = sorted(
                TopicPartition(t, p) for t, ps in theirs[member].assigned_partitions for p in ps
            )
            assert sorted(ours[member]) == expected, (theirs_assignor.name, member)
        every = [tp for tps in ours.values() for tp in tps]
        wanted = {t for s in members.values() for t in s.topics}
        assert sorted(every) == sorted(
            TopicPartition(t, p) for t in wanted for p in range(counts[t])
        )


def test_a_subscription_with_owned_partitions_is_version_1_and_reads_back() -> None:
    owned = (TopicPartition("t", 3), TopicPartition("t", 0))
    raw = Subscription(("t",), None, owned).encode()
    assert raw[:2] == b"\x00\x01"
    assert set(Subscription.decode(raw).owned) == set(owned)
    # a member owning nothing keeps writing version 0, byte for byte kafka-python's
    assert Subscription(("t",)).encode()[:2] == b"\x00\x00"


def _sticky_round(owned: dict[str, list[int]], count: int) -> dict[str, set[int]]:
    members = {
        m: Subscription(("t",), None, tuple(TopicPartition("t", p) for p in ps))
        for m, ps in owned.items()
    }
    got = assign_sticky(members, {"t": count})
    return {m: {tp.partition for tp in tps} for m, tps in got.items()}


def test_sticky_moves_only_what_a_joining_member_needs() -> None:
    # one member held all six; two join: each takes two, the first keeps two of its own
    got = _sticky_round({"a": [0, 1, 2, 3, 4, 5], "b": [], "c": []}, 6)
    assert got["a"] < {0, 1, 2, 3, 4, 5} and len(got["a"]) == 2
    assert sorted(len(v) for v in got.values()) == [2, 2, 2]
    # the member that left loses its partitions to the others; the others keep theirs
    got = _sticky_round({"a": [0, 1], "c": [4, 5]}, 6)
    assert {0, 1} <= got["a"] and {4, 5} <= got["c"]
    assert got["a"] | got["c"] == {0, 1, 2, 3, 4, 5}


def test_sticky_keeps_a_single_partition_with_its_owner() -> None:
    # what the pipeline's source lease relies on: whoever joins, the owner keeps it
    for newcomer in ("0-first", "z-last"):
        got = _sticky_round({"m-owner": [0], newcomer: []}, 1)
        assert got == {"m-owner": {0}, newcomer: set()}


@settings(max_examples=300, deadline=None)
@given(
    count=st.integers(0, 12),
    claims=st.lists(st.lists(st.integers(0, 14), max_size=8), min_size=1, max_size=5),
)
def test_sticky_is_complete_balanced_and_keeps_fair_shares(
    count: int, claims: list[list[int]]
) -> None:
    owned = {f"m{i}": sorted(set(c)) for i, c in enumerate(claims)}
    got = _sticky_round(owned, count)
    everything = [p for ps in got.values() for p in ps]
    assert sorted(everything) == list(range(count))  # each partition exactly once
    sizes = [len(ps) for ps in got.values()]
    assert max(sizes) - min(sizes) <= 1
    floor = count // len(owned)
    for member, ps in owned.items():
        # a member keeps at least its fair share of what it alone claimed and still exists
        alone = {p for p in ps if p < count} - {
            p for other, qs in owned.items() if other != member for p in qs
        }
        assert len(got[member] & alone) >= min(len(alone), floor)
