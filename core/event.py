"""Events: what pipelines and connectors pass around.

An :class:`Event` is a record whose value has been decoded with its topic's codec (a dict for
JSON, a str for text…). Sources make events; routes and steps change them; sinks receive them.
The runtime encodes an event's value once, at the edge, with the codec of the topic it is
written to.

A source that holds data already encoded (a line of a file, an MQTT payload) gives it as
``bytes``: the runtime then decodes it with the target topic's codec, so bad input is caught
at the door and goes to the dead-letter topic, and stores it as it came. Any other value is a
decoded value and is encoded with that codec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .record import Header

__all__ = ["Event", "key_bytes"]


@dataclass(slots=True)
class Event:
    """One event.

    ``value`` is the decoded value; ``key`` the record key as stored (see :func:`key_bytes`);
    ``timestamp`` milliseconds since the epoch (0: "now", as the log stamps it). ``topic``,
    ``partition`` and ``offset`` say where the event was read from, and are None for an event
    that a source has just made.
    """

    value: Any
    key: bytes | None = None
    headers: tuple[Header, ...] = ()
    timestamp: int = 0
    topic: str | None = None
    partition: int | None = None
    offset: int | None = field(default=None)

    def header(self, name: str) -> bytes | None:
        """The value of the last header called ``name``, or None."""
        for hname, hvalue in reversed(self.headers):
            if hname == name:
                return hvalue
        return None


def key_bytes(key: Any) -> bytes | None:
    """A key as the log stores it: None stays None, bytes stay as they are, a string becomes its
    UTF-8 bytes (no quotes), a number its decimal text, anything else its compact JSON.

    So ``key: value.customer`` puts ``c1`` where Kafka's clients would put the key ``c1``.
    """
    if key is None or type(key) is bytes:
        return key
    if isinstance(key, str):
        return key.encode()
    if isinstance(key, bool):
        return b"true" if key else b"false"
    if isinstance(key, int | float):
        return str(key).encode()
    if isinstance(key, bytearray | memoryview):
        return bytes(key)
    import orjson

    return orjson.dumps(key, option=orjson.OPT_SORT_KEYS)
