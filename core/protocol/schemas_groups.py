"""Schemas of the APIs for consumer groups: the coordinator, membership and committed offsets.

Written from the Kafka protocol documentation, one :class:`~.schema.ApiSchema` per API, covering
the versions of DESIGN.md §5; see docs/protocol.md for how to add a version.
"""

from __future__ import annotations

from .schema import ApiSchema, array, field

__all__ = [
    "DELETE_GROUPS",
    "DESCRIBE_GROUPS",
    "FIND_COORDINATOR",
    "HEARTBEAT",
    "JOIN_GROUP",
    "LEAVE_GROUP",
    "LIST_GROUPS",
    "OFFSET_COMMIT",
    "OFFSET_FETCH",
    "SYNC_GROUP",
]

FIND_COORDINATOR = ApiSchema(
    10,
    "FindCoordinator",
    "0-2",
    request=(
        field("key", "string", "0+"),
        field("key_type", "int8", "1+", default=0),
    ),
    response=(
        field("throttle_time_ms", "int32", "1+"),
        field("error_code", "int16", "0+"),
        field("error_message", "string", "1+", nullable="1+"),
        field("node_id", "int32", "0+"),
        field("host", "string", "0+"),
        field("port", "int32", "0+"),
    ),
)

JOIN_GROUP = ApiSchema(
    11,
    "JoinGroup",
    "0-5",
    request=(
        field("group_id", "string", "0+"),
        field("session_timeout_ms", "int32", "0+"),
        field("rebalance_timeout_ms", "int32", "1+", default=-1),
        field("member_id", "string", "0+"),
        field("group_instance_id", "string", "5+", nullable="5+", default=None),
        field("protocol_type", "string", "0+"),
        array(
            "protocols",
            (
                field("name", "string", "0+"),
                field("metadata", "bytes", "0+"),
            ),
            "0+",
        ),
    ),
    response=(
        field("throttle_time_ms", "int32", "2+"),
        field("error_code", "int16", "0+"),
        field("generation_id", "int32", "0+", default=-1),
        field("protocol_name", "string", "0+"),
        field("leader", "string", "0+"),
        field("member_id", "string", "0+"),
        array(
            "members",
            (
                field("member_id", "string", "0+"),
                field("group_instance_id", "string", "5+", nullable="5+", default=None),
                field("metadata", "bytes", "0+"),
            ),
            "0+",
        ),
    ),
)

SYNC_GROUP = ApiSchema(
    14,
    "SyncGroup",
    "0-3",
    request=(
        field("group_id", "string", "0+"),
        field("generation_id", "int32", "0+"),
        field("member_id", "string", "0+"),
        field("group_instance_id", "string", "3+", nullable="3+", default=None),
        array(
            "assignments",
            (
                field("member_id", "string", "0+"),
                field("assignment", "bytes", "0+"),
            ),
            "0+",
        ),
    ),
    response=(
        field("throttle_time_ms", "int32", "1+"),
        field("error_code", "int16", "0+"),
        field("assignment", "bytes", "0+"),
    ),
)

HEARTBEAT = ApiSchema(
    12,
    "Heartbeat",
    "0-3",
    request=(
        field("group_id", "string", "0+"),
        field("generation_id", "int32", "0+"),
        field("member_id", "string", "0+"),
        field("group_instance_id", "string", "3+", nullable="3+", default=None),
    ),
    response=(
        field("throttle_time_ms", "int32", "1+"),
        field("error_code", "int16", "0+"),
    ),
)

LEAVE_GROUP = ApiSchema(
    13,
    "LeaveGroup",
    "0-3",
    request=(
        field("group_id", "string", "0+"),
        field("member_id", "string", "0-2"),
        array(
            "members",
            (
                field("member_id", "string", "3+"),
                field("group_instance_id", "string", "3+", nullable="3+", default=None),
            ),
            "3+",
        ),
    ),
    response=(
        field("throttle_time_ms", "int32", "1+"),
        field("error_code", "int16", "0+"),
        array(
            "members",
            (
                field("member_id", "string", "3+"),
                field("group_instance_id", "string", "3+", nullable="3+"),
                field("error_code", "int16", "3+"),
            ),
            "3+",
        ),
    ),
)

OFFSET_COMMIT = ApiSchema(
    8,
    "OffsetCommit",
    "2-7",
    request=(
        field("group_id", "string", "2+"),
        field("generation_id_or_member_epoch", "int32", "2+", default=-1),
        field("member_id", "string", "2+"),
        field("group_instance_id", "string", "7+", nullable="7+", default=None),
        field("retention_time_ms", "int64", "2-4", default=-1),
        array(
            "topics",
            (
                field("name", "string", "2+"),
                array(
                    "partitions",
                    (
                        field("partition_index", "int32", "2+"),
                        field("committed_offset", "int64", "2+"),
                        field("committed_leader_epoch", "int32", "6+", default=-1),
                        field("committed_metadata", "string", "2+", nullable="2+"),
                    ),
                    "2+",
                ),
            ),
            "2+",
        ),
    ),
    response=(
        field("throttle_time_ms", "int32", "3+"),
        array(
            "topics",
            (
                field("name", "string", "2+"),
                array(
                    "partitions",
                    (
                        field("partition_index", "int32", "2+"),
                        field("error_code", "int16", "2+"),
                    ),
                    "2+",
                ),
            ),
            "2+",
        ),
    ),
)

OFFSET_FETCH = ApiSchema(
    9,
    "OffsetFetch",
    "1-5",
    request=(
        field("group_id", "string", "1+"),
        array(
            "topics",
            (
                field("name", "string", "1+"),
                array("partition_indexes", "int32", "1+"),
            ),
            "1+",
            nullable="2+",
        ),
    ),
    response=(
        field("throttle_time_ms", "int32", "3+"),
        array(
            "topics",
            (
                field("name", "string", "1+"),
                array(
                    "partitions",
                    (
                        field("partition_index", "int32", "1+"),
                        field("committed_offset", "int64", "1+"),
                        field("committed_leader_epoch", "int32", "5+", default=-1),
                        field("metadata", "string", "1+", nullable="1+"),
                        field("error_code", "int16", "1+"),
                    ),
                    "1+",
                ),
            ),
            "1+",
        ),
        field("error_code", "int16", "2+", default=0),
    ),
)

DESCRIBE_GROUPS = ApiSchema(
    15,
    "DescribeGroups",
    "0-4",
    request=(
        array("groups", "string", "0+"),
        field("include_authorized_operations", "bool", "3+"),
    ),
    response=(
        field("throttle_time_ms", "int32", "1+"),
        array(
            "groups",
            (
                field("error_code", "int16", "0+"),
                field("group_id", "string", "0+"),
                field("group_state", "string", "0+"),
                field("protocol_type", "string", "0+"),
                field("protocol_data", "string", "0+"),
                array(
                    "members",
                    (
                        field("member_id", "string", "0+"),
                        field("group_instance_id", "string", "4+", nullable="4+", default=None),
                        field("client_id", "string", "0+"),
                        field("client_host", "string", "0+"),
                        field("member_metadata", "bytes", "0+"),
                        field("member_assignment", "bytes", "0+"),
                    ),
                    "0+",
                ),
                field("authorized_operations", "int32", "3+", default=-2147483648),
            ),
            "0+",
        ),
    ),
)

LIST_GROUPS = ApiSchema(
    16,
    "ListGroups",
    "0-2",
    request=(),
    response=(
        field("throttle_time_ms", "int32", "1+"),
        field("error_code", "int16", "0+"),
        array(
            "groups",
            (
                field("group_id", "string", "0+"),
                field("protocol_type", "string", "0+"),
            ),
            "0+",
        ),
    ),
)

DELETE_GROUPS = ApiSchema(
    42,
    "DeleteGroups",
    "0-1",
    request=(array("groups_names", "string", "0+"),),
    response=(
        field("throttle_time_ms", "int32", "0+"),
        array(
            "results",
            (
                field("group_id", "string", "0+"),
                field("error_code", "int16", "0+"),
            ),
            "0+",
        ),
    ),
)
