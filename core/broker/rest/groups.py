"""``/groups``: the consumer groups the broker's coordinator knows, their members, committed
offsets and lag (the partition's high watermark minus the committed offset)."""

from __future__ import annotations

from aiohttp import web

from ...errors import MillstreamError, ProtocolError
from ...log import LogStore
from ...protocol import ErrorCode
from ...record import TopicPartition
from ..groups import DEAD, GroupCoordinator
from .bodies import broker_of, json_response
from .errors import RestError
from .models import (
    CommittedOffset,
    GroupDetail,
    GroupList,
    GroupMember,
    GroupSummary,
    TopicPartitionRef,
)

__all__ = ["routes"]


def _coordinator(request: web.Request) -> GroupCoordinator:
    coordinator = broker_of(request).coordinator
    if coordinator is None:
        raise RestError(503, ErrorCode.COORDINATOR_NOT_AVAILABLE.name, "the broker is stopping")
    return coordinator


async def list_groups(request: web.Request) -> web.Response:
    coordinator = _coordinator(request)
    groups = [
        GroupSummary(group_id=group_id, protocol_type=kind, state=coordinator.state(group_id))
        for group_id, kind in coordinator.list_groups()
    ]
    return json_response(GroupList(groups=groups))


def _assignment(protocol_type: str, data: bytes) -> list[TopicPartitionRef]:
    if protocol_type != "consumer" or not data:
        return []
    from ...client.network.assignors import Assignment

    try:
        partitions = Assignment.decode(data).partitions
    except ProtocolError:
        return []
    return [TopicPartitionRef(topic=tp.topic, partition=tp.partition) for tp in partitions]


async def describe_group(request: web.Request) -> web.Response:
    group_id = request.match_info["group_id"]
    coordinator = _coordinator(request)
    description = coordinator.describe(group_id)
    if description.state == DEAD:
        known = ", ".join(g for g, _ in coordinator.list_groups()[:10]) or "none"
        raise RestError(
            404,
            ErrorCode.GROUP_ID_NOT_FOUND.name,
            f"unknown group {group_id!r}; known groups: {known}",
        )
    store = broker_of(request).store
    offsets = []
    committed = coordinator.fetch_offsets(group_id)
    for tp, at in sorted(committed.items(), key=lambda item: item[0]):
        if at is None:
            continue
        hw = _high_watermark(store, tp)
        offsets.append(
            CommittedOffset(
                topic=tp.topic,
                partition=tp.partition,
                committed_offset=at.offset,
                high_watermark=hw,
                lag=None if hw is None else max(0, hw - at.offset),
                metadata=at.metadata,
            )
        )
    members = [
        GroupMember(
            member_id=m.member_id,
            group_instance_id=m.group_instance_id,
            client_id=m.client_id,
            client_host=m.client_host,
            assignment=_assignment(description.protocol_type, m.assignment),
        )
        for m in description.members
    ]
    return json_response(
        GroupDetail(
            group_id=group_id,
            state=description.state,
            protocol_type=description.protocol_type,
            protocol=description.protocol,
            generation=description.generation,
            members=members,
            offsets=offsets,
        )
    )


def _high_watermark(store: LogStore, tp: TopicPartition) -> int | None:
    try:
        return store.topic(tp.topic).partition(tp.partition).high_watermark
    except MillstreamError:
        return None


def routes() -> list[web.RouteDef]:
    return [
        web.get("/groups", list_groups, allow_head=False),
        web.get("/groups/{group_id}", describe_group, allow_head=False),
    ]
