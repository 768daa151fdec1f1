"""The REST API's bodies as pydantic models: requests are validated with them, responses are built
from them, and :mod:`.openapi` writes the document's schemas from them, so the three agree."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from ...log import MAX_PARTITIONS

__all__ = [
    "MAX_LIMIT",
    "MAX_QUERY_ROWS",
    "MAX_QUERY_TIMEOUT_MS",
    "MAX_RECORDS",
    "MAX_WAIT_MS",
    "TOPIC_NAME_PATTERN",
    "CommittedOffset",
    "CreateTopic",
    "ErrorBody",
    "GroupDetail",
    "GroupList",
    "GroupMember",
    "GroupSummary",
    "Health",
    "PartitionDetail",
    "ProduceRecord",
    "ProduceRequest",
    "ProduceResponse",
    "ProducedOffset",
    "QueryRequest",
    "QueryResponse",
    "RecordOut",
    "RecordsPage",
    "RecordsQuery",
    "TopicDetail",
    "TopicList",
    "TopicPartitionRef",
    "TopicSummary",
]

TOPIC_NAME_PATTERN = r"^[a-zA-Z0-9._-]{1,249}$"
"""Kafka's rule for topic names: 1–249 of ``[a-zA-Z0-9._-]`` (and neither ``.`` nor ``..``,
which the broker refuses with INVALID_TOPIC_EXCEPTION)."""

MAX_LIMIT = 10_000
"""The most records one ``GET .../records`` returns."""
MAX_RECORDS = 10_000
"""The most records one ``POST .../records`` may carry."""
MAX_WAIT_MS = 60_000
"""The longest a ``GET .../records`` long-polls."""
MAX_QUERY_ROWS = 100_000
"""The most rows ``POST /query`` may ask for."""
MAX_QUERY_TIMEOUT_MS = 300_000
"""The longest ``POST /query`` may run."""

TopicName = Annotated[str, Field(pattern=TOPIC_NAME_PATTERN, description="the topic's name")]
JsonValue = Annotated[Any, Field(description="any JSON value")]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- requests ---------------------------------------------------------------------------------


class CreateTopic(_Request):
    """``POST /topics``."""

    name: TopicName
    partitions: int = Field(1, ge=1, le=MAX_PARTITIONS, description="how many partitions")
    configs: dict[str, str] = Field(
        default_factory=dict, description="topic configs (see docs/log.md), e.g. codec: text"
    )


class ProduceRecord(_Request):
    """One record of ``POST /topics/{name}/records``."""

    key: JsonValue = Field(
        None,
        description="null, or the key: a string is stored as its UTF-8 bytes, a number as its "
        "decimal text, anything else as compact JSON; base64 text on bytes topics",
    )
    value: JsonValue = Field(
        None,
        description="null, or the value as the topic's codec stores it: any JSON value on json "
        "topics, a string on text topics, base64 text on bytes topics",
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="header names and their text values"
    )
    partition: int | None = Field(
        None, ge=0, description="the partition; absent: by key, as Kafka's clients choose"
    )


ProduceRequest = Annotated[list[ProduceRecord], Field(min_length=1, max_length=MAX_RECORDS)]
"""The body of ``POST /topics/{name}/records``: a JSON array of records."""


class RecordsQuery(_Request):
    """The query string of ``GET /topics/{name}/partitions/{p}/records``."""

    offset: int | None = Field(
        None, ge=0, description="the first offset to read; absent: the partition's earliest"
    )
    limit: int = Field(100, ge=1, le=MAX_LIMIT, description="the most records returned")
    timeout_ms: int = Field(
        0,
        ge=0,
        le=MAX_WAIT_MS,
        description="how long to wait when there is no record at offset yet (0: answer at once)",
    )


class QueryRequest(_Request):
    """``POST /query``."""

    sql: str = Field(min_length=1, description="one read-only SQL statement over the topics")
    max_rows: int = Field(10_000, ge=1, le=MAX_QUERY_ROWS, description="the most rows returned")
    timeout_ms: int = Field(
        30_000, ge=1, le=MAX_QUERY_TIMEOUT_MS, description="how long the query may run"
    )


# --- responses --------------------------------------------------------------------------------


class ErrorBody(_Response):
    """Every error's body."""

    error: str = Field(description="a Kafka error code name, or an HTTP reason in that style")
    message: str = Field(description="one line saying what is wrong and what would be valid")


class Health(_Response):
    status: str = Field(description="always ok while the broker serves")


class TopicSummary(_Response):
    name: str
    partitions: int
    configs: dict[str, str] = Field(description="the configs set on the topic")


class TopicList(_Response):
    topics: list[TopicSummary]


class PartitionDetail(_Response):
    partition: int
    earliest_offset: int = Field(description="the first offset still in the log")
    latest_offset: int = Field(description="the high watermark: the offset of the next record")
    size_bytes: int = Field(description="bytes of the partition's segments on disk")


class TopicDetail(_Response):
    name: str
    partitions: list[PartitionDetail]
    configs: dict[str, str] = Field(description="every config with its value, defaults included")


class ProducedOffset(_Response):
    partition: int
    offset: int


class ProduceResponse(_Response):
    offsets: list[ProducedOffset] = Field(description="one per record, in the request's order")


class RecordOut(_Response):
    offset: int
    timestamp: int = Field(description="milliseconds since the epoch")
    key: str | None = Field(description="UTF-8 text (base64 on bytes topics)")
    value: JsonValue = Field(description="decoded by the topic's codec (base64 on bytes topics)")
    headers: dict[str, str]
    decode_error: str | None = Field(
        None, description="present when the codec could not decode the value; value is its text"
    )


class RecordsPage(_Response):
    topic: str
    partition: int
    records: list[RecordOut]
    next_offset: int = Field(description="the offset to ask for next")
    high_watermark: int


class TopicPartitionRef(_Response):
    topic: str
    partition: int


class GroupMember(_Response):
    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    assignment: list[TopicPartitionRef]


class CommittedOffset(_Response):
    topic: str
    partition: int
    committed_offset: int
    high_watermark: int | None = Field(description="null when the partition no longer exists")
    lag: int | None = Field(description="high watermark minus committed offset")
    metadata: str


class GroupSummary(_Response):
    group_id: str
    protocol_type: str
    state: str


class GroupList(_Response):
    groups: list[GroupSummary]


class GroupDetail(_Response):
    group_id: str
    state: str = Field(description="Empty, PreparingRebalance, CompletingRebalance or Stable")
    protocol_type: str
    protocol: str
    generation: int
    members: list[GroupMember]
    offsets: list[CommittedOffset]


class QueryResponse(_Response):
    columns: list[str]
    types: list[str] = Field(description="DuckDB's type of each column")
    rows: list[list[JsonValue]]
    elapsed_ms: float
