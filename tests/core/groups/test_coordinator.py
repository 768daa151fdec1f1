"""In-process consumer groups: membership, rebalances, states and who may commit."""

from __future__ import annotations

import pytest

from millstream.core.errors import CommitFailedError, StoreError
from millstream.core.groups import GroupCoordinator, OffsetStore
from millstream.core.log import LogStore
from millstream.core.record import TopicPartition as TP


@pytest.fixture
async def store(tmp_path):
    store = LogStore.open(tmp_path / "data")
    store.create_topic("t", 4)
    store.create_topic("u", 2)
    yield store
    await store.close()


@pytest.fixture
async def coordinator(store):
    def count(topic: str) -> int:
        return len(store.topic(topic).partitions) if store.has_topic(topic) else 0

    return GroupCoordinator(OffsetStore.open(store), count)


def held(*members):
    return [sorted(m.partitions()) for m in members]


async def test_a_lone_member_gets_every_partition(coordinator):
    a = coordinator.join("g", ["t", "u"])
    assert sorted(coordinator.sync(a)) == [TP("t", i) for i in range(4)] + [TP("u", 0), TP("u", 1)]


async def test_partitions_move_when_members_join_and_leave(coordinator):
    a = coordinator.join("g", ["t"])
    first = a.generation
    b = coordinator.join("g", ["t"])
    assert a.generation == b.generation == first + 1
    assert a.changed.is_set()
    assert held(a, b) == [[TP("t", 0), TP("t", 2)], [TP("t", 1), TP("t", 3)]]
    coordinator.leave(a)
    assert held(b) == [[TP("t", i) for i in range(4)]]
    assert b.generation == first + 2


async def test_states_follow_the_rebalance(coordinator):
    assert coordinator.describe("g").state == "Dead"
    a = coordinator.join("g", ["t"])
    assert coordinator.describe("g").state == "CompletingRebalance"
    coordinator.sync(a)
    assert coordinator.describe("g").state == "Stable"
    b = coordinator.join("g", ["t"])
    assert coordinator.describe("g").state == "CompletingRebalance"
    coordinator.sync(a)
    assert coordinator.describe("g").state == "CompletingRebalance"
    coordinator.sync(b)
    snapshot = coordinator.describe("g")
    assert snapshot.state == "Stable"
    assert snapshot.protocol == "roundrobin"
    assert [m.member_id for m in snapshot.members] == [a.member_id, b.member_id]
    coordinator.leave(a)
    coordinator.leave(b)
    assert coordinator.describe("g").state == "Empty"
    assert coordinator.list_groups() == ["g"]


async def test_growing_a_topic_rebalances_its_groups(store, coordinator):
    a = coordinator.join("g", ["u"])
    generation = a.generation
    coordinator.topics_changed()  # nothing changed
    assert a.generation == generation
    store.alter_topic("u", partitions=3)
    coordinator.topics_changed()
    assert a.generation == generation + 1
    assert sorted(a.partitions()) == [TP("u", 0), TP("u", 1), TP("u", 2)]


async def test_a_subscription_change_rebalances(coordinator):
    a = coordinator.join("g", ["t"])
    coordinator.subscribe(a, ["u"])
    assert sorted(a.partitions()) == [TP("u", 0), TP("u", 1)]


async def test_only_the_current_owner_may_commit(coordinator):
    a = coordinator.join("g", ["t"])
    coordinator.sync(a)
    await coordinator.commit("g", {TP("t", 1): 10}, member=a, generation=a.synced)
    assert coordinator.committed("g", TP("t", 1)) == 10
    b = coordinator.join("g", ["t"])  # t-1 and t-3 move to b
    with pytest.raises(CommitFailedError, match=r"t-1 for group 'g'.*rebalance"):
        await coordinator.commit("g", {TP("t", 1): 11}, member=a, generation=a.synced)
    assert coordinator.committed("g", TP("t", 1)) == 10
    # a kept t-0 and t-2 and may still commit them, alone or beside the moved ones
    await coordinator.commit("g", {TP("t", 0): 4}, member=a, generation=a.synced)
    offsets = {TP("t", p): 20 + p for p in range(4)}
    with pytest.raises(
        CommitFailedError,
        match=r"^cannot commit t-1, t-3 for group 'g': .* moved them .*; committed: t-0, t-2$",
    ):
        await coordinator.commit("g", offsets, member=a, generation=a.synced)
    assert [coordinator.committed("g", TP("t", p)) for p in range(4)] == [20, 10, 22, None]
    coordinator.sync(b)
    await coordinator.commit("g", {TP("t", 1): 12}, member=b, generation=b.synced)
    assert coordinator.committed("g", TP("t", 1)) == 12


async def test_a_partition_lost_and_regained_unseen_cannot_be_committed(coordinator):
    a = coordinator.join("g", ["t"])
    coordinator.sync(a)
    seen = a.synced
    b = coordinator.join("g", ["t"])
    coordinator.leave(b)  # t-1 came back to a, but a never looked
    assert TP("t", 1) in a.partitions()
    with pytest.raises(CommitFailedError):
        await coordinator.commit("g", {TP("t", 1): 5}, member=a, generation=seen)
    coordinator.sync(a)
    await coordinator.commit("g", {TP("t", 1): 5}, member=a, generation=a.synced)


async def test_members_that_left_cannot_commit(coordinator):
    a = coordinator.join("g", ["t"])
    coordinator.leave(a)
    coordinator.leave(a)  # idempotent
    with pytest.raises(CommitFailedError, match="has left group 'g'"):
        await coordinator.commit("g", {TP("t", 0): 1}, member=a)


async def test_outsiders_commit_only_to_groups_without_members(coordinator):
    await coordinator.commit("g", {TP("t", 0): 3})
    a = coordinator.join("g", ["t"])
    with pytest.raises(CommitFailedError, match="live member"):
        await coordinator.commit("g", {TP("t", 0): 4})
    with pytest.raises(StoreError, match="live member.*stop its consumers"):
        await coordinator.set_offsets("g", {TP("t", 0): 0})
    with pytest.raises(StoreError, match="live member"):
        await coordinator.delete_group("g")
    coordinator.leave(a)
    await coordinator.set_offsets("g", {TP("t", 0): 0})
    assert coordinator.committed("g", TP("t", 0)) == 0
    await coordinator.delete_group("g")
    assert coordinator.describe("g").state == "Dead"
    assert coordinator.list_groups() == []
