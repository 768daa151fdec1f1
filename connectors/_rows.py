"""Events as table rows and table rows as events, for the database connectors (no SQL here).

- :func:`row_of` makes the row an event is written as: its value when that is a mapping of
  column names, else ``{"value": value}``.
- :func:`event_value` makes a database value something every codec can encode (a JSON value):
  dates and times become ISO 8601 text, decimals numbers, blobs base64 text, UUIDs text.
- :func:`column_kind` guesses the kind of a column from the values a batch holds for it, for
  sinks that create their table: ``integer``, ``float``, ``boolean``, ``timestamp``, ``json``
  or ``text``.
- :func:`same_columns` splits a batch into runs of rows naming the same columns, so that an
  upsert sets only the columns each event has, however the events were batched.
- :func:`whole_groups` keeps a batch read in order of a column from ending in the middle of a
  group of rows sharing a value, so that the last value can serve as a position.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from millstream.core import Event

__all__ = [
    "ColumnKind",
    "column_kind",
    "columns_of",
    "event_value",
    "is_timestamp",
    "position_value",
    "row_of",
    "same_columns",
    "whole_groups",
]

ColumnKind = Literal["integer", "float", "boolean", "timestamp", "json", "text"]

_TIMESTAMP = re.compile(
    r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}(:?\d{2})?)?",
    re.ASCII,
)


def row_of(event: Event) -> dict[str, Any]:
    """The row ``event`` is written as: its value if it is a mapping (taken as it is, not
    copied), else ``{"value": value}``."""
    value = event.value
    if type(value) is dict:
        return value
    if isinstance(value, Mapping):
        return dict(value)
    return {"value": value}


def columns_of(rows: Iterable[Mapping[str, Any]]) -> list[str]:
    """Every column named by ``rows``, in the order they first appear."""
    seen: dict[str, None] = {}
    for row in rows:
        for name in row:
            if name not in seen:
                seen[name] = None
    return list(seen)


def same_columns(rows: Sequence[Mapping[str, Any]]) -> list[tuple[list[str], int, int]]:
    """``rows`` as runs of consecutive rows naming the same columns (in any order), in
    order: each run's columns (as its first row names them), its first index and the index
    after its last."""
    runs: list[tuple[list[str], int, int]] = []
    start = 0
    for index in range(1, len(rows) + 1):
        if index == len(rows) or rows[index].keys() != rows[start].keys():
            runs.append((list(rows[start]), start, index))
            start = index
    return runs


def is_timestamp(text: str) -> bool:
    """True for a plain ISO 8601 date-time (``2024-05-01T12:00:00Z``, a space for the T, an
    optional fraction and offset)."""
    return _TIMESTAMP.fullmatch(text) is not None


def column_kind(values: Sequence[Any]) -> ColumnKind:
    """The kind of column that holds every one of ``values`` (None is left out): booleans,
    integers, numbers (integers and floats together), ISO date-times, nested mappings or
    lists (json); anything else, or a mix, is text."""
    kinds: set[str] = set()
    for value in values:
        if value is None:
            continue
        if isinstance(value, bool):
            kinds.add("boolean")
        elif isinstance(value, int):
            kinds.add("integer")
        elif isinstance(value, float):
            kinds.add("float")
        elif isinstance(value, dict | list | tuple):
            kinds.add("json")
        elif isinstance(value, str):
            kinds.add("timestamp" if is_timestamp(value) else "text")
        else:
            kinds.add("text")
    if not kinds:
        return "text"
    if len(kinds) == 1:
        return kinds.pop()  # type: ignore[return-value]
    if kinds == {"integer", "float"}:
        return "float"
    return "text"


def event_value(value: Any) -> Any:
    """A value read from a database as a JSON value (mappings and lists are walked)."""
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        if value.is_nan() or value.is_infinite():
            return str(value)
        integral = value == value.to_integral_value()
        return int(value) if integral else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): event_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [event_value(v) for v in value]
    return str(value)


def position_value(value: Any) -> Any:
    """A column value as a source's position keeps it (a JSON value the database compares
    back the same way): numbers and text stay, decimals, dates and others become text."""
    if value is None or isinstance(value, str | int | float):
        return value
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    return str(value)


def whole_groups(rows: list[Any], value_of: Any, limit: int) -> list[Any] | None:
    """At most ``limit`` of ``rows`` (read in order of a column with ``LIMIT limit + 1``,
    ``value_of(row)`` its value), never ending inside a group of rows that share a value: a
    position is a value, and ``> last`` would skip the rest of that group.

    None when the first ``limit + 1`` rows all share one value (the caller then reads that
    whole group at once).
    """
    if len(rows) <= limit:
        return rows
    last = value_of(rows[limit - 1])
    if value_of(rows[limit]) != last:
        return rows[:limit]
    end = limit
    while end and value_of(rows[end - 1]) == last:
        end -= 1
    return rows[:end] if end else None
