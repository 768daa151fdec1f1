"""The ``stdout`` sink: one line per event on standard output.

``format: value`` (the default) writes each event's value in its topic's codec, as the log
holds it: compact JSON on one line for a JSON topic, the text for a text topic. ``format:
envelope`` writes one JSON object per event with its ``topic``, ``partition``, ``offset``,
``timestamp``, ``key``, ``headers`` and ``value``, the shape ``millstream consume --format
json`` prints (a key, header or bytes value that is not UTF-8 is given in base64, with a
``key_encoding``/``value_encoding`` of ``base64`` beside it).

Lines are gathered in memory and written by a worker thread, so a slow reader at the other end
of a pipe never blocks the event loop; :meth:`StdoutSink.flush` writes them and flushes
``sys.stdout``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import sys
from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field

from millstream.core import Codec, ConnectorConfig, ConnectorContext, Event, Sink

__all__ = ["StdoutConfig", "StdoutSink"]

_WRITE_AT = 256 * 1024
"""Gathered bytes that are written out without waiting for a flush."""
_OPTIONS = orjson.OPT_NON_STR_KEYS


class StdoutConfig(ConnectorConfig):
    format: Literal["value", "envelope"] = Field(
        "value",
        description="value: each value in its topic's codec, one per line; envelope: one JSON "
        "object per event with topic, partition, offset, timestamp, key, headers and value",
    )


class StdoutSink(Sink):
    """Events on standard output, one line each."""

    name = "stdout"
    Config: ClassVar[type[ConnectorConfig]] = StdoutConfig

    def __init__(self, config: StdoutConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: StdoutConfig = config
        self._gathered = bytearray()

    async def write(self, events: Sequence[Event]) -> None:
        if self.config.format == "envelope":
            for event in events:
                self._gathered += orjson.dumps(_envelope(event), default=str, option=_OPTIONS)
                self._gathered += b"\n"
        else:
            codecs: dict[str | None, Codec] = {}
            for event in events:
                codec = codecs.get(event.topic)
                if codec is None:
                    codec = codecs[event.topic] = self.context.codec(event.topic)
                self._gathered += codec.encode(event.value)
                self._gathered += b"\n"
        if len(self._gathered) >= _WRITE_AT:
            await self._write_out(flush=False)

    async def flush(self) -> None:
        await self._write_out(flush=True)

    async def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            await self._write_out(flush=True)

    async def _write_out(self, *, flush: bool) -> None:
        data, self._gathered = bytes(self._gathered), bytearray()
        if data or flush:
            await asyncio.to_thread(_write_stdout, data, flush)


def _write_stdout(data: bytes, flush: bool) -> None:
    """Write ``data`` to stdout's bytes, after whatever its text layer holds."""
    stream = sys.stdout
    if stream is None:
        return
    binary = getattr(stream, "buffer", None)
    if binary is None:
        stream.write(data.decode(errors="replace"))
    else:
        stream.flush()
        binary.write(data)
    if flush:
        (binary or stream).flush()


def _envelope(event: Event) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "topic": event.topic,
        "partition": event.partition,
        "offset": event.offset,
        "timestamp": event.timestamp,
        "key": None,
        "value": event.value,
        "headers": [],
    }
    if event.key is not None:
        _put_bytes(obj, "key", event.key)
    if isinstance(event.value, bytes | bytearray | memoryview):
        _put_bytes(obj, "value", bytes(event.value))
    for name, value in event.headers:
        header: dict[str, Any] = {"key": name}
        _put_bytes(header, "value", value)
        obj["headers"].append(header)
    return obj


def _put_bytes(obj: dict[str, Any], field: str, data: bytes | None) -> None:
    if data is None:
        obj[field] = None
        return
    try:
        obj[field] = data.decode()
    except UnicodeDecodeError:
        obj[field] = base64.b64encode(data).decode("ascii")
        obj[f"{field}_encoding"] = "base64"
