"""Handlers of the admin APIs: ApiVersions, Metadata, CreateTopics, DeleteTopics,
CreatePartitions, DescribeConfigs, AlterConfigs and DescribeLogDirs.

A single node is leader of every partition (leader epoch 0) and its only replica and in-sync
replica. Topic configs are core.log's (see docs/log.md); the broker resource is described, not
altered.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import ConfigError, TopicExistsError
from ..log import CONFIG_KEYS, MAX_PARTITIONS, TopicConfig, is_internal, validate_topic_name
from ..protocol import (
    SUPPORTED_VERSIONS,
    ApiKey,
    ErrorCode,
    RequestHeader,
    response_class,
)
from .handler import BrokerContext, Handler
from .log_apis import LEADER_EPOCH, partition_error
from .producers import HIDDEN_TOPICS

__all__ = ["HIDDEN_TOPICS", "AdminApis"]

_log = logging.getLogger("millstream.broker")

_API_VERSIONS: Any = response_class(ApiKey.API_VERSIONS)
_METADATA: Any = response_class(ApiKey.METADATA)
_CREATE: Any = response_class(ApiKey.CREATE_TOPICS)
_DELETE: Any = response_class(ApiKey.DELETE_TOPICS)
_PARTITIONS: Any = response_class(ApiKey.CREATE_PARTITIONS)
_DESCRIBE_CONFIGS: Any = response_class(ApiKey.DESCRIBE_CONFIGS)
_ALTER_CONFIGS: Any = response_class(ApiKey.ALTER_CONFIGS)
_LOG_DIRS: Any = response_class(ApiKey.DESCRIBE_LOG_DIRS)

TOPIC_RESOURCE = 2
BROKER_RESOURCE = 4
_SOURCE_TOPIC = 1  # DYNAMIC_TOPIC_CONFIG
_SOURCE_STATIC_BROKER = 4
_SOURCE_DEFAULT = 5


class AdminApis:
    """The admin handlers of one broker; ``served`` tells which API keys have a handler, for
    ApiVersions."""

    def __init__(
        self,
        ctx: BrokerContext,
        served: Callable[[], set[int]],
        topic_deleted: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        """``topic_deleted(name)`` is awaited after a topic is deleted, so that what the broker
        keeps per topic (producer sequences, groups' committed offsets) is forgotten."""
        self.ctx = ctx
        self._served = served
        self._topic_deleted = topic_deleted

    def handlers(self) -> dict[int, Handler]:
        return {
            ApiKey.API_VERSIONS: self.api_versions,
            ApiKey.METADATA: self.metadata,
            ApiKey.CREATE_TOPICS: self.create_topics,
            ApiKey.DELETE_TOPICS: self.delete_topics,
            ApiKey.CREATE_PARTITIONS: self.create_partitions,
            ApiKey.DESCRIBE_CONFIGS: self.describe_configs,
            ApiKey.ALTER_CONFIGS: self.alter_configs,
            ApiKey.DESCRIBE_LOG_DIRS: self.describe_log_dirs,
        }

    async def api_versions(self, header: RequestHeader, body: Any) -> Any:
        served = self._served()
        keys = [
            _API_VERSIONS.ApiKeys(
                api_key=key, min_version=v.advertised[0], max_version=v.advertised[1]
            )
            for key, v in sorted(SUPPORTED_VERSIONS.items())
            if key in served
        ]
        return _API_VERSIONS(error_code=0, api_keys=keys, throttle_time_ms=0)

    # --- Metadata -----------------------------------------------------------------------------

    async def metadata(self, header: RequestHeader, body: Any) -> Any:
        ctx = self.ctx
        store = ctx.store
        config = ctx.config
        if body.topics is None or (header.api_version == 0 and not body.topics):
            names = [n for n in store.topic_names() if n not in HIDDEN_TOPICS]
        else:
            names = [t.name for t in body.topics]
        auto_create = config.auto_create_topics and body.allow_auto_topic_creation
        topics = []
        for name in names:
            topics.append(self._describe_topic(name, auto_create and body.topics is not None))
        broker = _METADATA.Brokers(node_id=ctx.node_id, host=ctx.host, port=ctx.port, rack=None)
        return _METADATA(
            throttle_time_ms=0,
            brokers=[broker],
            cluster_id=config.cluster_id,
            controller_id=ctx.node_id,
            topics=topics,
        )

    def _describe_topic(self, name: str, auto_create: bool) -> Any:
        store = self.ctx.store
        out = _METADATA.Topics(error_code=0, name=name, is_internal=False, partitions=[])
        try:
            if not store.has_topic(name):
                validate_topic_name(name)
                if not auto_create:
                    out.error_code = ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
                    return out
                store.create_topic(name, self.ctx.config.num_partitions)
                _log.info(
                    "created topic %r with %d partition(s) on first use",
                    name,
                    self.ctx.config.num_partitions,
                )
            topic = store.topic(name)
        except TopicExistsError:
            topic = store.topic(name)
        except Exception as exc:  # every failure becomes an error code
            out.error_code = partition_error(exc)
            return out
        node = self.ctx.node_id
        out.is_internal = topic.internal
        out.partitions = [
            _METADATA.Topics.Partitions(
                error_code=0,
                partition_index=p,
                leader_id=node,
                leader_epoch=LEADER_EPOCH,
                replica_nodes=[node],
                isr_nodes=[node],
                offline_replicas=[],
            )
            for p in range(len(topic.partitions))
        ]
        return out

    # --- topics -------------------------------------------------------------------------------

    async def create_topics(self, header: RequestHeader, body: Any) -> Any:
        store = self.ctx.store
        results = []
        for request in body.topics:
            out = _CREATE.Topics(name=request.name, error_code=0, error_message=None)
            results.append(out)
            try:
                count = request.num_partitions
                if request.assignments:
                    count = len(request.assignments)
                    if any(set(a.broker_ids) - {self.ctx.node_id} for a in request.assignments):
                        _fail(
                            out,
                            ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                            "this broker is the only node: assign replicas to node "
                            f"{self.ctx.node_id}",
                        )
                        continue
                elif count == -1:
                    count = self.ctx.config.num_partitions
                if request.replication_factor not in (-1, 1):
                    _fail(
                        out,
                        ErrorCode.INVALID_REPLICATION_FACTOR,
                        f"replication factor {request.replication_factor} is not possible on "
                        "a single broker; valid: 1",
                    )
                    continue
                if not 1 <= count <= MAX_PARTITIONS:
                    _fail(
                        out,
                        ErrorCode.INVALID_PARTITIONS,
                        f"{count} partitions is not valid; valid: 1 to {MAX_PARTITIONS}",
                    )
                    continue
                validate_topic_name(request.name)
                configs = {c.name: c.value for c in request.configs}
                TopicConfig.parse(configs)
                if store.has_topic(request.name):
                    _fail(
                        out,
                        ErrorCode.TOPIC_ALREADY_EXISTS,
                        f"topic {request.name!r} already exists",
                    )
                    continue
                if not body.validate_only:
                    store.create_topic(request.name, count, configs)
            except ConfigError as exc:
                _fail(out, ErrorCode.INVALID_CONFIG, str(exc))
            except TopicExistsError as exc:
                _fail(out, ErrorCode.TOPIC_ALREADY_EXISTS, str(exc))
            except Exception as exc:
                _fail(out, partition_error(exc), str(exc))
        return _CREATE(throttle_time_ms=0, topics=results)

    async def delete_topics(self, header: RequestHeader, body: Any) -> Any:
        store = self.ctx.store
        results = []
        for name in body.topic_names:
            out = _DELETE.Responses(name=name, error_code=0)
            results.append(out)
            try:
                if is_internal(name):
                    out.error_code = ErrorCode.INVALID_TOPIC_EXCEPTION
                    continue
                await store.adelete_topic(name)
                if self._topic_deleted is not None:
                    await self._topic_deleted(name)
            except Exception as exc:
                out.error_code = partition_error(exc)
        return _DELETE(throttle_time_ms=0, responses=results)

    async def create_partitions(self, header: RequestHeader, body: Any) -> Any:
        store = self.ctx.store
        results = []
        for request in body.topics:
            out = _PARTITIONS.Results(name=request.name, error_code=0, error_message=None)
            results.append(out)
            try:
                topic = store.topic(request.name)
                current = len(topic.partitions)
                if request.count <= current:
                    _fail(
                        out,
                        ErrorCode.INVALID_PARTITIONS,
                        f"topic {request.name!r} has {current} partitions; "
                        "the new count must be larger",
                    )
                    continue
                if request.count > MAX_PARTITIONS:
                    _fail(
                        out,
                        ErrorCode.INVALID_PARTITIONS,
                        f"{request.count} partitions is more than the limit of {MAX_PARTITIONS}",
                    )
                    continue
                if not body.validate_only:
                    store.alter_topic(request.name, partitions=request.count)
            except Exception as exc:
                _fail(out, partition_error(exc), str(exc))
        return _PARTITIONS(throttle_time_ms=0, results=results)

    # --- configs ------------------------------------------------------------------------------

    async def describe_configs(self, header: RequestHeader, body: Any) -> Any:
        results = []
        for resource in body.resources:
            out = _DESCRIBE_CONFIGS.Results(
                error_code=0,
                error_message=None,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
                configs=[],
            )
            results.append(out)
            keys = resource.configuration_keys
            if resource.resource_type == TOPIC_RESOURCE:
                try:
                    topic = self.ctx.store.topic(resource.resource_name)
                except Exception as exc:
                    _fail(out, partition_error(exc), str(exc))
                    continue
                overrides = topic.config.overrides
                for name, value in topic.config.all().items():
                    if keys is not None and name not in keys:
                        continue
                    source = _SOURCE_TOPIC if name in overrides else _SOURCE_DEFAULT
                    out.configs.append(_config_entry(name, value, source, read_only=False))
            elif resource.resource_type == BROKER_RESOURCE:
                if resource.resource_name not in ("", str(self.ctx.node_id)):
                    _fail(
                        out,
                        ErrorCode.INVALID_REQUEST,
                        f"unknown broker {resource.resource_name!r}; "
                        f"this is broker {self.ctx.node_id}",
                    )
                    continue
                for name, value in self._broker_configs().items():
                    if keys is None or name in keys:
                        out.configs.append(
                            _config_entry(name, value, _SOURCE_STATIC_BROKER, read_only=True)
                        )
            else:
                _fail(
                    out,
                    ErrorCode.INVALID_REQUEST,
                    f"resource type {resource.resource_type} is not described; "
                    "valid: 2 (topic), 4 (broker)",
                )
        return _DESCRIBE_CONFIGS(throttle_time_ms=0, results=results)

    def _broker_configs(self) -> dict[str, str]:
        config = self.ctx.config
        return {
            "broker.id": str(self.ctx.node_id),
            "advertised.listeners": f"PLAINTEXT://{self.ctx.host}:{self.ctx.port}",
            "auto.create.topics.enable": str(config.auto_create_topics).lower(),
            "num.partitions": str(config.num_partitions),
            "socket.request.max.bytes": str(config.max_request_size),
            "log.dirs": str(config.data_dir),
        }

    async def alter_configs(self, header: RequestHeader, body: Any) -> Any:
        store = self.ctx.store
        results = []
        for resource in body.resources:
            out = _ALTER_CONFIGS.Responses(
                error_code=0,
                error_message=None,
                resource_type=resource.resource_type,
                resource_name=resource.resource_name,
            )
            results.append(out)
            if resource.resource_type != TOPIC_RESOURCE:
                _fail(
                    out,
                    ErrorCode.INVALID_REQUEST,
                    "only topic configs can be altered; broker configs are set on the command line",
                )
                continue
            try:
                topic = store.topic(resource.resource_name)
                # AlterConfigs replaces the whole set of overrides: keys not named are reset
                changes: dict[str, object] = dict.fromkeys(topic.config.overrides)
                changes.update({c.name: c.value for c in resource.configs})
                for key in changes:
                    if key not in CONFIG_KEYS:
                        TopicConfig.parse({key: changes[key]})  # raises, naming the valid keys
                TopicConfig.parse({k: v for k, v in changes.items() if v is not None})
                if not body.validate_only:
                    store.alter_topic(resource.resource_name, config=changes)
            except ConfigError as exc:
                _fail(out, ErrorCode.INVALID_CONFIG, str(exc))
            except Exception as exc:
                _fail(out, partition_error(exc), str(exc))
        return _ALTER_CONFIGS(throttle_time_ms=0, responses=results)

    async def describe_log_dirs(self, header: RequestHeader, body: Any) -> Any:
        store = self.ctx.store
        wanted: dict[str, set[int] | None]
        if body.topics is None:
            wanted = dict.fromkeys(store.topic_names())
        else:
            wanted = {t.topic: set(t.partitions) for t in body.topics}
        topics = []
        for name, indexes in wanted.items():
            if not store.has_topic(name):
                continue
            topic = store.topic(name)
            partitions = [
                _LOG_DIRS.Results.Topics.Partitions(
                    partition_index=p.index,
                    partition_size=p.size_bytes,
                    offset_lag=0,
                    is_future_key=False,
                )
                for p in topic.partitions
                if indexes is None or p.index in indexes
            ]
            topics.append(_LOG_DIRS.Results.Topics(name=name, partitions=partitions))
        result = _LOG_DIRS.Results(
            error_code=0, log_dir=str(self.ctx.config.data_dir.resolve()), topics=topics
        )
        return _LOG_DIRS(throttle_time_ms=0, results=[result])


def _fail(out: Any, code: ErrorCode, message: str) -> None:
    out.error_code = code
    out.error_message = message


def _config_entry(name: str, value: str, source: int, *, read_only: bool) -> Any:
    return _DESCRIBE_CONFIGS.Results.Configs(
        name=name,
        value=value,
        read_only=read_only,
        config_source=source,
        is_sensitive=False,
        synonyms=[],
    )
