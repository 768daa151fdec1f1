"""Schemas of the APIs for the log: produce, fetch, offsets and producer ids.

Written from the Kafka protocol documentation, one :class:`~.schema.ApiSchema` per API, covering
the versions of DESIGN.md §5; see docs/protocol.md for how to add a version.
"""

from __future__ import annotations

from .schema import ApiSchema, array, field

__all__ = ["FETCH", "INIT_PRODUCER_ID", "LIST_OFFSETS", "OFFSET_FOR_LEADER_EPOCH", "PRODUCE"]

PRODUCE = ApiSchema(
    0,
    "Produce",
    "0-8",
    request=(
        field("transactional_id", "string", "3+", nullable="3+", default=None),
        field("acks", "int16", "0+"),
        field("timeout_ms", "int32", "0+"),
        array(
            "topic_data",
            (
                field("name", "string", "0+"),
                array(
                    "partition_data",
                    (
                        field("index", "int32", "0+"),
                        field("records", "records", "0+", nullable="0+"),
                    ),
                    "0+",
                ),
            ),
            "0+",
        ),
    ),
    response=(
        array(
            "responses",
            (
                field("name", "string", "0+"),
                array(
                    "partition_responses",
                    (
                        field("index", "int32", "0+"),
                        field("error_code", "int16", "0+"),
                        field("base_offset", "int64", "0+"),
                        field("log_append_time_ms", "int64", "2+", default=-1),
                        field("log_start_offset", "int64", "5+", default=-1),
                        array(
                            "record_errors",
                            (
                                field("batch_index", "int32", "8+"),
                                field(
                                    "batch_index_error_message",
                                    "string",
                                    "8+",
                                    nullable="8+",
                                    default=None,
                                ),
                            ),
                            "8+",
                        ),
                        field("error_message", "string", "8+", nullable="8+", default=None),
                    ),
                    "0+",
                ),
            ),
            "0+",
        ),
        field("throttle_time_ms", "int32", "1+", default=0),
    ),
)

FETCH = ApiSchema(
    1,
    "Fetch",
    "4-11",
    request=(
        field("replica_id", "int32", "4+", default=-1),
        field("max_wait_ms", "int32", "4+"),
        field("min_bytes", "int32", "4+"),
        field("max_bytes", "int32", "4+", default=0x7FFFFFFF),
        field("isolation_level", "int8", "4+", default=0),
        field("session_id", "int32", "7+", default=0),
        field("session_epoch", "int32", "7+", default=-1),
        array(
            "topics",
            (
                field("topic", "string", "4+"),
                array(
                    "partitions",
                    (
                        field("partition", "int32", "4+"),
                        field("current_leader_epoch", "int32", "9+", default=-1),
                        field("fetch_offset", "int64", "4+"),
                        field("log_start_offset", "int64", "5+", default=-1),
                        field("partition_max_bytes", "int32", "4+"),
                    ),
                    "4+",
                ),
            ),
            "4+",
        ),
        array(
            "forgotten_topics_data",
            (
                field("topic", "string", "7+"),
                array("partitions", "int32", "7+"),
            ),
            "7+",
        ),
        field("rack_id", "string", "11+", default=""),
    ),
    response=(
        field("throttle_time_ms", "int32", "4+"),
        field("error_code", "int16", "7+"),
        field("session_id", "int32", "7+", default=0),
        array(
            "responses",
            (
                field("topic", "string", "4+"),
                array(
                    "partitions",
                    (
                        field("partition_index", "int32", "4+"),
                        field("error_code", "int16", "4+"),
                        field("high_watermark", "int64", "4+"),
                        field("last_stable_offset", "int64", "4+", default=-1),
                        field("log_start_offset", "int64", "5+", default=-1),
                        array(
                            "aborted_transactions",
                            (
                                field("producer_id", "int64", "4+"),
                                field("first_offset", "int64", "4+"),
                            ),
                            "4+",
                            nullable="4+",
                        ),
                        field("preferred_read_replica", "int32", "11+", default=-1),
                        field("records", "records", "4+", nullable="4+"),
                    ),
                    "4+",
                ),
            ),
            "4+",
        ),
    ),
)

LIST_OFFSETS = ApiSchema(
    2,
    "ListOffsets",
    "1-5",
    request=(
        field("replica_id", "int32", "1+"),
        field("isolation_level", "int8", "2+"),
        array(
            "topics",
            (
                field("name", "string", "1+"),
                array(
                    "partitions",
                    (
                        field("partition_index", "int32", "1+"),
                        field("current_leader_epoch", "int32", "4+", default=-1),
                        field("timestamp", "int64", "1+"),
                    ),
                    "1+",
                ),
            ),
            "1+",
        ),
    ),
    response=(
        field("throttle_time_ms", "int32", "2+"),
        array(
            "topics",
            (
                field("name", "string", "1+"),
                array(
                    "partitions",
                    (
                        field("partition_index", "int32", "1+"),
                        field("error_code", "int16", "1+"),
                        field("timestamp", "int64", "1+", default=-1),
                        field("offset", "int64", "1+", default=-1),
                        field("leader_epoch", "int32", "4+", default=-1),
                    ),
                    "1+",
                ),
            ),
            "1+",
        ),
    ),
)

OFFSET_FOR_LEADER_EPOCH = ApiSchema(
    23,
    "OffsetForLeaderEpoch",
    "2-3",
    request=(
        field("replica_id", "int32", "3+", default=-2),
        array(
            "topics",
            (
                field("topic", "string", "2+"),
                array(
                    "partitions",
                    (
                        field("partition", "int32", "2+"),
                        field("current_leader_epoch", "int32", "2+", default=-1),
                        field("leader_epoch", "int32", "2+"),
                    ),
                    "2+",
                ),
            ),
            "2+",
        ),
    ),
    response=(
        field("throttle_time_ms", "int32", "2+"),
        array(
            "topics",
            (
                field("topic", "string", "2+"),
                array(
                    "partitions",
                    (
                        field("error_code", "int16", "2+"),
                        field("partition", "int32", "2+"),
                        field("leader_epoch", "int32", "2+", default=-1),
                        field("end_offset", "int64", "2+", default=-1),
                    ),
                    "2+",
                ),
            ),
            "2+",
        ),
    ),
)

INIT_PRODUCER_ID = ApiSchema(
    22,
    "InitProducerId",
    "0-1",
    request=(
        field("transactional_id", "string", "0+", nullable="0+"),
        field("transaction_timeout_ms", "int32", "0+"),
    ),
    response=(
        field("throttle_time_ms", "int32", "0+"),
        field("error_code", "int16", "0+"),
        field("producer_id", "int64", "0+", default=-1),
        field("producer_epoch", "int16", "0+"),
    ),
)
