"""Codecs: how a topic's values are turned into bytes and back.

Each topic names its codec in its config (``codec``, ``json`` by default). The log stores bytes
and never looks inside; pipelines decode with the topic's codec when they read and encode once
when they write. Built in: ``json`` (orjson), ``text`` (UTF-8) and ``bytes`` (as they are).
Plugins add more through the ``register_codecs`` hook.

A codec is stateless and cheap to call; ``decode_many`` and ``encode_many`` exist so a codec can
work a batch at a time. Bad input raises :class:`CodecError` with a one-line reason.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any, ClassVar

import orjson

from .errors import CodecError
from .hookspecs import hookimpl

__all__ = ["BUILTIN_CODECS", "BytesCodec", "Codec", "JsonCodec", "TextCodec"]


class Codec(abc.ABC):
    """Turns values into bytes and back. ``name`` is what a topic's ``codec`` config says."""

    name: ClassVar[str]

    @abc.abstractmethod
    def decode(self, data: bytes) -> Any:
        """The value held by ``data``; raises CodecError when ``data`` is not valid."""

    @abc.abstractmethod
    def encode(self, value: Any) -> bytes:
        """The bytes of ``value``; raises CodecError when the codec cannot hold it.

        ``bytes`` are taken to be encoded already and are returned as they are."""

    def decode_many(self, items: Sequence[bytes]) -> list[Any]:
        """``decode`` of each item; raises CodecError for the first that fails."""
        return [self.decode(data) for data in items]

    def encode_many(self, values: Sequence[Any]) -> list[bytes]:
        """``encode`` of each value; raises CodecError for the first that fails."""
        return [self.encode(value) for value in values]


class JsonCodec(Codec):
    """JSON, one document per record (orjson: UTF-8, compact, non-str keys refused)."""

    name = "json"

    def decode(self, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise CodecError(f"not valid JSON: {exc}") from None

    def encode(self, value: Any) -> bytes:
        if type(value) is bytes:
            return value
        try:
            return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS)
        except TypeError as exc:
            raise CodecError(f"cannot be written as JSON: {exc}") from None

    def decode_many(self, items: Sequence[bytes]) -> list[Any]:
        loads = orjson.loads
        try:
            return [loads(data) for data in items]
        except (orjson.JSONDecodeError, TypeError):
            return [self.decode(data) for data in items]  # raises for the first bad one

    def encode_many(self, values: Sequence[Any]) -> list[bytes]:
        dumps, option = orjson.dumps, orjson.OPT_NON_STR_KEYS
        try:
            return [dumps(value, option=option) for value in values]
        except TypeError:
            return [self.encode(value) for value in values]  # bytes pass; raises for bad ones


class TextCodec(Codec):
    """UTF-8 text; a value that is not a string is written as its ``str()``."""

    name = "text"

    def decode(self, data: bytes) -> Any:
        try:
            return data.decode()
        except UnicodeDecodeError as exc:
            raise CodecError(f"not valid UTF-8 text: {exc}") from None

    def encode(self, value: Any) -> bytes:
        if type(value) is bytes:
            return value
        return (value if isinstance(value, str) else str(value)).encode()


class BytesCodec(Codec):
    """Bytes as they are: the value is the record's bytes."""

    name = "bytes"

    def decode(self, data: bytes) -> Any:
        return data

    def encode(self, value: Any) -> bytes:
        if isinstance(value, bytes | bytearray | memoryview):
            return bytes(value)
        if isinstance(value, str):
            return value.encode()
        raise CodecError(f"the bytes codec holds only bytes or text, not {type(value).__name__}")


BUILTIN_CODECS: tuple[type[Codec], ...] = (JsonCodec, TextCodec, BytesCodec)
"""The codecs every installation has."""


@hookimpl
def register_codecs() -> tuple[type[Codec], ...]:
    return BUILTIN_CODECS
