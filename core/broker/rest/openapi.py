"""The OpenAPI 3.1 document of the REST API (``GET /openapi.json``).

Every request and response schema is generated from the pydantic models of :mod:`.models` (the
ones requests are validated with and responses are built from), and every operation is listed
once in :data:`OPERATIONS`, so the document cannot drift from what the server does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from pydantic import BaseModel, TypeAdapter

from . import models as m

__all__ = ["OPERATIONS", "Operation", "openapi_document"]

_REF = "#/components/schemas/{model}"


@dataclass(frozen=True)
class Operation:
    """One endpoint: method, path, what it does, its inputs and its answers."""

    method: str
    path: str
    summary: str
    ok: tuple[int, type[BaseModel] | str | None]
    """The success status and its body: a model, ``"text"`` (Prometheus text) or None."""
    errors: tuple[int, ...] = ()
    body: type[BaseModel] | str | None = None
    """The request body's model, or ``"records"`` for the array of records."""
    query: type[BaseModel] | None = None
    path_params: tuple[str, ...] = field(default=())


_TOPIC = "name"
_PARTITION = "partition"
_GROUP = "group_id"

OPERATIONS: tuple[Operation, ...] = (
    Operation("get", "/healthz", "Whether the broker serves", (200, m.Health), (503,)),
    Operation("get", "/metrics", "Prometheus metrics (text format 0.0.4)", (200, "text")),
    Operation("get", "/topics", "List the topics", (200, m.TopicList)),
    Operation(
        "post",
        "/topics",
        "Create a topic",
        (201, m.TopicDetail),
        (400, 409, 413, 415),
        body=m.CreateTopic,
    ),
    Operation(
        "get",
        "/topics/{name}",
        "Describe a topic: partitions with offsets and sizes, every config",
        (200, m.TopicDetail),
        (400, 404),
        path_params=(_TOPIC,),
    ),
    Operation(
        "delete",
        "/topics/{name}",
        "Delete a topic and its data",
        (204, None),
        (400, 404),
        path_params=(_TOPIC,),
    ),
    Operation(
        "post",
        "/topics/{name}/records",
        "Append records; answers once they are durable (acks=all)",
        (200, m.ProduceResponse),
        (400, 404, 413, 415),
        body="records",
        path_params=(_TOPIC,),
    ),
    Operation(
        "get",
        "/topics/{name}/partitions/{partition}/records",
        "Read records from an offset, long-polling up to timeout_ms when there are none yet",
        (200, m.RecordsPage),
        (400, 404),
        query=m.RecordsQuery,
        path_params=(_TOPIC, _PARTITION),
    ),
    Operation("get", "/groups", "List the consumer groups", (200, m.GroupList)),
    Operation(
        "get",
        "/groups/{group_id}",
        "Describe a group: members, committed offsets and lag",
        (200, m.GroupDetail),
        (404,),
        path_params=(_GROUP,),
    ),
    Operation(
        "post",
        "/query",
        "Run one read-only SQL query over the topics",
        (200, m.QueryResponse),
        (400, 413, 415, 501),
        body=m.QueryRequest,
    ),
)
"""Every endpoint of the REST API."""

_PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    _TOPIC: {"type": "string", "pattern": m.TOPIC_NAME_PATTERN},
    _PARTITION: {"type": "integer", "minimum": 0, "maximum": 2**31 - 1},
    _GROUP: {"type": "string", "minLength": 1},
}

_ERROR_TEXT = {
    400: "The request is not valid: the message names the field and what is valid",
    404: "Unknown topic, partition, group or route",
    405: "The method is not allowed on this path",
    409: "The topic already exists",
    413: "The body is larger than the limit",
    415: "The body is not application/json",
    501: "The query extra is not installed",
    503: "The broker is not serving",
}


def _schemas() -> tuple[dict[str, Any], dict[str, Any]]:
    """The components' schemas, and the array-of-records body schema."""
    models: set[type[BaseModel]] = {m.ErrorBody}
    for op in OPERATIONS:
        for item in (op.ok[1], op.body):
            if isinstance(item, type):
                models.add(item)
    defs: dict[str, Any] = {}
    for model in sorted(models, key=lambda c: c.__name__):
        schema = model.model_json_schema(ref_template=_REF)
        defs.update(schema.pop("$defs", {}))
        defs[model.__name__] = schema
    records = TypeAdapter(m.ProduceRequest).json_schema(ref_template=_REF)
    defs.update(records.pop("$defs", {}))
    return defs, records


def _ref(model: type[BaseModel]) -> dict[str, Any]:
    return {"$ref": _REF.format(model=model.__name__)}


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query parameter's schema without the null of an optional field."""
    options = schema.get("anyOf")
    if options:
        rest = [o for o in options if o.get("type") != "null"]
        if len(rest) == 1:
            merged = {k: v for k, v in schema.items() if k != "anyOf"}
            merged.update(rest[0])
            schema = merged
    schema = dict(schema)
    schema.pop("default", None)
    schema.pop("title", None)
    return schema


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(op: Operation, records: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "summary": op.summary,
        "operationId": op.method + re.sub(r"[^a-z0-9]+", "_", op.path).rstrip("_"),
    }
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMAS[name]}
        for name in op.path_params
    ]
    if op.query is not None:
        schema = op.query.model_json_schema()
        for name, prop in schema["properties"].items():
            parameters.append(
                {
                    "name": name,
                    "in": "query",
                    "required": name in schema.get("required", ()),
                    "description": prop.get("description", ""),
                    "schema": _not_null(prop),
                }
            )
    if parameters:
        out["parameters"] = parameters
    if op.body == "records":
        out["requestBody"] = {"required": True, "content": _json(records)}
    elif isinstance(op.body, type):
        out["requestBody"] = {"required": True, "content": _json(_ref(op.body))}
    status, body = op.ok
    ok: dict[str, Any] = {"description": "Success"}
    if body == "text":
        ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif isinstance(body, type):
        ok["content"] = _json(_ref(body))
    responses: dict[str, Any] = {str(status): ok}
    for code in op.errors:
        responses[str(code)] = {
            "description": _ERROR_TEXT[code],
            "content": _json(_ref(m.ErrorBody)),
        }
    responses["default"] = {
        "description": "Any other error (405 for another method, 500 for a broker fault)",
        "content": _json(_ref(m.ErrorBody)),
    }
    out["responses"] = responses
    return out


def _version() -> str:
    try:
        return version("millstream")
    except PackageNotFoundError:
        return "0"


def openapi_document() -> dict[str, Any]:
    """The whole OpenAPI 3.1 document."""
    defs, records = _schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in OPERATIONS:
        paths.setdefault(op.path, {})[op.method] = _operation(op, records)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "millstream broker REST API",
            "version": _version(),
            "description": "Topics, records, consumer groups, metrics and SQL queries of one "
            "millstream broker. Errors are JSON {error, message}. See docs/rest.md.",
        },
        "paths": paths,
        "components": {"schemas": defs},
    }
