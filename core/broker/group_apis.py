"""The request handlers of the consumer-group APIs, translating wire messages to
:class:`~.groups.GroupCoordinator` calls and its answers back.

FindCoordinator (10), JoinGroup (11), Heartbeat (12), LeaveGroup (13), SyncGroup (14),
OffsetCommit (8), OffsetFetch (9), DescribeGroups (15), ListGroups (16) and DeleteGroups (42),
in the versions of :data:`millstream.core.protocol.SUPPORTED_VERSIONS`. A handler never raises
for a request it can decode: what the coordinator refuses comes back as Kafka's error code.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from ..groups import OffsetAndMetadata
from ..protocol import ApiKey, ErrorCode, RequestHeader, response_class
from ..record import TopicPartition
from .groups import GroupCoordinator
from .handler import Handler, current_request

__all__ = ["group_handlers"]

_COORDINATOR_KEY_GROUP = 0
_COORDINATOR_KEY_TRANSACTION = 1


def group_handlers(coordinator: GroupCoordinator) -> dict[int, Handler]:
    """The handlers of every consumer-group API, by API key, all served by ``coordinator``."""

    async def find_coordinator(header: RequestHeader, body: Any) -> Any:
        response = response_class(ApiKey.FIND_COORDINATOR)
        if body.key_type == _COORDINATOR_KEY_GROUP:
            return response(
                error_code=ErrorCode.NONE,
                node_id=coordinator.node_id,
                host=coordinator.host,
                port=coordinator.port,
            )
        if body.key_type == _COORDINATOR_KEY_TRANSACTION:
            error, message = (
                ErrorCode.COORDINATOR_NOT_AVAILABLE,
                "this broker has no transaction coordinator: transactions are not supported",
            )
        else:
            error, message = (
                ErrorCode.INVALID_REQUEST,
                f"unknown coordinator key type {body.key_type}; valid: 0 (group)",
            )
        return response(error_code=error, error_message=message, node_id=-1, host="", port=-1)

    async def join_group(header: RequestHeader, body: Any) -> Any:
        result = await coordinator.join(
            body.group_id,
            body.member_id,
            protocol_type=body.protocol_type,
            protocols=[(p.name, p.metadata) for p in body.protocols],
            session_timeout_ms=body.session_timeout_ms,
            rebalance_timeout_ms=body.rebalance_timeout_ms if header.api_version >= 1 else -1,
            group_instance_id=body.group_instance_id,
            client_id=header.client_id or "",
            client_host=current_request().client_host,
            require_known_member_id=header.api_version >= 4,
        )
        response = response_class(ApiKey.JOIN_GROUP)
        return response(
            error_code=result.error,
            generation_id=result.generation,
            protocol_name=result.protocol_name,
            leader=result.leader,
            member_id=result.member_id,
            members=[
                response.Members(m.member_id, m.group_instance_id, m.metadata)  # type: ignore[attr-defined]
                for m in result.members
            ],
        )

    async def sync_group(header: RequestHeader, body: Any) -> Any:
        result = await coordinator.sync(
            body.group_id,
            body.generation_id,
            body.member_id,
            {a.member_id: a.assignment for a in body.assignments},
            group_instance_id=body.group_instance_id,
        )
        response = response_class(ApiKey.SYNC_GROUP)
        return response(error_code=result.error, assignment=result.assignment)

    async def heartbeat(header: RequestHeader, body: Any) -> Any:
        error = coordinator.heartbeat(
            body.group_id,
            body.generation_id,
            body.member_id,
            group_instance_id=body.group_instance_id,
        )
        return response_class(ApiKey.HEARTBEAT)(error_code=error)

    async def leave_group(header: RequestHeader, body: Any) -> Any:
        response = response_class(ApiKey.LEAVE_GROUP)
        if header.api_version < 3:
            (error,) = coordinator.leave(body.group_id, [(body.member_id, None)])
            return response(error_code=error)
        leaving = [(m.member_id, m.group_instance_id) for m in body.members]
        errors = coordinator.leave(body.group_id, leaving)
        return response(
            error_code=ErrorCode.NONE,
            members=[
                response.Members(member_id, instance_id, error)  # type: ignore[attr-defined]
                for (member_id, instance_id), error in zip(leaving, errors, strict=True)
            ],
        )

    async def offset_commit(header: RequestHeader, body: Any) -> Any:
        offsets: dict[TopicPartition, OffsetAndMetadata] = {}
        for topic in body.topics:
            for p in topic.partitions:
                offsets[TopicPartition(topic.name, p.partition_index)] = OffsetAndMetadata(
                    p.committed_offset, p.committed_metadata or ""
                )
        errors = await coordinator.commit_offsets(
            body.group_id,
            body.generation_id_or_member_epoch,
            body.member_id,
            offsets,
            group_instance_id=body.group_instance_id,
        )
        response = response_class(ApiKey.OFFSET_COMMIT)
        by_topic: dict[str, list[Any]] = defaultdict(list)
        for topic in body.topics:  # answer in the order asked, duplicates included
            for p in topic.partitions:
                error = errors[TopicPartition(topic.name, p.partition_index)]
                by_topic[topic.name].append(response.Topics.Partitions(p.partition_index, error))  # type: ignore[attr-defined]
        return response(
            topics=[
                response.Topics(name, partitions)  # type: ignore[attr-defined]
                for name, partitions in by_topic.items()
            ]
        )

    async def offset_fetch(header: RequestHeader, body: Any) -> Any:
        response = response_class(ApiKey.OFFSET_FETCH)
        if body.topics is None:
            found = coordinator.fetch_offsets(body.group_id)
        else:
            asked = [
                TopicPartition(topic.name, index)
                for topic in body.topics
                for index in topic.partition_indexes
            ]
            found = coordinator.fetch_offsets(body.group_id, asked)
        by_topic: dict[str, list[Any]] = defaultdict(list)
        for tp, committed in found.items():
            by_topic[tp.topic].append(
                response.Topics.Partitions(  # type: ignore[attr-defined]
                    partition_index=tp.partition,
                    committed_offset=-1 if committed is None else committed.offset,
                    metadata="" if committed is None else committed.metadata,
                    error_code=ErrorCode.NONE,
                )
            )
        return response(
            topics=[response.Topics(name, parts) for name, parts in by_topic.items()],  # type: ignore[attr-defined]
            error_code=ErrorCode.NONE,
        )

    async def describe_groups(header: RequestHeader, body: Any) -> Any:
        response = response_class(ApiKey.DESCRIBE_GROUPS)
        groups = []
        for group_id in body.groups:
            if not group_id:
                groups.append(
                    response.Groups(error_code=ErrorCode.INVALID_GROUP_ID, group_id=group_id)  # type: ignore[attr-defined]
                )
                continue
            described = coordinator.describe(group_id)
            groups.append(
                response.Groups(  # type: ignore[attr-defined]
                    error_code=ErrorCode.NONE,
                    group_id=group_id,
                    group_state=described.state,
                    protocol_type=described.protocol_type,
                    protocol_data=described.protocol,
                    members=[
                        response.Groups.Members(  # type: ignore[attr-defined]
                            member_id=m.member_id,
                            group_instance_id=m.group_instance_id,
                            client_id=m.client_id,
                            client_host=m.client_host,
                            member_metadata=m.metadata,
                            member_assignment=m.assignment,
                        )
                        for m in described.members
                    ],
                )
            )
        return response(groups=groups)

    async def list_groups(header: RequestHeader, body: Any) -> Any:
        response = response_class(ApiKey.LIST_GROUPS)
        return response(
            error_code=ErrorCode.NONE,
            groups=[
                response.Groups(group_id, protocol_type)  # type: ignore[attr-defined]
                for group_id, protocol_type in coordinator.list_groups()
            ],
        )

    async def delete_groups(header: RequestHeader, body: Any) -> Any:
        response = response_class(ApiKey.DELETE_GROUPS)
        results = [
            response.Results(group_id, await coordinator.delete_group(group_id))  # type: ignore[attr-defined]
            for group_id in body.groups_names
        ]
        return response(results=results)

    return {
        ApiKey.FIND_COORDINATOR: find_coordinator,
        ApiKey.JOIN_GROUP: join_group,
        ApiKey.SYNC_GROUP: sync_group,
        ApiKey.HEARTBEAT: heartbeat,
        ApiKey.LEAVE_GROUP: leave_group,
        ApiKey.OFFSET_COMMIT: offset_commit,
        ApiKey.OFFSET_FETCH: offset_fetch,
        ApiKey.DESCRIBE_GROUPS: describe_groups,
        ApiKey.LIST_GROUPS: list_groups,
        ApiKey.DELETE_GROUPS: delete_groups,
    }
