"""``/topics``: list, create, describe and delete topics.

Creating and deleting go through the broker's own CreateTopics and DeleteTopics handlers, so a
topic made over REST is checked exactly as one made by a Kafka client, and deleting one forgets
what the broker kept for it (producer sequences, groups' committed offsets).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web
from pydantic import TypeAdapter

from ...errors import MillstreamError
from ...log.names import is_internal, validate_topic_name
from ...protocol import ApiKey, ErrorCode, RequestHeader, request_class
from ..admin_apis import HIDDEN_TOPICS
from ..log_apis import partition_error
from .bodies import broker_of, json_response, read_json
from .errors import RestError, from_error_code
from .models import CreateTopic, PartitionDetail, TopicDetail, TopicList, TopicSummary

__all__ = ["routes", "topic_of"]

_CREATE: Any = request_class(ApiKey.CREATE_TOPICS)
_DELETE: Any = request_class(ApiKey.DELETE_TOPICS)
_CREATE_BODY = TypeAdapter(CreateTopic)


def topic_of(request: web.Request) -> Any:
    """The store's topic named by the path's ``{name}``; 400 for an illegal name, 404 for an
    unknown or internal one."""
    name = request.match_info["name"]
    store = broker_of(request).store
    try:
        validate_topic_name(name)
        if is_internal(name) or name in HIDDEN_TOPICS:
            raise RestError(
                404,
                ErrorCode.UNKNOWN_TOPIC_OR_PARTITION.name,
                f"topic {name!r} is the broker's own; it is not served over REST",
            )
        return store.topic(name)
    except MillstreamError as exc:
        raise from_error_code(partition_error(exc), str(exc)) from None


def _header(api_key: int, version: int) -> RequestHeader:
    return RequestHeader(api_key, version, 0, "rest")


async def list_topics(request: web.Request) -> web.Response:
    store = broker_of(request).store
    topics = []
    for name in store.topic_names():
        if is_internal(name) or name in HIDDEN_TOPICS:
            continue
        topic = store.topic(name)
        topics.append(
            TopicSummary(
                name=name, partitions=len(topic.partitions), configs=dict(topic.config.overrides)
            )
        )
    return json_response(TopicList(topics=topics))


async def create_topic(request: web.Request) -> web.Response:
    spec = await read_json(request, _CREATE_BODY)
    broker = broker_of(request)
    body = _CREATE(
        topics=[
            _CREATE.Topics(
                name=spec.name,
                num_partitions=spec.partitions,
                replication_factor=-1,
                assignments=[],
                configs=[_CREATE.Topics.Configs(name=k, value=v) for k, v in spec.configs.items()],
            )
        ],
        timeout_ms=60_000,
        validate_only=False,
    )
    response = await broker.handlers[ApiKey.CREATE_TOPICS](_header(ApiKey.CREATE_TOPICS, 4), body)
    result = response.topics[0]
    if result.error_code:
        raise from_error_code(result.error_code, result.error_message or "topic not created")
    return json_response(_detail(broker.store.topic(spec.name)), status=201)


async def describe_topic(request: web.Request) -> web.Response:
    return json_response(_detail(topic_of(request)))


async def delete_topic(request: web.Request) -> web.Response:
    topic = topic_of(request)
    broker = broker_of(request)
    body = _DELETE(topic_names=[topic.name], timeout_ms=60_000)
    response = await broker.handlers[ApiKey.DELETE_TOPICS](_header(ApiKey.DELETE_TOPICS, 3), body)
    code = response.responses[0].error_code
    if code:
        reason = ErrorCode.for_code(code).name
        raise from_error_code(code, f"topic {topic.name!r} was not deleted: {reason}")
    return web.Response(status=204)


def _detail(topic: Any) -> TopicDetail:
    return TopicDetail(
        name=topic.name,
        partitions=[
            PartitionDetail(
                partition=p.index,
                earliest_offset=p.log_start_offset,
                latest_offset=p.high_watermark,
                size_bytes=p.size_bytes,
            )
            for p in topic.partitions
        ],
        configs=topic.config.all(),
    )


def routes() -> list[web.RouteDef]:
    return [
        web.get("/topics", list_topics, allow_head=False),
        web.post("/topics", create_topic),
        web.get("/topics/{name}", describe_topic, allow_head=False),
        web.delete("/topics/{name}", delete_topic),
    ]
