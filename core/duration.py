"""Durations as pipeline files and connector settings write them: ``200ms``, ``10s``, ``30m``,
``12h``, ``7d``, ``1w``.

Parts may be combined (``1h30m``) and numbers may have a fraction (``1.5s``). A bare number is
refused: ``10`` could mean seconds or milliseconds, and a file should not leave that open.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Any

from pydantic import BeforeValidator, PlainSerializer, WithJsonSchema

__all__ = ["DURATION_PATTERN", "Duration", "RetentionMs", "format_duration", "parse_duration"]

_UNITS_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
DURATION_PATTERN = r"^(\d+(\.\d+)?(ms|s|m|h|d|w))+$"
"""The JSON Schema pattern of a duration string."""
_EXAMPLES = "7d, 12h, 30m, 10s, 200ms or 1h30m"


def parse_duration(text: str) -> timedelta:
    """``"1h30m"`` → ``timedelta(hours=1, minutes=30)``; ValueError, saying what is valid,
    for anything else (a bare number, an unknown unit, a negative duration)."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as {_EXAMPLES}, got {text!r}")
    compact = text.strip()
    if not compact:
        raise ValueError(f"expected a duration such as {_EXAMPLES}, got an empty string")
    ms = 0.0
    position = 0
    for match in _PART.finditer(compact):
        if match.start() != position:
            break
        ms += float(match.group(1)) * _UNITS_MS[match.group(2)]
        position = match.end()
    if position != len(compact):
        hint = " (give a unit)" if _is_number(compact) else ""
        raise ValueError(f"{text!r} is not a duration{hint}; use one such as {_EXAMPLES}")
    return timedelta(milliseconds=round(ms))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _duration(value: Any) -> timedelta:
    if isinstance(value, timedelta):
        return value
    if isinstance(value, bool) or not isinstance(value, str):
        if isinstance(value, int | float):
            raise ValueError(f"{value} has no unit; write a duration such as {_EXAMPLES}")
        raise ValueError(f"expected a duration such as {_EXAMPLES}")
    return parse_duration(value)


def _retention_ms(value: Any) -> int:
    if value == "forever" or (
        isinstance(value, int) and not isinstance(value, bool) and value == -1
    ):
        return -1
    if value == "-1":
        return -1
    try:
        return int(_duration(value) / timedelta(milliseconds=1))
    except ValueError as exc:
        raise ValueError(f"{exc}, or forever (also -1)") from None


def format_duration(value: timedelta) -> str:
    """A duration in this notation, the largest unit that divides it: ``timedelta(hours=2)``
    → ``2h``, 1.5 s → ``1500ms``."""
    ms = round(value / timedelta(milliseconds=1))
    for unit in ("d", "h", "m", "s"):
        size = _UNITS_MS[unit]
        if ms and ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN, "examples": ["10s", "200ms"]}),
]
"""A pydantic field type for durations in this notation (steps use it for windows)."""

RetentionMs = Annotated[
    int,
    BeforeValidator(_retention_ms),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "pattern": DURATION_PATTERN},
                {"const": "forever"},
                {"const": -1},
            ],
            "examples": ["7d", "forever"],
        }
    ),
]
"""A retention: a duration or ``forever`` (also ``-1``), as milliseconds (-1 for forever)."""
