"""Schemas of the APIs for the cluster: versions, metadata, topics, configs and log dirs.

Written from the Kafka protocol documentation, one :class:`~.schema.ApiSchema` per API, covering
the versions of DESIGN.md §5; see docs/protocol.md for how to add a version.
"""

from __future__ import annotations

from .schema import ApiSchema, array, field

__all__ = [
    "ALTER_CONFIGS",
    "API_VERSIONS",
    "CREATE_PARTITIONS",
    "CREATE_TOPICS",
    "DELETE_TOPICS",
    "DESCRIBE_CONFIGS",
    "DESCRIBE_LOG_DIRS",
    "METADATA",
]

API_VERSIONS = ApiSchema(
    18,
    "ApiVersions",
    "0-3",
    flexible="3+",
    request=(
        field("client_software_name", "string", "3+"),
        field("client_software_version", "string", "3+"),
    ),
    response=(
        field("error_code", "int16", "0+"),
        array(
            "api_keys",
            (
                field("api_key", "int16", "0+"),
                field("min_version", "int16", "0+"),
                field("max_version", "int16", "0+"),
            ),
            "0+",
        ),
        field("throttle_time_ms", "int32", "1+"),
        array(
            "supported_features",
            (
                field("name", "string", "3+"),
                field("min_version", "int16", "3+"),
                field("max_version", "int16", "3+"),
            ),
            "3+",
            tag=0,
        ),
        field("finalized_features_epoch", "int64", "3+", tag=1, default=-1),
        array(
            "finalized_features",
            (
                field("name", "string", "3+"),
                field("max_version_level", "int16", "3+"),
                field("min_version_level", "int16", "3+"),
            ),
            "3+",
            tag=2,
        ),
        field("zk_migration_ready", "bool", "3+", tag=3, default=False),
    ),
)

METADATA = ApiSchema(
    3,
    "Metadata",
    "0-8",
    request=(
        array("topics", (field("name", "string", "0+"),), "0+", nullable="1+"),
        field("allow_auto_topic_creation", "bool", "4+", default=True),
        field("include_cluster_authorized_operations", "bool", "8+"),
        field("include_topic_authorized_operations", "bool", "8+"),
    ),
    response=(
        field("throttle_time_ms", "int32", "3+"),
        array(
            "brokers",
            (
                field("node_id", "int32", "0+"),
                field("host", "string", "0+"),
                field("port", "int32", "0+"),
                field("rack", "string", "1+", nullable="1+", default=None),
            ),
            "0+",
        ),
        field("cluster_id", "string", "2+", nullable="2+", default=None),
        field("controller_id", "int32", "1+", default=-1),
        array(
            "topics",
            (
                field("error_code", "int16", "0+"),
                field("name", "string", "0+"),
                field("is_internal", "bool", "1+", default=False),
                array(
                    "partitions",
                    (
                        field("error_code", "int16", "0+"),
                        field("partition_index", "int32", "0+"),
                        field("leader_id", "int32", "0+"),
                        field("leader_epoch", "int32", "7+", default=-1),
                        array("replica_nodes", "int32", "0+"),
                        array("isr_nodes", "int32", "0+"),
                        array("offline_replicas", "int32", "5+"),
                    ),
                    "0+",
                ),
                field("topic_authorized_operations", "int32", "8+", default=-2147483648),
            ),
            "0+",
        ),
        field("cluster_authorized_operations", "int32", "8+", default=-2147483648),
    ),
)

CREATE_TOPICS = ApiSchema(
    19,
    "CreateTopics",
    "2-4",
    request=(
        array(
            "topics",
            (
                field("name", "string", "2+"),
                field("num_partitions", "int32", "2+"),
                field("replication_factor", "int16", "2+"),
                array(
                    "assignments",
                    (
                        field("partition_index", "int32", "2+"),
                        array("broker_ids", "int32", "2+"),
                    ),
                    "2+",
                ),
                array(
                    "configs",
                    (
                        field("name", "string", "2+"),
                        field("value", "string", "2+", nullable="2+"),
                    ),
                    "2+",
                ),
            ),
            "2+",
        ),
        field("timeout_ms", "int32", "2+", default=60000),
        field("validate_only", "bool", "2+", default=False),
    ),
    response=(
        field("throttle_time_ms", "int32", "2+"),
        array(
            "topics",
            (
                field("name", "string", "2+"),
                field("error_code", "int16", "2+"),
                field("error_message", "string", "2+", nullable="2+"),
            ),
            "2+",
        ),
    ),
)

DELETE_TOPICS = ApiSchema(
    20,
    "DeleteTopics",
    "1-3",
    request=(
        array("topic_names", "string", "1+"),
        field("timeout_ms", "int32", "1+"),
    ),
    response=(
        field("throttle_time_ms", "int32", "1+"),
        array(
            "responses",
            (
                field("name", "string", "1+"),
                field("error_code", "int16", "1+"),
            ),
            "1+",
        ),
    ),
)

CREATE_PARTITIONS = ApiSchema(
    37,
    "CreatePartitions",
    "0-1",
    request=(
        array(
            "topics",
            (
                field("name", "string", "0+"),
                field("count", "int32", "0+"),
                array("assignments", (array("broker_ids", "int32", "0+"),), "0+", nullable="0+"),
            ),
            "0+",
        ),
        field("timeout_ms", "int32", "0+"),
        field("validate_only", "bool", "0+"),
    ),
    response=(
        field("throttle_time_ms", "int32", "0+"),
        array(
            "results",
            (
                field("name", "string", "0+"),
                field("error_code", "int16", "0+"),
                field("error_message", "string", "0+", nullable="0+", default=None),
            ),
            "0+",
        ),
    ),
)

DESCRIBE_CONFIGS = ApiSchema(
    32,
    "DescribeConfigs",
    "1-2",
    request=(
        array(
            "resources",
            (
                field("resource_type", "int8", "1+"),
                field("resource_name", "string", "1+"),
                array("configuration_keys", "string", "1+", nullable="1+"),
            ),
            "1+",
        ),
        field("include_synonyms", "bool", "1+", default=False),
    ),
    response=(
        field("throttle_time_ms", "int32", "1+"),
        array(
            "results",
            (
                field("error_code", "int16", "1+"),
                field("error_message", "string", "1+", nullable="1+"),
                field("resource_type", "int8", "1+"),
                field("resource_name", "string", "1+"),
                array(
                    "configs",
                    (
                        field("name", "string", "1+"),
                        field("value", "string", "1+", nullable="1+"),
                        field("read_only", "bool", "1+"),
                        field("config_source", "int8", "1+", default=-1),
                        field("is_sensitive", "bool", "1+"),
                        array(
                            "synonyms",
                            (
                                field("name", "string", "1+"),
                                field("value", "string", "1+", nullable="1+"),
                                field("source", "int8", "1+"),
                            ),
                            "1+",
                        ),
                    ),
                    "1+",
                ),
            ),
            "1+",
        ),
    ),
)

ALTER_CONFIGS = ApiSchema(
    33,
    "AlterConfigs",
    "0-1",
    request=(
        array(
            "resources",
            (
                field("resource_type", "int8", "0+"),
                field("resource_name", "string", "0+"),
                array(
                    "configs",
                    (
                        field("name", "string", "0+"),
                        field("value", "string", "0+", nullable="0+"),
                    ),
                    "0+",
                ),
            ),
            "0+",
        ),
        field("validate_only", "bool", "0+"),
    ),
    response=(
        field("throttle_time_ms", "int32", "0+"),
        array(
            "responses",
            (
                field("error_code", "int16", "0+"),
                field("error_message", "string", "0+", nullable="0+"),
                field("resource_type", "int8", "0+"),
                field("resource_name", "string", "0+"),
            ),
            "0+",
        ),
    ),
)

DESCRIBE_LOG_DIRS = ApiSchema(
    35,
    "DescribeLogDirs",
    "1-1",
    request=(
        array(
            "topics",
            (
                field("topic", "string", "1+"),
                array("partitions", "int32", "1+"),
            ),
            "1+",
            nullable="1+",
        ),
    ),
    response=(
        field("throttle_time_ms", "int32", "1+"),
        array(
            "results",
            (
                field("error_code", "int16", "1+"),
                field("log_dir", "string", "1+"),
                array(
                    "topics",
                    (
                        field("name", "string", "1+"),
                        array(
                            "partitions",
                            (
                                field("partition_index", "int32", "1+"),
                                field("partition_size", "int64", "1+"),
                                field("offset_lag", "int64", "1+"),
                                field("is_future_key", "bool", "1+"),
                            ),
                            "1+",
                        ),
                    ),
                    "1+",
                ),
            ),
            "1+",
        ),
    ),
)
