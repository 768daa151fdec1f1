"""Records between the REST API's JSON and the log: :func:`to_record` encodes a posted record as
the topic's codec stores it, :func:`from_stored` shows a stored one.

On ``bytes`` topics keys and values are base64 text both ways (RFC 4648, with padding). On other
topics a posted key is stored as :func:`~millstream.core.event.key_bytes` stores pipeline keys
(a string as its UTF-8 bytes, a number as its decimal text, anything else as compact JSON) and
shown as text; a value is what the topic's codec holds (any JSON value for ``json``, a string
for ``text``). Header values are UTF-8 text; bytes that are not valid UTF-8 show as ``\\xNN``.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from ...codecs import Codec
from ...errors import CodecError, ConfigError
from ...event import key_bytes
from ...plugins import get_registry
from ...record import Record, StoredRecord
from .errors import RestError
from .models import ProduceRecord, RecordOut

__all__ = ["from_stored", "to_record", "topic_codec"]


def topic_codec(topic: Any) -> Codec:
    """The codec a topic's ``codec`` config names; 400 INVALID_CONFIG when it is not installed."""
    name = topic.config.codec
    try:
        return get_registry().codec(name)
    except ConfigError as exc:
        raise RestError(
            400, "INVALID_CONFIG", f"topic {topic.name!r} names codec {name!r}: {exc}"
        ) from None


def _base64(value: Any, field: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise RestError(
            400,
            "INVALID_RECORD",
            f"{field}: a bytes topic takes base64 text, not {_json_type(value)}",
        )
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise RestError(400, "INVALID_RECORD", f"{field}: {value[:40]!r} is not base64") from None


def _json_type(value: Any) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", str: "a string"}.get(
        type(value), "a number"
    )


def to_record(record: ProduceRecord, i: int, codec: Codec) -> Record:
    """The record as the log stores it; RestError naming the field when it cannot be."""
    where = f"body[{i}]"
    if codec.name == "bytes":
        key = _base64(record.key, f"{where}.key")
        value = _base64(record.value, f"{where}.value")
    else:
        key = key_bytes(record.key)
        if record.value is None:
            value = None
        elif codec.name == "text" and not isinstance(record.value, str):
            raise RestError(
                400,
                "INVALID_RECORD",
                f"{where}.value: a text topic takes a string, not {_json_type(record.value)}",
            )
        else:
            try:
                value = codec.encode(record.value)
            except CodecError as exc:
                raise RestError(400, "INVALID_RECORD", f"{where}.value: {exc}") from None
    headers = tuple((name, text.encode()) for name, text in record.headers.items())
    return Record(key, value, headers)


def _text(data: bytes) -> str:
    return data.decode("utf-8", errors="backslashreplace")


def from_stored(record: StoredRecord, codec: Codec) -> RecordOut:
    """A stored record as the API shows it: the value decoded by ``codec`` (its text and the
    reason when it cannot be), base64 on bytes topics, keys and header values as text."""
    headers = {name: _text(value) if value else "" for name, value in record.headers}
    if codec.name == "bytes":
        return RecordOut(
            offset=record.offset,
            timestamp=record.timestamp,
            key=None if record.key is None else base64.b64encode(record.key).decode(),
            value=None if record.value is None else base64.b64encode(record.value).decode(),
            headers=headers,
            decode_error=None,
        )
    value: Any = None
    error = None
    if record.value is not None:
        try:
            value = codec.decode(record.value)
        except CodecError as exc:
            value, error = _text(record.value), str(exc)
        else:
            if codec.name not in ("json", "text"):  # a plugin's codec: its values as JSON
                value = orjson.loads(orjson.dumps(value, default=str))
    return RecordOut(
        offset=record.offset,
        timestamp=record.timestamp,
        key=None if record.key is None else _text(record.key),
        value=value,
        headers=headers,
        decode_error=error,
    )
