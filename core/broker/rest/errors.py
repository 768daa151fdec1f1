"""The REST API's errors: :class:`RestError`, answered as ``{"error": CODE, "message": ...}``.

``error`` is a Kafka error code name where the broker has one (``UNKNOWN_TOPIC_OR_PARTITION``,
``TOPIC_ALREADY_EXISTS``, ``INVALID_CONFIG``...), else an HTTP reason in the same style
(``INVALID_REQUEST``, ``NOT_FOUND``, ``METHOD_NOT_ALLOWED``, ``REQUEST_TOO_LARGE``,
``UNSUPPORTED_MEDIA_TYPE``). ``message`` is one line naming the thing and what would be valid.
"""

from __future__ import annotations

import orjson
from aiohttp import web
from pydantic import ValidationError

from ...protocol import ErrorCode

__all__ = ["RestError", "error_response", "from_error_code", "from_validation"]

_STATUS_OF_CODE: dict[ErrorCode, int] = {
    ErrorCode.UNKNOWN_TOPIC_OR_PARTITION: 404,
    ErrorCode.GROUP_ID_NOT_FOUND: 404,
    ErrorCode.TOPIC_ALREADY_EXISTS: 409,
    ErrorCode.NON_EMPTY_GROUP: 409,
    ErrorCode.MESSAGE_TOO_LARGE: 413,
    ErrorCode.RECORD_LIST_TOO_LARGE: 413,
    ErrorCode.REQUEST_TIMED_OUT: 504,
    ErrorCode.KAFKA_STORAGE_ERROR: 503,
    ErrorCode.UNKNOWN_SERVER_ERROR: 500,
}


class RestError(Exception):
    """An answer other than success: HTTP ``status``, error ``code`` and a one-line message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_response(status: int, code: str, message: str) -> web.Response:
    """The JSON error body with ``status``."""
    return web.Response(
        status=status,
        body=orjson.dumps({"error": code, "message": message}),
        content_type="application/json",
    )


def from_error_code(code: int, message: str) -> RestError:
    """A Kafka error code, as the broker's handlers answer it, as a RestError: unknown topics
    and groups are 404, existing topics 409, anything else about the request 400."""
    error = ErrorCode.for_code(code)
    return RestError(_STATUS_OF_CODE.get(error, 400), error.name, message)


def from_validation(exc: ValidationError, where: str) -> RestError:
    """A pydantic validation error as a 400 naming the first bad field of ``where`` (``body``,
    ``query``) and what would be valid."""
    first = exc.errors()[0]
    path = where
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    text = first["msg"]
    if first["type"] == "missing":
        text = "is required"
    elif first["type"] == "extra_forbidden":
        text = "is not a known field"
    else:
        text = text[0].lower() + text[1:]
    return RestError(400, "INVALID_REQUEST", f"{path}: {text}")
