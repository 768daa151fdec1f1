"""The payload formats of the ``mqtt`` source and sink: json, text or bytes."""

from __future__ import annotations

from millstream.core.codecs import BytesCodec, Codec, JsonCodec, TextCodec

__all__ = ["FORMATS"]

FORMATS: dict[str, Codec] = {"json": JsonCodec(), "text": TextCodec(), "bytes": BytesCodec()}
"""The codec of each ``format`` setting: how payloads are read (source) and written (sink)."""
