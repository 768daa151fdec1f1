"""The table a postgres sink writes: its name, its columns and their types, how it is made
and grown, and how a value is put into the text form PostgreSQL parses for a column."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import orjson

from .._rows import ColumnKind, column_kind
from .._sql import quote

__all__ = ["SQL_TYPES", "Table", "sql_type_of"]

SQL_TYPES: dict[ColumnKind, str] = {
    "integer": "bigint",
    "float": "double precision",
    "boolean": "boolean",
    "timestamp": "timestamptz",
    "json": "jsonb",
    "text": "text",
}
"""The SQL type of a column made for values of each kind."""

_BIGINT = 2**63


def sql_type_of(values: Sequence[Any]) -> str:
    """The SQL type of a new column for ``values``: bigint, double precision, boolean,
    timestamptz (ISO date-times), jsonb (mappings and lists), numeric (integers beyond
    bigint) or text."""
    kind = column_kind(values)
    if kind == "integer" and any(
        isinstance(v, int) and not -_BIGINT <= v < _BIGINT for v in values
    ):
        return "numeric"
    return SQL_TYPES[kind]


class Table:
    """A table by its (possibly schema-qualified: ``audit.events``) name and its columns."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sql = ".".join(quote(part) for part in name.split("."))
        """The name as SQL (each part quoted)."""
        self.columns: dict[str, str] = {}
        """Column name → its type as PostgreSQL formats it; empty while the table is missing."""
        self._json: set[str] = set()

    def load(self, columns: Iterable[tuple[str, str]]) -> None:
        """Take the columns as the catalog lists them (name, type)."""
        self.columns = dict(columns)
        self._json = {n for n, t in self.columns.items() if t in ("json", "jsonb")}

    def create_sql(self, columns: Mapping[str, str], pk: Sequence[str]) -> str:
        """``CREATE TABLE IF NOT EXISTS`` for ``columns`` (name → SQL type), keyed by ``pk``."""
        parts = [f"{quote(n)} {t}" for n, t in columns.items()]
        if pk:
            parts.append(f"PRIMARY KEY ({', '.join(quote(c) for c in pk)})")
        return f"CREATE TABLE IF NOT EXISTS {self.sql} ({', '.join(parts)})"

    def add_column_sql(self, name: str, sql_type: str) -> str:
        return f"ALTER TABLE {self.sql} ADD COLUMN IF NOT EXISTS {quote(name)} {sql_type}"

    def values(
        self, rows: Sequence[Mapping[str, Any]], names: Sequence[str], *, as_text: bool
    ) -> tuple[list[int], list[tuple[Any, ...]], list[tuple[int, str]]]:
        """Each row's values for ``names``, in forms PostgreSQL reads by the column's type:
        the indexes of the rows made, their values, and the index and reason of each row whose
        values cannot be written (a number JSON cannot hold).

        With ``as_text`` every value is text (or None: NULL), for statements whose parameters
        PostgreSQL casts from text to the column's type. Without it, text, integers and floats
        stay as they are, which ``COPY`` writes as the same text, and is faster.
        """
        json_places = [i for i, n in enumerate(names) if n in self._json]
        plain = _TEXT if as_text else _PLAIN
        made: list[int] = []
        values: list[tuple[Any, ...]] = []
        failed: list[tuple[int, str]] = []
        for index, row in enumerate(rows):
            value = [row.get(name) for name in names]
            try:
                for place, item in enumerate(value):
                    if type(item) not in plain:
                        value[place] = _text(item)
                for place in json_places:
                    item = row.get(names[place])
                    if item is not None:
                        value[place] = orjson.dumps(item).decode()
            except (TypeError, ValueError) as exc:
                failed.append((index, f"a value cannot be written: {exc}"))
                continue
            made.append(index)
            values.append(tuple(value))
        return made, values, failed


_PLAIN = frozenset({str, int, float, type(None)})
"""Types whose values COPY writes, as they are, in the text PostgreSQL reads."""
_TEXT = frozenset({str, type(None)})


def _text(value: Any) -> Any:
    """A value as the text PostgreSQL reads for a column that is not JSON: numbers in decimal,
    booleans as true/false, mappings and lists as JSON text."""
    if value is None or type(value) is str:
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return orjson.dumps(value).decode()
    if isinstance(value, bytes):
        return "\\x" + value.hex()
    return str(value)
