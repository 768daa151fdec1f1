"""Kafka's error codes: numbers, names, whether a client may retry, and what they mean.

``ErrorCode.UNSUPPORTED_VERSION == 35``; ``ErrorCode(35).retriable`` is False;
``ErrorCode.for_code(n)`` never fails (an unknown number becomes ``UNKNOWN_SERVER_ERROR``).
The numbers and names follow the Kafka protocol documentation; "retriable" is Kafka's own
classification (a client retrying the same request may succeed).
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["ErrorCode"]


class ErrorCode(IntEnum):
    """A Kafka error code; ``.retriable`` and ``.message`` (one line) describe it."""

    retriable: bool
    message: str

    def __new__(cls, code: int, retriable: bool, message: str) -> ErrorCode:
        member = int.__new__(cls, code)
        member._value_ = code
        member.retriable = retriable
        member.message = message
        return member

    UNKNOWN_SERVER_ERROR = (-1, False, "The server hit an unexpected error.")
    NONE = (0, False, "No error.")
    OFFSET_OUT_OF_RANGE = (
        1,
        False,
        "The requested offset is outside the range the partition holds.",
    )
    CORRUPT_MESSAGE = (
        2,
        True,
        "A message failed its CRC check, is too small or is otherwise corrupt.",
    )
    UNKNOWN_TOPIC_OR_PARTITION = (3, True, "This server does not host that topic or partition.")
    INVALID_FETCH_SIZE = (4, False, "The requested fetch size is invalid.")
    LEADER_NOT_AVAILABLE = (
        5,
        True,
        "There is no leader for this partition right now (an election is under way).",
    )
    NOT_LEADER_OR_FOLLOWER = (
        6,
        True,
        "This server is not the leader or a follower of that partition.",
    )
    REQUEST_TIMED_OUT = (7, True, "The request timed out.")
    BROKER_NOT_AVAILABLE = (8, False, "The broker is not available.")
    REPLICA_NOT_AVAILABLE = (9, True, "The replica is not available for the requested partition.")
    MESSAGE_TOO_LARGE = (10, False, "The request held a message larger than the server accepts.")
    STALE_CONTROLLER_EPOCH = (11, False, "The controller moved to another broker.")
    OFFSET_METADATA_TOO_LARGE = (12, False, "The metadata of the committed offset is too large.")
    NETWORK_EXCEPTION = (13, True, "The server disconnected before a response was received.")
    COORDINATOR_LOAD_IN_PROGRESS = (
        14,
        True,
        "The coordinator is still loading and cannot answer yet.",
    )
    COORDINATOR_NOT_AVAILABLE = (15, True, "The coordinator is not available.")
    NOT_COORDINATOR = (16, True, "This is not the correct coordinator.")
    INVALID_TOPIC_EXCEPTION = (
        17,
        False,
        "The request names an illegal topic, or a topic it may not write to.",
    )
    RECORD_LIST_TOO_LARGE = (
        18,
        False,
        "The batch is larger than the largest segment the server allows.",
    )
    NOT_ENOUGH_REPLICAS = (19, True, "Fewer in-sync replicas than required.")
    NOT_ENOUGH_REPLICAS_AFTER_APPEND = (
        20,
        True,
        "Written, but to fewer in-sync replicas than required.",
    )
    INVALID_REQUIRED_ACKS = (21, False, "The request names an invalid number of acknowledgements.")
    ILLEGAL_GENERATION = (22, False, "The generation id is not the group's current one.")
    INCONSISTENT_GROUP_PROTOCOL = (
        23,
        False,
        "The member's protocol type or protocols do not match the group's.",
    )
    INVALID_GROUP_ID = (24, False, "The group id is empty or null.")
    UNKNOWN_MEMBER_ID = (25, False, "The coordinator does not know this member.")
    INVALID_SESSION_TIMEOUT = (
        26,
        False,
        "The session timeout is outside the range the broker allows.",
    )
    REBALANCE_IN_PROGRESS = (27, False, "The group is rebalancing; the member must rejoin.")
    INVALID_COMMIT_OFFSET_SIZE = (28, False, "The committed offset's metadata is too large.")
    TOPIC_AUTHORIZATION_FAILED = (29, False, "Not authorized to access the topic.")
    GROUP_AUTHORIZATION_FAILED = (30, False, "Not authorized to access the group.")
    CLUSTER_AUTHORIZATION_FAILED = (31, False, "Not authorized for this cluster operation.")
    INVALID_TIMESTAMP = (32, False, "A timestamp is outside the accepted range.")
    UNSUPPORTED_SASL_MECHANISM = (
        33,
        False,
        "The broker does not support the SASL mechanism asked for.",
    )
    ILLEGAL_SASL_STATE = (34, False, "The request is not valid in the current SASL state.")
    UNSUPPORTED_VERSION = (35, False, "The broker does not support this version of the API.")
    TOPIC_ALREADY_EXISTS = (36, False, "A topic of that name already exists.")
    INVALID_PARTITIONS = (37, False, "The number of partitions is invalid.")
    INVALID_REPLICATION_FACTOR = (38, False, "The replication factor is invalid.")
    INVALID_REPLICA_ASSIGNMENT = (39, False, "The replica assignment is invalid.")
    INVALID_CONFIG = (40, False, "A configuration is invalid.")
    NOT_CONTROLLER = (41, True, "This is not the controller of the cluster.")
    INVALID_REQUEST = (
        42,
        False,
        "The request is malformed or breaks a rule of the protocol; the broker log says more.",
    )
    UNSUPPORTED_FOR_MESSAGE_FORMAT = (
        43,
        False,
        "The message format version on the broker does not support the request.",
    )
    POLICY_VIOLATION = (44, False, "The request breaks a policy configured on the broker.")
    OUT_OF_ORDER_SEQUENCE_NUMBER = (
        45,
        False,
        "The broker received a sequence number out of order.",
    )
    DUPLICATE_SEQUENCE_NUMBER = (46, False, "The broker received a duplicate sequence number.")
    INVALID_PRODUCER_EPOCH = (
        47,
        False,
        "The producer epoch is older than the current one (another producer took over).",
    )
    INVALID_TXN_STATE = (
        48,
        False,
        "The producer tried an operation in the wrong transaction state.",
    )
    INVALID_PRODUCER_ID_MAPPING = (
        49,
        False,
        "The producer id does not match the transactional id.",
    )
    INVALID_TRANSACTION_TIMEOUT = (
        50,
        False,
        "The transaction timeout is larger than the broker allows.",
    )
    CONCURRENT_TRANSACTIONS = (
        51,
        True,
        "Another transaction of this producer is still being completed.",
    )
    TRANSACTION_COORDINATOR_FENCED = (52, False, "A newer transaction coordinator has taken over.")
    TRANSACTIONAL_ID_AUTHORIZATION_FAILED = (53, False, "Not authorized for the transactional id.")
    SECURITY_DISABLED = (54, False, "Security features are disabled.")
    OPERATION_NOT_ATTEMPTED = (
        55,
        False,
        "The broker did not attempt the operation (another part of the request failed).",
    )
    KAFKA_STORAGE_ERROR = (56, True, "A disk error while reading or writing the log.")
    LOG_DIR_NOT_FOUND = (57, False, "The log directory named in the request does not exist.")
    SASL_AUTHENTICATION_FAILED = (58, False, "SASL authentication failed.")
    UNKNOWN_PRODUCER_ID = (59, False, "The broker holds no state for this producer id.")
    REASSIGNMENT_IN_PROGRESS = (60, False, "A partition reassignment is in progress.")
    DELEGATION_TOKEN_AUTH_DISABLED = (61, False, "Delegation tokens are disabled.")
    DELEGATION_TOKEN_NOT_FOUND = (62, False, "The delegation token was not found.")
    DELEGATION_TOKEN_OWNER_MISMATCH = (
        63,
        False,
        "The principal does not own the delegation token.",
    )
    DELEGATION_TOKEN_REQUEST_NOT_ALLOWED = (
        64,
        False,
        "Delegation token requests are not allowed on this connection.",
    )
    DELEGATION_TOKEN_AUTHORIZATION_FAILED = (65, False, "Not authorized for the delegation token.")
    DELEGATION_TOKEN_EXPIRED = (66, False, "The delegation token has expired.")
    INVALID_PRINCIPAL_TYPE = (67, False, "The principal type is not supported.")
    NON_EMPTY_GROUP = (68, False, "The group is not empty.")
    GROUP_ID_NOT_FOUND = (69, False, "The group id does not exist.")
    FETCH_SESSION_ID_NOT_FOUND = (70, True, "The fetch session id was not found.")
    INVALID_FETCH_SESSION_EPOCH = (71, True, "The fetch session epoch is invalid.")
    LISTENER_NOT_FOUND = (
        72,
        True,
        "The leader has no endpoint for the listener the request came through.",
    )
    TOPIC_DELETION_DISABLED = (73, False, "Topic deletion is disabled.")
    FENCED_LEADER_EPOCH = (74, True, "The leader epoch in the request is older than the broker's.")
    UNKNOWN_LEADER_EPOCH = (75, True, "The leader epoch in the request is newer than the broker's.")
    UNSUPPORTED_COMPRESSION_TYPE = (
        76,
        False,
        "The consumer or broker does not support the compression type.",
    )
    STALE_BROKER_EPOCH = (77, False, "The broker epoch has changed.")
    OFFSET_NOT_AVAILABLE = (78, True, "The leader's high watermark has not caught up yet.")
    MEMBER_ID_REQUIRED = (
        79,
        False,
        "The group member must rejoin with the member id the broker assigned.",
    )
    PREFERRED_LEADER_NOT_AVAILABLE = (80, True, "The preferred leader is not available.")
    GROUP_MAX_SIZE_REACHED = (81, False, "The group has reached its maximum size.")
    FENCED_INSTANCE_ID = (
        82,
        False,
        "Another member with the same group.instance.id has taken over.",
    )
    ELIGIBLE_LEADERS_NOT_AVAILABLE = (83, True, "No eligible leader is available for the election.")
    ELECTION_NOT_NEEDED = (84, True, "The leader election is not needed.")
    NO_REASSIGNMENT_IN_PROGRESS = (85, False, "No partition reassignment is in progress.")
    GROUP_SUBSCRIBED_TO_TOPIC = (
        86,
        False,
        "The group still subscribes to the topic, so its offsets cannot be deleted.",
    )
    INVALID_RECORD = (87, False, "A record failed the broker's validation.")
    UNSTABLE_OFFSET_COMMIT = (88, True, "Offsets of a pending transaction are not yet stable.")
    THROTTLING_QUOTA_EXCEEDED = (89, True, "The throttling quota has been exceeded.")
    PRODUCER_FENCED = (90, False, "A newer producer with the same transactional id has taken over.")
    RESOURCE_NOT_FOUND = (91, False, "The request refers to a resource that does not exist.")
    DUPLICATE_RESOURCE = (92, False, "The request names the same resource more than once.")
    UNACCEPTABLE_CREDENTIAL = (93, False, "The credential does not meet the broker's rules.")
    INCONSISTENT_VOTER_SET = (
        94,
        False,
        "The voter set of the request does not match the receiver's.",
    )
    INVALID_UPDATE_VERSION = (95, False, "The update version is invalid.")
    FEATURE_UPDATE_FAILED = (96, False, "The feature update failed.")
    PRINCIPAL_DESERIALIZATION_FAILURE = (
        97,
        False,
        "The forwarded principal could not be deserialized.",
    )
    SNAPSHOT_NOT_FOUND = (98, False, "The requested snapshot was not found.")
    POSITION_OUT_OF_RANGE = (99, False, "The requested position is outside the snapshot.")
    UNKNOWN_TOPIC_ID = (100, True, "This server does not host a topic with that id.")
    DUPLICATE_BROKER_REGISTRATION = (101, False, "A broker with this id is already registered.")
    BROKER_ID_NOT_REGISTERED = (102, False, "The broker id is not registered.")
    INCONSISTENT_TOPIC_ID = (103, True, "The topic id does not match the one in the log.")
    INCONSISTENT_CLUSTER_ID = (104, False, "The cluster id does not match the one stored.")
    TRANSACTIONAL_ID_NOT_FOUND = (105, False, "The transactional id was not found.")
    FETCH_SESSION_TOPIC_ID_ERROR = (106, True, "The fetch session saw a topic id change.")
    INELIGIBLE_REPLICA = (107, False, "The new ISR holds a replica that is not eligible.")
    NEW_LEADER_ELECTED = (108, False, "A new leader was elected since the request was sent.")
    OFFSET_MOVED_TO_TIERED_STORAGE = (
        109,
        False,
        "The requested offset has moved to tiered storage.",
    )
    FENCED_MEMBER_EPOCH = (
        110,
        False,
        "The member epoch is fenced; the member must rejoin with epoch 0.",
    )
    UNRELEASED_INSTANCE_ID = (111, False, "The instance id is still used by another member.")
    UNSUPPORTED_ASSIGNOR = (
        112,
        False,
        "The assignor or its version is not supported by the group.",
    )
    STALE_MEMBER_EPOCH = (
        113,
        False,
        "The member epoch is stale; the member must retry after its next heartbeat.",
    )
    MISMATCHED_ENDPOINT_TYPE = (
        114,
        False,
        "The request was sent to an endpoint of the wrong type.",
    )
    UNSUPPORTED_ENDPOINT_TYPE = (115, False, "This endpoint type does not support the request.")
    UNKNOWN_CONTROLLER_ID = (116, False, "This controller id is not known.")
    UNKNOWN_SUBSCRIPTION_ID = (
        117,
        False,
        "The client sent a telemetry subscription id the broker does not know.",
    )
    TELEMETRY_TOO_LARGE = (118, False, "The client's telemetry payload is larger than allowed.")
    INVALID_REGISTRATION = (119, False, "The controller judged the broker registration invalid.")
    TRANSACTION_ABORTABLE = (
        120,
        False,
        "The server hit an error that the producer can recover from by aborting the transaction.",
    )
    INVALID_RECORD_STATE = (121, False, "The record state is invalid.")
    SHARE_SESSION_NOT_FOUND = (122, True, "The share session was not found.")
    INVALID_SHARE_SESSION_EPOCH = (123, True, "The share session epoch is invalid.")
    FENCED_STATE_EPOCH = (124, False, "The share coordinator's state epoch is fenced.")
    INVALID_VOTER_KEY = (125, False, "The voter key does not match the receiving replica's.")
    DUPLICATE_VOTER = (126, False, "The voter is already part of the voter set.")
    VOTER_NOT_FOUND = (127, False, "The voter is not part of the voter set.")

    @classmethod
    def for_code(cls, code: int) -> ErrorCode:
        """The member for ``code``; a number this table does not know is UNKNOWN_SERVER_ERROR."""
        return cls._value2member_map_.get(code, cls.UNKNOWN_SERVER_ERROR)  # type: ignore[return-value]
