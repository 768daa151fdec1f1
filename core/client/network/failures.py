"""Kafka error codes turned into millstream's errors, with one-line messages.

The network transport raises the same errors as the embedded one for the same mistakes
(UnknownTopicError for an unknown topic, TopicExistsError, RecordTooLargeError…), so callers
handle one error tree whatever the store.
"""

from __future__ import annotations

from ...errors import (
    ConfigError,
    CorruptBatchError,
    InvalidOffsetError,
    InvalidPartitionsError,
    InvalidTopicError,
    MillstreamError,
    RecordTooLargeError,
    StoreError,
    TopicExistsError,
    UnknownGroupError,
    UnknownTopicError,
)
from ...protocol import ErrorCode

__all__ = ["REFRESH_METADATA", "error_for"]

_ERRORS: dict[ErrorCode, type[MillstreamError]] = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: UnknownTopicError,
    ErrorCode.TOPIC_ALREADY_EXISTS: TopicExistsError,
    ErrorCode.INVALID_TOPIC_EXCEPTION: InvalidTopicError,
    ErrorCode.TOPIC_AUTHORIZATION_FAILED: InvalidTopicError,
    ErrorCode.INVALID_PARTITIONS: InvalidPartitionsError,
    ErrorCode.MESSAGE_TOO_LARGE: RecordTooLargeError,
    ErrorCode.RECORD_LIST_TOO_LARGE: RecordTooLargeError,
    ErrorCode.OFFSET_OUT_OF_RANGE: InvalidOffsetError,
    ErrorCode.CORRUPT_MESSAGE: CorruptBatchError,
    ErrorCode.INVALID_CONFIG: ConfigError,
    ErrorCode.INVALID_REPLICATION_FACTOR: ConfigError,
    ErrorCode.INVALID_REPLICA_ASSIGNMENT: ConfigError,
    ErrorCode.POLICY_VIOLATION: ConfigError,
    ErrorCode.GROUP_ID_NOT_FOUND: UnknownGroupError,
}

REFRESH_METADATA = frozenset(
    {
        ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
        ErrorCode.LEADER_NOT_AVAILABLE,
        ErrorCode.NOT_LEADER_OR_FOLLOWER,
        ErrorCode.FENCED_LEADER_EPOCH,
        ErrorCode.UNKNOWN_LEADER_EPOCH,
        ErrorCode.REPLICA_NOT_AVAILABLE,
        ErrorCode.KAFKA_STORAGE_ERROR,
    }
)
"""Errors after which the client looks up the cluster's metadata again before retrying."""


def error_for(code: int, what: str, detail: str | None = None) -> MillstreamError:
    """The millstream error for Kafka error ``code`` met while doing ``what`` ("create topic
    'x'"); ``detail`` is the broker's own message when it sent one."""
    error = ErrorCode.for_code(code)
    reason = detail or error.message.rstrip(".")
    text = f"cannot {what}: {reason} ({error.name})"
    if error == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
        text += "; create it with `millstream topics create`"
    return _ERRORS.get(error, StoreError)(text)
