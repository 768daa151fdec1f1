"""The shape of a pipeline file, as pydantic models (unknown keys refused).

These models check structure and simple values only: names, numbers, durations, choices. What
needs the plugin registry (connectors, their configs, steps, codecs) or the whole file (topic
references, cycles) is checked by the compiler. Each field's ``description`` is the text of
its row in docs/pipelines.md and the hover text in editors (through ``millstream schema``).
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    WithJsonSchema,
    model_validator,
)

from millstream.core.duration import Duration, RetentionMs

__all__ = [
    "FileSpec",
    "OutputSpec",
    "RetrySpec",
    "RouteSpec",
    "SinkSpec",
    "SourceSpec",
    "TopicSpec",
]

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_TOPIC = re.compile(r"[A-Za-z0-9._-]{1,249}")
NAME_PATTERN = r"^[A-Za-z0-9_-]+$"
TOPIC_PATTERN = r"^[A-Za-z0-9._-]{1,249}$"


def _name(value: str) -> str:
    """A pipeline's or a part's name: no '.', so that ``<pipeline>.<part>``, the name of a
    consumer group, names one part only (``shop`` + ``eu.audit`` would be ``shop.eu`` +
    ``audit``)."""
    if not _NAME.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid name; use letters, digits, '_' and '-' (no '.': "
            "consumer groups are named <pipeline>.<part>, and a '.' would let two parts "
            "share one)"
        )
    return value


def _topic(value: str) -> str:
    if not _TOPIC.fullmatch(value) or value in (".", ".."):
        raise ValueError(
            f"{value!r} is not a valid topic name; use 1 to 249 letters, digits, '.', '_' and "
            "'-' (not '.' or '..')"
        )
    if value.startswith("__"):
        raise ValueError(f"{value!r} is an internal topic name (it starts with '__'); pick another")
    return value


def _none_is_empty(value: Any) -> Any:
    return {} if value is None else value


def _none_is_list(value: Any) -> Any:
    return [] if value is None else value


def _one_or_many(value: Any) -> Any:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list | tuple):
        raise ValueError("expected a topic or a list of topics")
    return value


Name = Annotated[
    str, AfterValidator(_name), WithJsonSchema({"type": "string", "pattern": NAME_PATTERN})
]
TopicName = Annotated[
    str, AfterValidator(_topic), WithJsonSchema({"type": "string", "pattern": TOPIC_PATTERN})
]
TopicNames = Annotated[
    tuple[TopicName, ...],
    BeforeValidator(_one_or_many),
    Field(min_length=1),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": TOPIC_PATTERN},
                {
                    "type": "array",
                    "items": {"type": "string", "pattern": TOPIC_PATTERN},
                    "minItems": 1,
                },
            ]
        }
    ),
]
"""One topic name or a list of them, as a tuple."""

ExpressionText = Annotated[str, Field(min_length=1)]
"""A pipeline expression (``value.temp > 20``), compiled by the compiler."""
OnErrorWord = Literal["dead_letter", "dead", "stop"]
Start = Literal["earliest", "latest"]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=False)


class TopicSpec(_Spec):
    """A topic under ``topics:``; a topic given no settings (``dead: {}``) takes the defaults."""

    partitions: int = Field(default=1, ge=1, description="how many partitions the topic has")
    replication: int | None = Field(
        default=None,
        ge=1,
        description=(
            "copies of each partition; default: the store's (1 on the embedded store and "
            "millstream broker, default.replication.factor on Kafka)"
        ),
    )
    codec: str = Field(
        default="json",
        description="how values are decoded and encoded: json, text, bytes or a plugin's codec",
    )
    retention: RetentionMs | None = Field(
        default=None,
        description="how long records are kept: a duration (7d, 12h, 30m) or forever "
        "(default: the store's, 7d)",
    )
    compression: Literal["none", "gzip", "snappy", "lz4", "zstd"] | None = Field(
        default=None,
        description="how batches are compressed on disk (default: as the producer sends)",
    )
    cleanup: Literal["delete", "compact"] | None = Field(
        default=None,
        description="delete: drop old segments; compact: keep the newest record per key "
        "(default: delete)",
    )


class RetrySpec(_Spec):
    """Retries of a failed step or sink write, with exponential backoff and jitter."""

    max_attempts: int = Field(
        default=3, ge=1, description="attempts in all, the first one included"
    )
    initial: Duration = Field(
        default=timedelta(milliseconds=200),
        description="the longest wait before the second attempt",
        json_schema_extra={"default": "200ms"},
    )
    max: Duration = Field(
        default=timedelta(seconds=10),
        description="the longest wait between attempts",
        json_schema_extra={"default": "10s"},
    )

    @model_validator(mode="after")
    def _initial_within_max(self) -> RetrySpec:
        if self.initial > self.max:
            raise ValueError("retry.initial must not be longer than retry.max")
        return self


class SourceSpec(_Spec):
    """A source under ``sources:``."""

    connector: str = Field(description="the source connector, by name (generator, stdin, …)")
    config: dict[str, Any] | None = Field(
        default=None,
        description="the connector's settings (see `millstream connectors describe NAME`)",
    )
    to: TopicNames = Field(description="the topic, or list of topics, it writes every event to")
    key: ExpressionText | None = Field(
        default=None, description="an expression for each event's record key (value.device_id)"
    )


class OutputSpec(_Spec):
    """One entry of a route's ``to`` list: a topic and, when given, the condition for it."""

    topic: TopicName = Field(description="the topic the event goes to")
    when: ExpressionText | None = Field(
        default=None, description="an expression: the event goes to `topic` only when it is true"
    )


_OUTPUT_SCHEMA = OutputSpec.model_json_schema()


def _outputs(value: Any) -> Any:
    if isinstance(value, str):
        return [{"topic": value}]
    if isinstance(value, list):
        return [{"topic": item} if isinstance(item, str) else item for item in value]
    raise ValueError("expected a topic, a list of topics or a list of {topic, when}")


Outputs = Annotated[
    tuple[OutputSpec, ...],
    BeforeValidator(_outputs),
    Field(min_length=1),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": TOPIC_PATTERN},
                {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "anyOf": [
                            {"type": "string", "pattern": TOPIC_PATTERN},
                            _OUTPUT_SCHEMA,
                        ]
                    },
                },
            ]
        }
    ),
]


def _step_entry(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("expected a step, `- NAME: ARGUMENT` (such as `- filter: value.x > 1`)")
    return value


def _one_key_mapping(value: Any) -> Any:
    if len(value) != 1:
        keys = ", ".join(map(str, value)) or "none"
        raise ValueError(
            f"a step is a mapping with one key, its name (`- filter: value.temp > 20`); "
            f"this one has {len(value)} ({keys})"
        )
    return value


StepEntry = Annotated[
    dict[str, Any],
    BeforeValidator(_step_entry),
    AfterValidator(_one_key_mapping),
    WithJsonSchema({"type": "object", "minProperties": 1, "maxProperties": 1}),
]


class _Consumer(_Spec):
    """What routes and sinks share: they read topics in a consumer group."""

    dead_letter: TopicName | None = Field(
        default=None, description="where failed events go (default: the file's `dead_letter`)"
    )
    start: Start = Field(
        default="earliest",
        description="where a new consumer group starts reading: earliest or latest",
    )
    workers: int = Field(default=1, ge=1, description="how many copies run, sharing the partitions")
    retry: RetrySpec = Field(default=RetrySpec(), description="retries of a failed step or write")
    on_error: OnErrorWord | None = Field(
        default=None,
        description="what a failure does after the last retry: dead (or dead_letter) sends "
        "the event to the dead-letter topic, stop stops the pipeline (default: dead; with no "
        "dead-letter topic set, the pipeline stops rather than lose the event)",
    )


class RouteSpec(_Consumer):
    """A route under ``routes:``: reads topics, runs steps, writes topics."""

    from_: TopicNames = Field(alias="from", description="the topic, or list of topics, it reads")
    steps: Annotated[list[StepEntry], BeforeValidator(_none_is_list)] = Field(
        default_factory=list,
        description="the steps, in order, each `- NAME: ARGUMENT` (see steps.md)",
    )
    to: Outputs = Field(
        description="where events go: a topic, a list of topics, or a list of "
        "{topic, when} entries (content-based routing)"
    )
    switch: Literal["all", "first"] = Field(
        default="all",
        description="all: every matching `to` entry gets the event; first: the first only",
    )
    unmatched: TopicName | None = Field(
        default=None, description="where events that match no `to` entry go (default: nowhere)"
    )


class SinkSpec(_Consumer):
    """A sink under ``sinks:``."""

    connector: str = Field(description="the sink connector, by name (stdout, null, …)")
    from_: TopicNames = Field(alias="from", description="the topic, or list of topics, it reads")
    config: dict[str, Any] | None = Field(
        default=None,
        description="the connector's settings (see `millstream connectors describe NAME`)",
    )


class FileSpec(_Spec):
    """A whole pipeline file."""

    pipeline: Name = Field(
        description="the pipeline's name; its consumer groups are named PIPELINE.NAME after "
        "it and each route or sink"
    )
    store: str | None = Field(
        default=None,
        description="the store URL (file:DIR, millstream://HOST:PORT, kafka://HOST:PORT); "
        "--store and MILLSTREAM_STORE override it; default file:./.millstream",
    )
    dead_letter: TopicName | None = Field(
        default=None, description="the dead-letter topic of every route and sink that names none"
    )
    topics: Annotated[dict[TopicName, TopicSpec | None], BeforeValidator(_none_is_empty)] = Field(
        default_factory=dict, description="the topics, by name; created when missing"
    )
    sources: Annotated[dict[Name, SourceSpec], BeforeValidator(_none_is_empty)] = Field(
        default_factory=dict, description="the sources, by name"
    )
    routes: Annotated[dict[Name, RouteSpec], BeforeValidator(_none_is_empty)] = Field(
        default_factory=dict, description="the routes, by name"
    )
    sinks: Annotated[dict[Name, SinkSpec], BeforeValidator(_none_is_empty)] = Field(
        default_factory=dict, description="the sinks, by name"
    )
    tests: list[Any] = Field(
        default_factory=list,
        description="tests run by `millstream test`: events in, expected events out",
    )
