"""URL templates: ``https://hooks.example/{topic}/{value.device_id}?k={key}``.

Placeholders: ``{topic}``, ``{partition}``, ``{offset}``, ``{key}`` (the key as UTF-8 text)
and ``{value.<dotted path>}`` (a field of the event's decoded value). Each replacement is
percent-encoded, so a ``/`` in a value stays inside its path segment.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

import orjson

from millstream.core import Event

from .._paths import MISSING, check_path, lookup

__all__ = ["TemplateError", "UrlTemplate"]

_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_FIELDS = ("topic", "partition", "offset", "key")


class TemplateError(ValueError):
    """An event the template cannot be filled from (a missing field, no key)."""


class UrlTemplate:
    """A URL with placeholders, checked when built (ValueError naming the bad placeholder)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self._parts: list[str] = []  # literal, placeholder, literal, placeholder, ..., literal
        at = 0
        for match in _PLACEHOLDER.finditer(text):
            name = match.group(1).strip()
            if name not in _FIELDS and not name.startswith("value."):
                raise ValueError(
                    f"unknown placeholder {{{name}}} in the URL; use {{topic}}, {{partition}}, "
                    "{offset}, {key} or {value.<field>}"
                )
            if name.startswith("value."):
                check_path(name[len("value.") :])
            self._parts += [text[at : match.start()], name]
            at = match.end()
        self._parts.append(text[at:])
        if "{" in self._parts[-1] or "}" in self._parts[-1]:
            raise ValueError(f"an unclosed brace in the URL {text!r}")

    @property
    def fixed(self) -> bool:
        """True when the URL has no placeholders (every event goes to the same URL)."""
        return len(self._parts) == 1

    def render(self, event: Event) -> str:
        """The URL for ``event``; TemplateError when a placeholder has nothing to take."""
        parts = self._parts
        if len(parts) == 1:
            return parts[0]
        out = [parts[0]]
        for i in range(1, len(parts), 2):
            out.append(quote(_text(_fill(parts[i], event)), safe=""))
            out.append(parts[i + 1])
        return "".join(out)


def _fill(name: str, event: Event) -> Any:
    if name == "topic":
        found: Any = event.topic
    elif name == "partition":
        found = event.partition
    elif name == "offset":
        found = event.offset
    elif name == "key":
        if event.key is None:
            raise TemplateError("the URL needs {key} and the event has no key")
        return event.key.decode("utf-8", "replace")
    else:
        found = lookup(event.value, name[len("value.") :])
        if found is MISSING or found is None:
            raise TemplateError(f"the URL needs {{{name}}} and the event's value has none")
        return found
    if found is None:
        raise TemplateError(f"the URL needs {{{name}}} and the event has none")
    return found


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
