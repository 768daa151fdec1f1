"""Reading requests and writing answers: JSON bodies checked against the models, query strings,
path parameters, and the broker an application serves."""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

import orjson
from aiohttp import web
from pydantic import BaseModel, TypeAdapter, ValidationError

from ..server import Broker
from .errors import RestError, from_validation

__all__ = [
    "BROKER",
    "MAX_BODY",
    "STOPPING",
    "broker_of",
    "json_response",
    "partition_param",
    "read_json",
    "read_query",
]

BROKER = web.AppKey("broker", Broker)
"""Where the application keeps the broker it serves."""

MAX_BODY = web.AppKey("max_body", int)
"""The largest request body accepted, in bytes."""

STOPPING = web.AppKey("stopping", asyncio.Event)
"""Set when the server stops: long-polling reads answer at once with what they have."""

_T = TypeVar("_T")
_M = TypeVar("_M", bound=BaseModel)


def broker_of(request: web.Request) -> Broker:
    return request.app[BROKER]


async def read_json(request: web.Request, adapter: TypeAdapter[_T]) -> _T:
    """The request's JSON body checked by ``adapter``; RestError 415 for another content type,
    400 for a body that is not JSON or not valid (naming the field), 413 when too large."""
    if request.content_type != "application/json":
        shown = request.content_type or "none"
        raise RestError(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            f"the body must be JSON (Content-Type: application/json), not {shown}",
        )
    limit = request.app[MAX_BODY]
    if request.content_length is not None and request.content_length > limit:
        raise RestError(
            413,
            "REQUEST_TOO_LARGE",
            f"the body of {request.content_length} bytes is larger than the limit of {limit} bytes",
        )
    raw = await request.read()
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise RestError(400, "INVALID_REQUEST", f"the body is not valid JSON: {exc}") from None
    try:
        return adapter.validate_python(data)
    except ValidationError as exc:
        raise from_validation(exc, "body") from None


def read_query(request: web.Request, model: type[_M]) -> _M:
    """The query string checked by ``model``; RestError 400 naming the bad parameter."""
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise from_validation(exc, "query") from None


def partition_param(request: web.Request) -> int:
    """The ``{partition}`` of the path; 400 when it is not a whole number."""
    text = request.match_info["partition"]
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0 or not text.isdigit():
        raise RestError(
            400, "INVALID_REQUEST", f"partition {text!r} is not valid; give a whole number >= 0"
        )
    return value


def json_response(model: BaseModel | Any, status: int = 200) -> web.Response:
    """``model`` (a response model, or plain JSON data) as a JSON response."""
    data = model.model_dump(mode="json") if isinstance(model, BaseModel) else model
    return web.Response(
        status=status,
        body=orjson.dumps(data, default=str, option=orjson.OPT_NON_STR_KEYS),
        content_type="application/json",
    )
