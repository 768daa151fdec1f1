"""Webhook bodies: one JSON object, a JSON array of values, or NDJSON, made into event values.

:func:`split_body` turns a request body into the encoded JSON of each event (``bytes``, as the
runtime wants from a source that holds data already encoded), or raises :class:`BodyError`
with the one-line reason the sender gets in a 400 answer. Nothing of a refused body is kept.
"""

from __future__ import annotations

from typing import Literal

import orjson

__all__ = ["NDJSON_TYPES", "BodyError", "BodyFormat", "split_body"]

BodyFormat = Literal["auto", "json", "ndjson"]

NDJSON_TYPES = frozenset(
    {
        "application/x-ndjson",
        "application/ndjson",
        "application/jsonl",
        "application/x-jsonlines",
        "application/jsonlines",
        "application/json-seq",
    }
)
"""Content types that announce newline-delimited JSON."""

_BLANK = b" \t\r\n"


class BodyError(ValueError):
    """A body that is not one JSON object, a JSON array or NDJSON; the message says why."""


def split_body(body: bytes, fmt: BodyFormat = "auto", content_type: str = "") -> list[bytes]:
    """The events of ``body``, each the encoded JSON of one value.

    ``fmt`` ``json`` takes one JSON document (an object is one event, an array one event per
    element); ``ndjson`` one JSON value per non-blank line; ``auto`` follows the content
    type when it names NDJSON and otherwise looks at the body: one JSON document if it parses
    as one, NDJSON if it has several lines.
    """
    if fmt == "ndjson" or (fmt == "auto" and content_type in NDJSON_TYPES):
        return _lines(body)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if fmt == "auto" and b"\n" in body.strip(_BLANK):
            return _lines(body)
        if not body.strip(_BLANK):
            raise BodyError(
                "the body is empty; send a JSON object, a JSON array or NDJSON"
            ) from None
        raise BodyError(f"the body is not JSON: {exc}") from None
    if isinstance(document, dict):
        return [body.strip(_BLANK)]
    if isinstance(document, list):
        dumps = orjson.dumps
        return [dumps(item) for item in document]
    raise BodyError(
        f"the body is a JSON {type(document).__name__}, not an object or an array; "
        "send a JSON object, a JSON array or NDJSON"
    )


def _lines(body: bytes) -> list[bytes]:
    """One event per non-blank line; the first line that is not JSON refuses the body."""
    if b"\r" in body:
        body = body.replace(b"\r\n", b"\n")
    lines = body.split(b"\n")
    if not lines[-1]:
        lines.pop()  # the end of the last line
    loads = orjson.loads
    try:
        for line in lines:
            loads(line)
    except orjson.JSONDecodeError:
        return _lines_checked(lines)  # blank lines to leave out, or a line that is not JSON
    if not lines:
        raise BodyError("the body holds no JSON lines; send a JSON object, a JSON array or NDJSON")
    return lines


def _lines_checked(lines: list[bytes]) -> list[bytes]:
    values: list[bytes] = []
    for number, line in enumerate(lines, 1):
        try:
            orjson.loads(line)
        except orjson.JSONDecodeError as exc:
            if not line.strip(_BLANK):
                continue
            raise BodyError(f"line {number} is not JSON: {exc}") from None
        values.append(line)
    if not values:
        raise BodyError("the body holds no JSON lines; send a JSON object, a JSON array or NDJSON")
    return values
