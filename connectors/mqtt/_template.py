"""Topic templates of the ``mqtt`` sink: ``sensors/{value.device_id}/temp``.

A placeholder in braces is replaced, for each event, by a part of the event:

- ``{topic}``: the log topic it was read from; ``{partition}``: its partition;
- ``{key}``: its key, as UTF-8 text;
- ``{value}``: its value (a string or number), ``{value.a.b}``: a field of it (an index of a
  list is a number: ``{value.readings.0}``, ``-1`` the last), found as
  :func:`millstream.connectors._paths.lookup` finds it, as the http connectors do.

``{{`` and ``}}`` stand for literal braces. A placeholder's text is a string as it is, a number
in decimal, a boolean as ``true``/``false``; a missing field, a null, an object or list, or text
holding ``+``, ``#`` or NUL (which a topic name may not hold) is an error for that event.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from millstream.core import Event

from .._paths import MISSING, lookup

__all__ = ["TopicTemplate"]

_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
_NAMES = "topic, partition, key, value or value.FIELD"


class TopicTemplate:
    """A compiled topic template; :meth:`render` gives an event's topic or raises ValueError."""

    __slots__ = ("_parts", "constant", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        parts: list[str | Callable[[Event], str]] = []
        literal: list[str] = []
        position = 0
        for match in _PLACEHOLDER.finditer(text):
            literal.append(text[position : match.start()])
            position = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                literal.append(token[0])
                continue
            if match.group(1) is None:
                raise ValueError(
                    f"topic template {text!r}: an unmatched {token!r} at {match.start() + 1} "
                    "(write {{ or }} for a literal brace)"
                )
            if literal:
                parts.append("".join(literal))
                literal = []
            parts.append(_placeholder(text, match.group(1).strip()))
        literal.append(text[position:])
        if "".join(literal):
            parts.append("".join(literal))
        for part in parts:
            if isinstance(part, str) and ("+" in part or "#" in part or "\0" in part):
                raise ValueError(
                    f"topic template {text!r}: a topic to publish to cannot hold +, # or NUL"
                )
        if not parts:
            raise ValueError("the topic cannot be empty")
        self._parts = parts
        self.constant: str | None = (
            parts[0] if len(parts) == 1 and isinstance(parts[0], str) else None
        )

    def render(self, event: Event) -> str:
        """The topic of ``event``; ValueError, naming the placeholder, when it has none."""
        if self.constant is not None:
            return self.constant
        topic = "".join(part if isinstance(part, str) else part(event) for part in self._parts)
        if not topic:
            raise ValueError(f"topic template {self.text!r} gave an empty topic")
        return topic


def _placeholder(template: str, name: str) -> Callable[[Event], str]:
    if name == "topic":
        return lambda event: _text(name, event.topic)
    if name == "partition":
        return lambda event: _text(name, event.partition)
    if name == "key":
        return lambda event: _text(name, event.key)
    path = name.split(".")
    if path[0] != "value" or any(not step for step in path):
        raise ValueError(
            f"topic template {template!r}: unknown placeholder {{{name}}}; use {_NAMES}"
        )
    inside = ".".join(path[1:])

    def field(event: Event) -> str:
        value = lookup(event.value, inside)
        if value is MISSING:
            raise ValueError(f"topic template {template!r}: the event has no {name}")
        return _text(name, value)

    return field


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, int | float):
        text = str(value)
    elif isinstance(value, bytes):
        try:
            text = value.decode()
        except UnicodeDecodeError:
            raise ValueError(f"{{{name}}} is not UTF-8 text") from None
    elif value is None:
        raise ValueError(f"{{{name}}} is null")
    else:
        raise ValueError(f"{{{name}}} is a {type(value).__name__}, not a string or number")
    if "+" in text or "#" in text or "\0" in text:
        raise ValueError(f"{{{name}}} is {text!r}; a topic to publish to cannot hold +, # or NUL")
    return text
