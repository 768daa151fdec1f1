"""Consumer groups over the network: members share partitions, rebalance when one joins or
leaves, commit with the embedded transport's semantics, and the admin sees and moves offsets."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from millstream.core.client import Connection, Consumer, connect
from millstream.core.errors import CommitFailedError, StoreError, UnknownGroupError
from millstream.core.record import TopicPartition


@pytest.fixture
async def conn(remote) -> AsyncIterator[Connection]:
    connection = await connect(remote.url)
    yield connection
    await connection.close()


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def fill(conn: Connection, topic: str, partitions: int, per_partition: int) -> None:
    async with conn.producer() as producer:
        for p in range(partitions):
            for i in range(per_partition):
                producer.send(topic, b"%d-%d" % (p, i), partition=p)


async def test_two_members_share_and_one_takes_over_when_the_other_leaves(
    conn: Connection,
) -> None:
    topic, group = fresh("shared"), fresh("g")
    await conn.admin().create_topic(topic, partitions=4)
    await fill(conn, topic, 4, 10)
    first = conn.consumer([topic], group=group, auto_offset_reset="earliest", client_id="a")
    got_first = await first.getmany(timeout_ms=10_000)
    assert got_first and first.assignment() == frozenset(TopicPartition(topic, p) for p in range(4))
    await first.commit()
    second = conn.consumer([topic], group=group, auto_offset_reset="earliest", client_id="b")

    async def keep_polling(consumer: Consumer, until: Callable[[], bool]) -> None:
        while not until():
            assert not await consumer.getmany(timeout_ms=100)  # all was read and committed

    await asyncio.wait_for(
        asyncio.gather(
            keep_polling(first, lambda: len(first.assignment()) == 2),
            keep_polling(second, lambda: len(second.assignment()) == 2),
        ),
        20,
    )
    assert first.assignment() | second.assignment() == frozenset(
        TopicPartition(topic, p) for p in range(4)
    )
    assert not first.assignment() & second.assignment()
    # the second starts at the committed offsets: nothing is read twice
    described = await conn.admin().describe_group(group)
    assert described.state == "Stable" and len(described.members) == 2
    assert {m.client_id for m in described.members} == {"a", "b"}
    await second.close()

    async def takes_all() -> None:
        while len(first.assignment()) != 4:
            await first.getmany(timeout_ms=100)

    await asyncio.wait_for(takes_all(), 20)
    await first.close()
    offsets = {
        lag.partition: lag.committed for lag in (await conn.admin().describe_group(group)).offsets
    }
    assert offsets == {p: 10 for p in range(4)}


async def test_commit_after_losing_partitions_commits_the_rest_then_raises(
    conn: Connection,
) -> None:
    topic, group = fresh("moved"), fresh("g")
    await conn.admin().create_topic(topic, partitions=2)
    await fill(conn, topic, 2, 5)
    first = conn.consumer([topic], group=group, auto_offset_reset="earliest")
    assert await first.getmany(timeout_ms=10_000, max_records=100)
    second = conn.consumer([topic], group=group, auto_offset_reset="earliest")
    joining = asyncio.ensure_future(second.getmany(timeout_ms=15_000))
    while len(first.assignment()) == 2:
        await first.getmany(timeout_ms=100)
    await joining
    kept = next(iter(first.assignment()))
    moved = TopicPartition(topic, 1 - kept.partition)
    with pytest.raises(CommitFailedError, match=str(moved)):
        await first.commit({kept: 3, moved: 3})
    assert await first.committed(kept) == 3
    assert await first.committed(moved) is None
    await first.close()
    await second.close()


async def test_an_assigned_consumer_cannot_commit_while_the_group_has_members(
    conn: Connection,
) -> None:
    topic, group = fresh("assigned"), fresh("g")
    await conn.admin().create_topic(topic)
    member = conn.consumer([topic], group=group)
    while not member.assignment():
        await member.getmany(timeout_ms=100)
    loner = conn.consumer(group=group)
    tp = TopicPartition(topic, 0)
    loner.assign([tp])
    with pytest.raises(CommitFailedError):
        await loner.commit({tp: 0})
    await member.close()
    await loner.commit({tp: 0})
    assert await loner.committed(tp) == 0
    await loner.close()


async def test_admin_lists_resets_and_deletes_groups(conn: Connection) -> None:
    topic, group = fresh("admin"), fresh("g")
    admin = conn.admin()
    await admin.create_topic(topic, partitions=2)
    await fill(conn, topic, 2, 4)
    consumer = conn.consumer([topic], group=group, auto_offset_reset="earliest")
    read = 0
    while read < 8:  # the first getmany waits for the group to form
        read += sum(len(v) for v in (await consumer.getmany(timeout_ms=10_000)).values())
    await consumer.commit()
    assert group in await admin.list_groups()
    with pytest.raises(StoreError, match="live member"):
        await admin.reset_group_offsets(group, topic, "earliest")
    await consumer.close()
    for _ in range(100):  # the coordinator completes the last member's leaving
        described = await admin.describe_group(group)
        if described.state == "Empty":
            break
        await asyncio.sleep(0.05)
    assert described.state == "Empty" and not described.members
    assert [(lag.committed, lag.lag) for lag in described.offsets] == [(4, 0), (4, 0)]
    assert await admin.reset_group_offsets(group, topic, 1) == {
        TopicPartition(topic, 0): 1,
        TopicPartition(topic, 1): 1,
    }
    again = conn.consumer([topic], group=group, auto_offset_reset="none")
    got = await again.getmany(timeout_ms=10_000)
    assert all(records[0].offset == 1 for records in got.values())
    await again.close()
    await admin.delete_group(group)
    assert group not in await admin.list_groups()
    with pytest.raises(UnknownGroupError):
        await admin.describe_group(group)


async def test_wait_for_assignment_returns_the_members_share_once_the_group_formed(
    conn: Connection,
) -> None:
    topic, group = fresh("wait"), fresh("g")
    await conn.admin().create_topic(topic, partitions=6)
    first = conn.consumer([topic], group=group, client_id="a")
    assert first.assignment() == frozenset()  # joining happens in the background
    everything = frozenset(TopicPartition(topic, p) for p in range(6))
    assert await first.wait_for_assignment(10_000) == everything
    second = conn.consumer([topic], group=group, client_id="b")

    async def rebalanced() -> None:
        while len(first.assignment()) != 3:
            await first.getmany(timeout_ms=100)  # keeps the first member in the group

    mine, _ = await asyncio.gather(second.wait_for_assignment(20_000), rebalanced())
    assert len(mine) == 3 and mine | first.assignment() == everything
    # sticky: the first member kept three of the partitions it held, gave up only the others
    assert first.assignment() <= everything and not mine & first.assignment()
    await second.close()
    await first.close()


async def test_a_sticky_group_keeps_partitions_with_their_owners_when_a_member_joins(
    conn: Connection,
) -> None:
    topic, group = fresh("sticky"), fresh("g")
    await conn.admin().create_topic(topic, partitions=4)
    members = [conn.consumer([topic], group=group, client_id=f"m{i}") for i in range(2)]

    async def settle(consumers: list[Consumer], each: int) -> None:
        while any(len(c.assignment()) != each for c in consumers):
            for c in consumers:
                await c.getmany(timeout_ms=50)

    await asyncio.wait_for(settle(members, 2), 20)
    before = [c.assignment() for c in members]
    members.append(conn.consumer([topic], group=group, client_id="m2"))

    async def three_way() -> None:
        while sorted(len(c.assignment()) for c in members) != [1, 1, 2]:
            for c in members:
                await c.getmany(timeout_ms=50)

    await asyncio.wait_for(three_way(), 20)
    # one partition moved to the newcomer; each old member kept at least one of its own
    assert all(c.assignment() <= held for c, held in zip(members, before, strict=False))
    described = await conn.admin().describe_group(group)
    assert described.state == "Stable"
    for c in members:
        await c.close()


async def test_a_group_still_forming_is_described_with_its_state(broker) -> None:
    # the broker fixture waits 3 s (Kafka's default initial rebalance delay) to form a new group
    async with await connect(f"millstream://{broker.bootstrap}") as conn:
        topic, group = fresh("forming"), fresh("g")
        admin = conn.admin()
        await admin.create_topic(topic, partitions=2)
        began = asyncio.get_running_loop().time()
        consumer = conn.consumer([topic], group=group, client_id="former")
        while True:  # until its JoinGroup reached the coordinator
            try:
                described = await admin.describe_group(group)
            except UnknownGroupError:
                described = None
            if described is not None and described.members:
                break
            await asyncio.sleep(0.05)
        assert asyncio.get_running_loop().time() - began < 2.5  # well inside the delay
        assert described.state == "PreparingRebalance"
        assert [(m.client_id, m.assignment) for m in described.members] == [("former", ())]
        await consumer.wait_for_assignment(10_000)
        formed = await admin.describe_group(group)
        assert formed.state == "Stable"
        assert sorted(tp.partition for m in formed.members for tp in m.assignment) == [0, 1]
        await consumer.close()


async def test_a_group_is_never_called_unknown_while_it_is_listed(remote) -> None:
    # describing right after subscribe races the consumer's first JoinGroup: either answer
    # may come, but an unknown group is not among the known ones
    async with await connect(remote.url) as conn:
        topic = fresh("race")
        admin = conn.admin()
        await admin.create_topic(topic, partitions=1)
        for _ in range(5):
            group = fresh("g")
            consumer = conn.consumer([topic], group=group)
            try:
                described = await admin.describe_group(group)
            except UnknownGroupError as exc:
                known = str(exc).partition("known groups: ")[2].split(", ")
                assert group not in known, str(exc)
            else:
                assert described.state != "Dead"
            await consumer.close()
