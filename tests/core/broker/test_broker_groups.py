"""The broker's group coordinator, driven directly: Kafka's classic group protocol state machine.

Timeouts are tens of milliseconds here (the coordinator's minimum session timeout is lowered),
so the timers run for real on the event loop.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from millstream.core.broker.groups import (
    COMPLETING_REBALANCE,
    DEAD,
    EMPTY,
    PREPARING_REBALANCE,
    STABLE,
    GroupCoordinator,
    GroupSettings,
    JoinResult,
)
from millstream.core.groups import OffsetAndMetadata
from millstream.core.log import LogStore
from millstream.core.protocol import ErrorCode
from millstream.core.record import TopicPartition as TP

FAST = GroupSettings(min_session_timeout_ms=10, initial_rebalance_delay_ms=0)
SESSION = 300  # ms: long enough for a busy machine, short enough for the test


@dataclass
class Context:
    store: LogStore
    node_id: int = 7
    host: str = "127.0.0.1"
    port: int = 19092
    config: Any = field(default=None)


@pytest.fixture
async def store(tmp_path):
    store = LogStore.open(tmp_path / "data")
    store.create_topic("t", 4)
    yield store
    await store.close()


@pytest.fixture
async def coordinator(store):
    coordinator = GroupCoordinator(Context(store), FAST)
    await coordinator.start()
    yield coordinator
    await coordinator.close()


def join(
    coordinator: GroupCoordinator,
    member_id: str = "",
    *,
    group: str = "g",
    protocols=(("range", b"meta"),),
    session_ms: int = SESSION,
    rebalance_ms: int = SESSION,
    instance: str | None = None,
    v4: bool = False,
) -> asyncio.Task[JoinResult]:
    return asyncio.ensure_future(
        coordinator.join(
            group,
            member_id,
            protocol_type="consumer",
            protocols=protocols,
            session_timeout_ms=session_ms,
            rebalance_timeout_ms=rebalance_ms,
            group_instance_id=instance,
            client_id="client",
            require_known_member_id=v4,
        )
    )


async def joined_pair(
    coordinator: GroupCoordinator, rebalance_ms: int = SESSION, a_protocols=None, b_protocols=None
) -> tuple[JoinResult, JoinResult]:
    """Two members a (leader) and b of group 'g' at generation 2, CompletingRebalance."""
    a_protocols = a_protocols or (("range", b"meta"),)
    b_protocols = b_protocols or (("range", b"meta"),)
    a = await join(coordinator, protocols=a_protocols, rebalance_ms=rebalance_ms)
    await coordinator.sync("g", a.generation, a.member_id, {a.member_id: b"A"})
    b_task = join(coordinator, protocols=b_protocols, rebalance_ms=rebalance_ms)
    await asyncio.sleep(0)
    assert coordinator.heartbeat("g", a.generation, a.member_id) == ErrorCode.REBALANCE_IN_PROGRESS
    a_again = join(coordinator, a.member_id, protocols=a_protocols, rebalance_ms=rebalance_ms)
    a2, b = await asyncio.gather(a_again, b_task)
    assert a2.generation == b.generation == 2
    return a2, b


async def stable_pair(coordinator: GroupCoordinator) -> tuple[JoinResult, JoinResult]:
    """Two members a (leader) and b in a Stable group 'g'; returns their join answers."""
    a2, b = await joined_pair(coordinator)
    assignments = {a2.member_id: b"for-a", b.member_id: b"for-b"}
    await asyncio.gather(
        coordinator.sync("g", a2.generation, a2.member_id, assignments),
        coordinator.sync("g", b.generation, b.member_id),
    )
    return a2, b


async def test_a_new_member_on_v4_is_told_its_id_then_leads_a_group_of_one(coordinator):
    first = await join(coordinator, v4=True)
    assert first.error == ErrorCode.MEMBER_ID_REQUIRED
    assert first.member_id.startswith("client-")
    assert coordinator.state("g") == EMPTY

    joined = await join(coordinator, first.member_id, v4=True)
    assert joined.error == ErrorCode.NONE
    assert (joined.generation, joined.leader, joined.protocol_name) == (1, first.member_id, "range")
    assert [(m.member_id, m.metadata) for m in joined.members] == [(first.member_id, b"meta")]
    assert coordinator.state("g") == COMPLETING_REBALANCE

    synced = await coordinator.sync("g", 1, first.member_id, {first.member_id: b"\x00\x01"})
    assert synced.error == ErrorCode.NONE
    assert synced.assignment == b"\x00\x01"
    assert coordinator.state("g") == STABLE


async def test_a_second_member_makes_the_group_rebalance_and_each_gets_the_leaders_bytes(
    coordinator,
):
    a, b = await stable_pair(coordinator)
    assert a.generation == b.generation == 2
    assert a.leader == b.leader == a.member_id
    assert {m.member_id for m in a.members} == {a.member_id, b.member_id}
    assert b.members == ()  # only the leader sees the members
    assert (await coordinator.sync("g", 2, b.member_id)).assignment == b"for-b"
    described = coordinator.describe("g")
    assert described.state == STABLE
    assert {m.member_id: m.assignment for m in described.members} == {
        a.member_id: b"for-a",
        b.member_id: b"for-b",
    }
    assert coordinator.heartbeat("g", 2, b.member_id) == ErrorCode.NONE


async def test_a_follower_waits_in_sync_until_the_leader_brings_the_assignment(coordinator):
    leader, follower = await joined_pair(coordinator)
    waiting = asyncio.ensure_future(coordinator.sync("g", 2, follower.member_id))
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await coordinator.sync("g", 2, leader.member_id, {follower.member_id: b"yours"})
    assert (await waiting).assignment == b"yours"


async def test_heartbeat_errors_are_kafkas(coordinator):
    a = await join(coordinator)
    assert coordinator.heartbeat("g", 1, "nobody") == ErrorCode.UNKNOWN_MEMBER_ID
    assert coordinator.heartbeat("other", 1, a.member_id) == ErrorCode.UNKNOWN_MEMBER_ID
    assert coordinator.heartbeat("g", 0, a.member_id) == ErrorCode.ILLEGAL_GENERATION
    assert coordinator.heartbeat("g", 1, a.member_id) == ErrorCode.NONE  # CompletingRebalance
    sync = await coordinator.sync("g", 5, a.member_id, {})
    assert sync.error == ErrorCode.ILLEGAL_GENERATION


async def test_a_member_that_stops_heartbeating_is_removed_after_its_session_timeout(coordinator):
    a, b = await stable_pair(coordinator)
    loop = asyncio.get_running_loop()
    start = loop.time()
    while coordinator.heartbeat("g", 2, a.member_id) == ErrorCode.NONE:
        assert loop.time() - start < 3, "b's session never expired"
        await asyncio.sleep(0.05)
    waited = loop.time() - start
    assert waited >= SESSION / 1000 * 0.8
    assert coordinator.heartbeat("g", 2, b.member_id) == ErrorCode.UNKNOWN_MEMBER_ID
    alone = await join(coordinator, a.member_id)
    assert alone.generation == 3
    assert [m.member_id for m in alone.members] == [a.member_id]


async def test_a_member_that_does_not_rejoin_is_dropped_at_the_rebalance_timeout(coordinator):
    a, b = await stable_pair(coordinator)
    # b keeps heartbeating but never rejoins; a rejoins and waits at most the rebalance timeout
    rejoin = join(coordinator, a.member_id, rebalance_ms=200)
    loop = asyncio.get_running_loop()
    start = loop.time()
    while not rejoin.done():
        coordinator.heartbeat("g", 2, b.member_id)
        await asyncio.sleep(0.02)
    assert 0.15 <= loop.time() - start < 2
    result = rejoin.result()
    assert result.generation == 3
    assert [m.member_id for m in result.members] == [a.member_id]
    assert coordinator.heartbeat("g", 2, b.member_id) == ErrorCode.UNKNOWN_MEMBER_ID


async def test_a_member_that_never_syncs_is_removed_and_the_group_rebalances(coordinator):
    leader, follower = await joined_pair(coordinator, rebalance_ms=150)
    await coordinator.sync("g", 2, leader.member_id, {})
    loop = asyncio.get_running_loop()
    start = loop.time()
    while coordinator.heartbeat("g", 2, leader.member_id) == ErrorCode.NONE:
        assert loop.time() - start < 2, "the follower was never removed"
        await asyncio.sleep(0.02)
    assert loop.time() - start >= 0.1
    assert coordinator.heartbeat("g", 2, leader.member_id) == ErrorCode.REBALANCE_IN_PROGRESS
    assert coordinator.heartbeat("g", 2, follower.member_id) == ErrorCode.UNKNOWN_MEMBER_ID


async def test_leave_group_takes_a_batch_of_members(coordinator):
    a, b = await stable_pair(coordinator)
    errors = coordinator.leave("g", [(a.member_id, None), (b.member_id, None), ("ghost", None)])
    assert errors == [ErrorCode.NONE, ErrorCode.NONE, ErrorCode.UNKNOWN_MEMBER_ID]
    await asyncio.sleep(0)
    assert coordinator.state("g") == DEAD  # empty and without offsets: forgotten
    assert coordinator.leave("nope", [("x", None)]) == [ErrorCode.UNKNOWN_MEMBER_ID]


async def test_when_one_member_leaves_the_other_rejoins_alone(coordinator):
    a, b = await stable_pair(coordinator)
    assert coordinator.leave("g", [(b.member_id, None)]) == [ErrorCode.NONE]
    assert coordinator.state("g") == PREPARING_REBALANCE
    assert coordinator.heartbeat("g", 2, a.member_id) == ErrorCode.REBALANCE_IN_PROGRESS
    again = await join(coordinator, a.member_id)
    assert (again.generation, [m.member_id for m in again.members]) == (3, [a.member_id])


async def test_a_static_member_rejoining_unchanged_keeps_its_place_without_a_rebalance(
    coordinator,
):
    a = await join(coordinator, instance="box-1")
    b_task = join(coordinator, instance="box-2")
    await asyncio.sleep(0)
    a, b = await asyncio.gather(join(coordinator, a.member_id, instance="box-1"), b_task)
    assignments = {a.member_id: b"A", b.member_id: b"B"}
    await asyncio.gather(
        coordinator.sync("g", a.generation, a.member_id, assignments, group_instance_id="box-1"),
        coordinator.sync("g", b.generation, b.member_id, group_instance_id="box-2"),
    )
    # box-2 restarts: it forgot its member id but keeps its instance id
    back = await join(coordinator, instance="box-2")
    assert back.error == ErrorCode.NONE
    assert back.member_id not in (a.member_id, b.member_id)
    assert back.generation == b.generation  # no rebalance
    assert coordinator.state("g") == STABLE
    synced = await coordinator.sync("g", back.generation, back.member_id, group_instance_id="box-2")
    assert synced.assignment == b"B"
    assert coordinator.heartbeat("g", a.generation, a.member_id) == ErrorCode.NONE
    fenced = coordinator.heartbeat("g", b.generation, b.member_id, group_instance_id="box-2")
    assert fenced == ErrorCode.FENCED_INSTANCE_ID


async def test_a_static_leader_rejoining_unchanged_is_not_told_to_assign_again(coordinator):
    a = await join(coordinator, instance="box-1")
    await coordinator.sync("g", 1, a.member_id, {a.member_id: b"mine"}, group_instance_id="box-1")
    back = await join(coordinator, instance="box-1")
    assert back.generation == 1
    assert back.leader == a.member_id != back.member_id  # so it syncs as a follower
    synced = await coordinator.sync("g", 1, back.member_id, group_instance_id="box-1")
    assert synced.assignment == b"mine"


async def test_a_static_member_rejoining_with_new_metadata_makes_a_rebalance(coordinator):
    a = await join(coordinator, instance="box-1")
    await coordinator.sync("g", 1, a.member_id, {a.member_id: b"x"}, group_instance_id="box-1")
    back = await join(coordinator, instance="box-1", protocols=(("range", b"new topics"),))
    assert back.generation == 2
    assert back.leader == back.member_id
    assert [m.metadata for m in back.members] == [b"new topics"]


async def test_the_protocol_chosen_is_one_every_member_supports(coordinator):
    leader, _ = await joined_pair(
        coordinator,
        a_protocols=(("range", b"r"), ("sticky", b"s")),
        b_protocols=(("sticky", b"s2"), ("roundrobin", b"rr2")),
    )
    assert leader.protocol_name == "sticky"
    assert {m.metadata for m in leader.members} == {b"s", b"s2"}
    odd = await join(coordinator, protocols=(("range", b"r"),))
    assert odd.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL
    other_type = await coordinator.join(
        "g",
        "",
        protocol_type="connect",
        protocols=[("range", b"")],
        session_timeout_ms=SESSION,
        require_known_member_id=False,
    )
    assert other_type.error == ErrorCode.INCONSISTENT_GROUP_PROTOCOL


async def test_join_refuses_bad_session_timeouts_and_group_ids(coordinator):
    assert (await join(coordinator, session_ms=1)).error == ErrorCode.INVALID_SESSION_TIMEOUT
    assert (await join(coordinator, group="")).error == ErrorCode.INVALID_GROUP_ID
    assert (await join(coordinator, "stranger")).error == ErrorCode.UNKNOWN_MEMBER_ID


async def test_members_joining_within_the_initial_delay_share_the_first_generation(store):
    settings = GroupSettings(min_session_timeout_ms=10, initial_rebalance_delay_ms=100)
    coordinator = GroupCoordinator(Context(store), settings)
    await coordinator.start()
    try:
        a_task = join(coordinator)
        await asyncio.sleep(0.03)
        b_task = join(coordinator)
        a, b = await asyncio.gather(a_task, b_task)
        assert a.generation == b.generation == 1
        assert len(next(r for r in (a, b) if r.member_id == r.leader).members) == 2
    finally:
        await coordinator.close()


async def test_offset_commits_check_the_member_and_generation(coordinator):
    tp = TP("t", 0)
    a = await join(coordinator)
    refused = await coordinator.commit_offsets("g", 1, a.member_id, {tp: OffsetAndMetadata(5)})
    assert refused == {tp: ErrorCode.REBALANCE_IN_PROGRESS}  # CompletingRebalance
    await coordinator.sync("g", 1, a.member_id, {})
    assert await coordinator.commit_offsets("g", 1, a.member_id, {tp: OffsetAndMetadata(5)}) == {
        tp: ErrorCode.NONE
    }
    assert await coordinator.commit_offsets("g", 0, a.member_id, {tp: OffsetAndMetadata(6)}) == {
        tp: ErrorCode.ILLEGAL_GENERATION
    }
    assert await coordinator.commit_offsets("g", 1, "nobody", {tp: OffsetAndMetadata(6)}) == {
        tp: ErrorCode.UNKNOWN_MEMBER_ID
    }
    # a consumer outside the group protocol may not commit while the group has members
    assert await coordinator.commit_offsets("g", -1, "", {tp: OffsetAndMetadata(6)}) == {
        tp: ErrorCode.UNKNOWN_MEMBER_ID
    }
    assert coordinator.fetch_offsets("g", [tp, TP("t", 1)]) == {
        tp: coordinator.fetch_offsets("g")[tp],
        TP("t", 1): None,
    }
    assert coordinator.fetch_offsets("g")[tp].offset == 5


async def test_simple_commits_go_to_a_group_without_members(coordinator):
    tp, missing = TP("t", 3), TP("nope", 0)
    result = await coordinator.commit_offsets(
        "solo", -1, "", {tp: OffsetAndMetadata(42, "note"), missing: OffsetAndMetadata(1)}
    )
    assert result == {tp: ErrorCode.NONE, missing: ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
    assert coordinator.fetch_offsets("solo")[tp][:2] == (42, "note")
    assert coordinator.state("solo") == EMPTY
    assert ("solo", "") in coordinator.list_groups()
    too_long = await coordinator.commit_offsets(
        "solo", -1, "", {tp: OffsetAndMetadata(1, "x" * 5000)}
    )
    assert too_long == {tp: ErrorCode.OFFSET_METADATA_TOO_LARGE}
    stale = await coordinator.commit_offsets("gone", 3, "old-member", {tp: OffsetAndMetadata(1)})
    assert stale == {tp: ErrorCode.ILLEGAL_GENERATION}


async def test_committed_offsets_survive_a_restart(tmp_path):
    tp = TP("t", 2)
    store = LogStore.open(tmp_path / "data")
    store.create_topic("t", 4)
    coordinator = GroupCoordinator(Context(store), FAST)
    await coordinator.start()
    await coordinator.commit_offsets("g", -1, "", {tp: OffsetAndMetadata(17)})
    await coordinator.close()
    await store.close()

    store = LogStore.open(tmp_path / "data")
    coordinator = GroupCoordinator(Context(store), FAST)
    await coordinator.start()
    try:
        assert coordinator.fetch_offsets("g")[tp].offset == 17
        assert coordinator.state("g") == EMPTY
    finally:
        await coordinator.close()
        await store.close()


async def test_delete_groups_only_deletes_empty_groups(coordinator):
    tp = TP("t", 0)
    a = await join(coordinator)
    await coordinator.sync("g", 1, a.member_id, {})
    await coordinator.commit_offsets("g", 1, a.member_id, {tp: OffsetAndMetadata(1)})
    assert await coordinator.delete_group("g") == ErrorCode.NON_EMPTY_GROUP
    assert await coordinator.delete_group("unknown") == ErrorCode.GROUP_ID_NOT_FOUND
    coordinator.leave("g", [(a.member_id, None)])
    await asyncio.sleep(0)
    assert coordinator.state("g") == EMPTY  # it keeps its offsets
    assert await coordinator.delete_group("g") == ErrorCode.NONE
    assert coordinator.state("g") == DEAD
    assert coordinator.fetch_offsets("g") == {}


async def test_describe_shows_members_and_their_metadata_when_stable(coordinator):
    a = await join(coordinator)
    during = coordinator.describe("g")
    assert (during.state, during.protocol, during.members[0].metadata) == (
        COMPLETING_REBALANCE,
        "",
        b"",
    )
    await coordinator.sync("g", 1, a.member_id, {a.member_id: b"assigned"})
    described = coordinator.describe("g")
    assert (described.state, described.protocol_type, described.protocol) == (
        STABLE,
        "consumer",
        "range",
    )
    (member,) = described.members
    assert (member.client_id, member.metadata, member.assignment) == (
        "client",
        b"meta",
        b"assigned",
    )
    assert coordinator.describe("never").state == DEAD


async def test_a_pending_member_that_never_comes_back_is_forgotten(coordinator):
    first = await join(coordinator, v4=True, session_ms=50)
    assert first.error == ErrorCode.MEMBER_ID_REQUIRED
    deadline = asyncio.get_running_loop().time() + 5  # the 50 ms expiry, on a busy machine
    while coordinator.state("g") != DEAD:
        assert asyncio.get_running_loop().time() < deadline, "the pending member was kept"
        await asyncio.sleep(0.01)
    assert (await join(coordinator, first.member_id, v4=True)).error == (
        ErrorCode.UNKNOWN_MEMBER_ID
    )


async def test_a_restarted_coordinator_knows_its_stable_groups_and_their_members(tmp_path):
    store = LogStore.open(tmp_path / "data")
    store.create_topic("t", 4)
    coordinator = GroupCoordinator(Context(store), FAST)
    await coordinator.start()
    a, b = await stable_pair(coordinator)
    await coordinator.close()
    await store.close()

    store = LogStore.open(tmp_path / "data")
    coordinator = GroupCoordinator(Context(store), FAST)
    await coordinator.start()
    try:
        described = coordinator.describe("g")
        assert (described.state, described.generation, described.protocol) == (STABLE, 2, "range")
        assert {m.member_id: m.assignment for m in described.members} == {
            a.member_id: b"for-a",
            b.member_id: b"for-b",
        }
        # the members carry on where they were: heartbeats and commits of generation 2 work
        assert coordinator.heartbeat("g", 2, a.member_id) == ErrorCode.NONE
        result = await coordinator.commit_offsets(
            "g", 2, b.member_id, {TP("t", 1): OffsetAndMetadata(3)}
        )
        assert result == {TP("t", 1): ErrorCode.NONE}
        # a member that does not come back is removed after its session timeout
        loop = asyncio.get_running_loop()
        start = loop.time()
        while coordinator.heartbeat("g", 2, a.member_id) == ErrorCode.NONE:
            assert loop.time() - start < 3
            await asyncio.sleep(0.05)
        assert coordinator.heartbeat("g", 2, b.member_id) == ErrorCode.UNKNOWN_MEMBER_ID
    finally:
        await coordinator.close()
        await store.close()


async def test_a_deleted_group_stays_deleted_after_a_restart(tmp_path):
    store = LogStore.open(tmp_path / "data")
    store.create_topic("t", 1)
    coordinator = GroupCoordinator(Context(store), FAST)
    await coordinator.start()
    a = await join(coordinator)
    await coordinator.sync("g", 1, a.member_id, {})
    await coordinator.commit_offsets("g", 1, a.member_id, {TP("t", 0): OffsetAndMetadata(1)})
    coordinator.leave("g", [(a.member_id, None)])
    await asyncio.sleep(0)
    assert await coordinator.delete_group("g") == ErrorCode.NONE
    await coordinator.close()
    await store.close()

    store = LogStore.open(tmp_path / "data")
    coordinator = GroupCoordinator(Context(store), FAST)
    await coordinator.start()
    try:
        assert coordinator.state("g") == DEAD
        assert coordinator.list_groups() == []
    finally:
        await coordinator.close()
        await store.close()
