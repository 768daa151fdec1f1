"""The group APIs of a real ``millstream broker``, over sockets, in old and new versions."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from broker_server import BrokerServer

from millstream.core.protocol import (
    ApiKey,
    ErrorCode,
    RequestHeader,
    decode_response,
    encode_request,
    read_frame,
    request_class,
)

FAST_GROUPS = ("--group-min-session-timeout-ms", "100", "--group-initial-rebalance-delay-ms", "0")
SESSION_MS = 1000


def req(api_key: int, **fields: Any) -> Any:
    return request_class(api_key)(**fields)


class Conn:
    """One connection to the broker (one per group member: a JoinGroup holds its connection)."""

    _ids = itertools.count(1)

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, server: BrokerServer) -> Conn:
        return cls(*await asyncio.open_connection(server.host, server.port))

    async def call(self, api_key: int, version: int, timeout: float = 15, **fields: Any) -> Any:
        header = RequestHeader(api_key, version, next(self._ids), "groups-test")
        self.writer.write(encode_request(header, req(api_key, **fields)))
        await self.writer.drain()
        frame = await asyncio.wait_for(read_frame(self.reader), timeout)
        assert frame is not None, "the broker closed the connection"
        response_header, body = decode_response(api_key, version, frame)
        assert response_header.correlation_id == header.correlation_id
        return body

    def close(self) -> None:
        self.writer.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerServer]:
    server = BrokerServer(tmp_path_factory.mktemp("groups") / "data", None, *FAST_GROUPS).start()
    try:
        yield server
    finally:
        server.kill()


async def create_topic(conn: Conn, name: str, partitions: int) -> None:
    topics_cls = request_class(ApiKey.CREATE_TOPICS).Topics  # type: ignore[attr-defined]
    answer = await conn.call(
        ApiKey.CREATE_TOPICS,
        2,
        topics=[topics_cls(name=name, num_partitions=partitions, replication_factor=1)],
    )
    assert answer.topics[0].error_code in (ErrorCode.NONE, ErrorCode.TOPIC_ALREADY_EXISTS)


async def join_v5(conn: Conn, group: str, member_id: str = "", instance: str | None = None) -> Any:
    protocols = request_class(ApiKey.JOIN_GROUP).Protocols  # type: ignore[attr-defined]
    return await conn.call(
        ApiKey.JOIN_GROUP,
        5,
        group_id=group,
        session_timeout_ms=SESSION_MS,
        rebalance_timeout_ms=SESSION_MS * 3,
        member_id=member_id,
        group_instance_id=instance,
        protocol_type="consumer",
        protocols=[protocols(name="range", metadata=b"subscription:" + member_id.encode())],
    )


async def sync_v3(conn: Conn, group: str, generation: int, member_id: str, assignments=()) -> Any:
    entry = request_class(ApiKey.SYNC_GROUP).Assignments  # type: ignore[attr-defined]
    return await conn.call(
        ApiKey.SYNC_GROUP,
        3,
        group_id=group,
        generation_id=generation,
        member_id=member_id,
        assignments=[entry(member_id=m, assignment=a) for m, a in assignments],
    )


async def heartbeat(conn: Conn, group: str, generation: int, member_id: str) -> int:
    answer = await conn.call(
        ApiKey.HEARTBEAT, 3, group_id=group, generation_id=generation, member_id=member_id
    )
    return answer.error_code


async def commit_v7(conn: Conn, group: str, generation: int, member_id: str, offsets) -> Any:
    cls = request_class(ApiKey.OFFSET_COMMIT)
    return await conn.call(
        ApiKey.OFFSET_COMMIT,
        7,
        group_id=group,
        generation_id_or_member_epoch=generation,
        member_id=member_id,
        topics=[
            cls.Topics(  # type: ignore[attr-defined]
                name=topic,
                partitions=[
                    cls.Topics.Partitions(  # type: ignore[attr-defined]
                        partition_index=p, committed_offset=o, committed_metadata="m"
                    )
                    for p, o in parts.items()
                ],
            )
            for topic, parts in offsets.items()
        ],
    )


def fetched(answer: Any) -> dict[tuple[str, int], int]:
    return {
        (t.name, p.partition_index): p.committed_offset for t in answer.topics for p in t.partitions
    }


async def test_find_coordinator_names_this_broker(server):
    conn = await Conn.open(server)
    try:
        for version in (0, 1, 2):
            answer = await conn.call(ApiKey.FIND_COORDINATOR, version, key="any-group")
            assert answer.error_code == ErrorCode.NONE
            assert (answer.host, answer.port, answer.node_id) == (server.host, server.port, 0)
        txn = await conn.call(ApiKey.FIND_COORDINATOR, 2, key="tx", key_type=1)
        assert txn.error_code == ErrorCode.COORDINATOR_NOT_AVAILABLE
        assert "transactions" in txn.error_message
    finally:
        conn.close()


async def test_two_members_rebalance_commit_and_leave_over_the_wire(server):
    group, topic = "wire-group", "wire-topic"
    a_conn, b_conn = await Conn.open(server), await Conn.open(server)
    try:
        await create_topic(a_conn, topic, 2)
        first = await join_v5(a_conn, group)
        assert first.error_code == ErrorCode.MEMBER_ID_REQUIRED
        a = await join_v5(a_conn, group, first.member_id)
        assert (a.error_code, a.generation_id, a.leader) == (ErrorCode.NONE, 1, first.member_id)
        a_id = a.member_id
        synced = await sync_v3(a_conn, group, 1, a_id, [(a_id, b"all")])
        assert synced.assignment == b"all"

        b_first = await join_v5(b_conn, group)
        b_join = asyncio.ensure_future(join_v5(b_conn, group, b_first.member_id))
        await asyncio.sleep(0.1)
        assert await heartbeat(a_conn, group, 1, a_id) == ErrorCode.REBALANCE_IN_PROGRESS
        a2, b = await asyncio.gather(join_v5(a_conn, group, a_id), b_join)
        assert a2.generation_id == b.generation_id == 2
        assert sorted(m.member_id for m in a2.members) == sorted([a_id, b.member_id])
        assert b.members == []
        b_sync = asyncio.ensure_future(sync_v3(b_conn, group, 2, b.member_id))
        a_sync = await sync_v3(a_conn, group, 2, a_id, [(a_id, b"p0"), (b.member_id, b"p1")])
        assert (a_sync.assignment, (await b_sync).assignment) == (b"p0", b"p1")

        described = await a_conn.call(ApiKey.DESCRIBE_GROUPS, 4, groups=[group, "nobody"])
        g, unknown = described.groups
        assert (g.group_state, g.protocol_type, g.protocol_data) == ("Stable", "consumer", "range")
        assert {m.member_id: m.member_assignment for m in g.members} == {
            a_id: b"p0",
            b.member_id: b"p1",
        }
        assert {m.client_id for m in g.members} == {"groups-test"}
        assert {m.client_host for m in g.members} == {"/127.0.0.1"}  # as Kafka shows it
        assert unknown.group_state == "Dead"

        committed = await commit_v7(a_conn, group, 2, a_id, {topic: {0: 10}})
        assert committed.topics[0].partitions[0].error_code == ErrorCode.NONE
        stale = await commit_v7(b_conn, group, 1, b.member_id, {topic: {1: 3}})
        assert stale.topics[0].partitions[0].error_code == ErrorCode.ILLEGAL_GENERATION
        assert (await commit_v7(b_conn, group, 2, b.member_id, {topic: {1: 7}})).topics[
            0
        ].partitions[0].error_code == ErrorCode.NONE
        everything = await a_conn.call(ApiKey.OFFSET_FETCH, 5, group_id=group, topics=None)
        assert fetched(everything) == {(topic, 0): 10, (topic, 1): 7}
        asked = request_class(ApiKey.OFFSET_FETCH).Topics  # type: ignore[attr-defined]
        some = await a_conn.call(
            ApiKey.OFFSET_FETCH,
            1,
            group_id=group,
            topics=[
                asked(name=topic, partition_indexes=[1]),
                asked(name="x", partition_indexes=[0]),
            ],
        )
        assert fetched(some) == {(topic, 1): 7, ("x", 0): -1}

        listed = await a_conn.call(ApiKey.LIST_GROUPS, 2)
        assert (group, "consumer") in {(x.group_id, x.protocol_type) for x in listed.groups}
        refused = await a_conn.call(ApiKey.DELETE_GROUPS, 1, groups_names=[group, "nobody"])
        assert [r.error_code for r in refused.results] == [
            ErrorCode.NON_EMPTY_GROUP,
            ErrorCode.GROUP_ID_NOT_FOUND,
        ]

        leaving = request_class(ApiKey.LEAVE_GROUP).Members  # type: ignore[attr-defined]
        left = await a_conn.call(
            ApiKey.LEAVE_GROUP,
            3,
            group_id=group,
            members=[leaving(member_id=a_id), leaving(member_id=b.member_id)],
        )
        assert [m.error_code for m in left.members] == [ErrorCode.NONE, ErrorCode.NONE]
        deleted = await a_conn.call(ApiKey.DELETE_GROUPS, 1, groups_names=[group])
        assert deleted.results[0].error_code == ErrorCode.NONE
        gone = await a_conn.call(ApiKey.OFFSET_FETCH, 5, group_id=group, topics=None)
        assert fetched(gone) == {}
    finally:
        a_conn.close()
        b_conn.close()


async def test_the_oldest_versions_work_too(server):
    group, topic = "old-group", "old-topic"
    conn = await Conn.open(server)
    try:
        await create_topic(conn, topic, 1)
        protocols = request_class(ApiKey.JOIN_GROUP).Protocols  # type: ignore[attr-defined]
        joined = await conn.call(
            ApiKey.JOIN_GROUP,
            0,
            group_id=group,
            session_timeout_ms=SESSION_MS,
            member_id="",
            protocol_type="consumer",
            protocols=[protocols(name="roundrobin", metadata=b"x")],
        )
        assert (joined.error_code, joined.generation_id) == (ErrorCode.NONE, 1)
        member = joined.member_id
        entry = request_class(ApiKey.SYNC_GROUP).Assignments  # type: ignore[attr-defined]
        synced = await conn.call(
            ApiKey.SYNC_GROUP,
            0,
            group_id=group,
            generation_id=1,
            member_id=member,
            assignments=[entry(member_id=member, assignment=b"a")],
        )
        assert synced.assignment == b"a"
        beat = await conn.call(
            ApiKey.HEARTBEAT, 0, group_id=group, generation_id=1, member_id=member
        )
        assert beat.error_code == ErrorCode.NONE
        cls = request_class(ApiKey.OFFSET_COMMIT)
        committed = await conn.call(
            ApiKey.OFFSET_COMMIT,
            2,
            group_id=group,
            generation_id_or_member_epoch=1,
            member_id=member,
            topics=[
                cls.Topics(  # type: ignore[attr-defined]
                    name=topic,
                    partitions=[cls.Topics.Partitions(partition_index=0, committed_offset=4)],  # type: ignore[attr-defined]
                )
            ],
        )
        assert committed.topics[0].partitions[0].error_code == ErrorCode.NONE
        left = await conn.call(ApiKey.LEAVE_GROUP, 0, group_id=group, member_id=member)
        assert left.error_code == ErrorCode.NONE
        again = await conn.call(ApiKey.LEAVE_GROUP, 0, group_id=group, member_id=member)
        assert again.error_code == ErrorCode.UNKNOWN_MEMBER_ID
        listed = await conn.call(ApiKey.LIST_GROUPS, 0)
        assert group in {g.group_id for g in listed.groups}
    finally:
        conn.close()


async def test_a_member_whose_connection_drops_mid_join_expires_and_the_other_carries_on(server):
    group = "dropped-group"
    a_conn, b_conn = await Conn.open(server), await Conn.open(server)
    try:
        a_id = (await join_v5(a_conn, group)).member_id
        a = await join_v5(a_conn, group, a_id)
        await sync_v3(a_conn, group, 1, a_id, [(a_id, b"x")])
        b_id = (await join_v5(b_conn, group)).member_id
        b_join = asyncio.ensure_future(join_v5(b_conn, group, b_id))
        await asyncio.sleep(0.1)
        a2 = await join_v5(a_conn, group, a_id)  # b waits in its join too: both answered
        await b_join
        assert a2.generation_id == a.generation_id + 1
        b_conn.close()  # b vanishes without a word: no sync, no heartbeat
        loop = asyncio.get_running_loop()
        start = loop.time()
        await sync_v3(a_conn, group, a2.generation_id, a_id, [(a_id, b"x")])
        while await heartbeat(a_conn, group, a2.generation_id, a_id) == ErrorCode.NONE:
            assert loop.time() - start < 10
            await asyncio.sleep(0.1)
        a3 = await join_v5(a_conn, group, a_id)
        assert [m.member_id for m in a3.members] == [a_id]
    finally:
        a_conn.close()
        b_conn.close()


async def test_committed_offsets_survive_a_broker_restart(tmp_path: Path):
    server = BrokerServer(tmp_path / "data", None, *FAST_GROUPS).start()
    try:
        conn = await Conn.open(server)
        await create_topic(conn, "kept", 3)
        answer = await commit_v7(conn, "keeper", -1, "", {"kept": {0: 5, 2: 9}})
        assert {p.error_code for p in answer.topics[0].partitions} == {ErrorCode.NONE}
        conn.close()
        assert server.stop() == 0
        server.start()
        conn = await Conn.open(server)
        everything = await conn.call(ApiKey.OFFSET_FETCH, 5, group_id="keeper", topics=None)
        assert fetched(everything) == {("kept", 0): 5, ("kept", 2): 9}
        described = await conn.call(ApiKey.DESCRIBE_GROUPS, 0, groups=["keeper"])
        assert described.groups[0].group_state == "Empty"
        conn.close()
    finally:
        server.kill()


async def test_deleting_a_topic_forgets_the_offsets_groups_committed_in_it(server):
    conn = await Conn.open(server)
    try:
        await create_topic(conn, "doomed", 1)
        await create_topic(conn, "kept", 1)
        simple = await commit_v7(conn, "archiver", -1, "", {"doomed": {0: 5}, "kept": {0: 9}})
        assert {p.error_code for t in simple.topics for p in t.partitions} == {ErrorCode.NONE}
        deleted = await conn.call(ApiKey.DELETE_TOPICS, 1, timeout_ms=5000, topic_names=["doomed"])
        assert deleted.responses[0].error_code == ErrorCode.NONE
        left = await conn.call(ApiKey.OFFSET_FETCH, 5, group_id="archiver", topics=None)
        assert fetched(left) == {("kept", 0): 9}
    finally:
        conn.close()
