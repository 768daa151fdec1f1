"""The ``sqlite`` sink: events as rows of a table, inserted or upserted by primary key."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, field_validator

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    EventsRejected,
    Rejection,
    Sink,
)

from .._rows import columns_of, row_of, same_columns
from .._sql import one_line
from .._sql import quote as _quote
from ._thread import DatabaseThread

if TYPE_CHECKING:
    import sqlite_utils

__all__ = ["SqliteSink", "SqliteSinkConfig"]

_REFUSED = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
    OverflowError,
)
"""What SQLite raises for a row it will never take (a constraint, a value it cannot bind, a
missing primary key); anything else (a locked database, a full disk) fails the whole flush."""


class SqliteSinkConfig(ConnectorConfig):
    path: Path = Field(
        description="the SQLite database file to write (made if missing; its folder must exist)"
    )
    table: str = Field(description="the table to write; made from the first rows if missing")
    pk: str | list[str] | None = Field(
        None,
        description="the primary key column(s): rows are upserted by it (idempotent); "
        "without it every event is inserted as a new row",
    )

    @field_validator("table")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("a table needs a name")
        return value

    @field_validator("pk")
    @classmethod
    def _some_columns(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one primary key column, or leave pk out")
        return value


class _Writer:
    """The SQL side of the sink; every method runs on the sink's own thread.

    sqlite-utils makes the table and adds columns (types suggested from the rows); the rows
    themselves go in with one prepared ``INSERT … ON CONFLICT … DO UPDATE`` per run of rows
    naming the same columns (``executemany``; a batch of like events is one run), which is
    several times faster than building statements per chunk.
    """

    def __init__(self, config: SqliteSinkConfig, path: Path, where: str) -> None:
        self.config = config
        self.path = path
        self.where = where
        self.db: sqlite_utils.Database | None = None
        self.pk: list[str] = (
            [] if config.pk is None else [config.pk] if isinstance(config.pk, str) else config.pk
        )
        self._known: set[str] = set()  # the table's columns, lower-cased ('' while missing)
        self._statements: dict[tuple[str, ...], str] = {}

    def open(self) -> None:
        if not self.path.parent.is_dir():
            raise ConnectorError(
                f"{self.where}: path: no folder {str(self.path.parent)!r} to make "
                f"{self.path.name!r} in"
            )
        import sqlite_utils  # here, not at import: loading it costs every command

        try:
            self.db = sqlite_utils.Database(self.path, execute_plugins=False)
            self.db.enable_wal()
            self._load()
        except sqlite3.DatabaseError as exc:
            raise ConnectorError(f"{self.where}: path: {exc} ({self.path})") from None

    def _load(self) -> None:
        """Read the table's columns (none while it is missing); with ``pk``, check that the
        table has a primary key or unique index on exactly those columns to upsert by."""
        assert self.db is not None
        table = self.db.table(self.config.table)
        self._known = {c.lower() for c in table.columns_dict} if table.exists() else set()
        if self._known and self.pk and sorted(k.lower() for k in self.pk) not in self._uniques():
            raise ConnectorError(
                f"{self.where}: pk: table {self.config.table!r} has no primary key or unique "
                f"index on {self.pk} to upsert by; add one, or leave pk out to insert"
            )

    def _uniques(self) -> list[list[str]]:
        """The column sets (sorted, lower-cased) the table's primary key and unique indexes
        cover."""
        assert self.db is not None
        conn, table = self.db.conn, _quote(self.config.table)
        info = conn.execute(f"PRAGMA table_info({table})").fetchall()
        keys = [sorted(str(row[1]).lower() for row in info if row[5])]
        for index in conn.execute(f"PRAGMA index_list({table})").fetchall():
            if index[2] and not index[4]:  # unique, not partial
                columns = conn.execute(f"PRAGMA index_info({_quote(index[1])})").fetchall()
                keys.append(sorted(str(c[2]).lower() for c in columns if c[2] is not None))
        return keys

    def write(self, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Write ``rows`` in one transaction; the index and reason of each row refused.

        Each run of rows naming the same columns is one statement setting those columns
        only: a column an event lacks stays as it is in a row it updates (NULL in a row it
        makes), whichever events it was batched with."""
        assert self.db is not None
        refused: list[tuple[int, str]] = []
        try:
            with self.db.atomic():
                self._grow(rows, columns_of(rows))
                for names, start, end in same_columns(rows):
                    refused += self._write_run(rows, names, start, end)
        except BaseException:
            self._load()  # a column added in the transaction is gone with it
            raise
        refused.sort()
        return refused

    def _write_run(
        self, rows: list[dict[str, Any]], names: list[str], start: int, end: int
    ) -> list[tuple[int, str]]:
        """Write ``rows[start:end]`` (which all name the columns ``names``)."""
        assert self.db is not None
        sql = self._statement(names)
        made, values, refused = self._values(rows, names, start, end)
        try:
            with self.db.atomic():  # a savepoint: the whole run at once
                self.db.conn.executemany(sql, values)
        except _REFUSED:  # find the rows at fault; the others go in
            for index, row in zip(made, values, strict=True):
                try:
                    with self.db.atomic():
                        self.db.conn.execute(sql, row)
                except _REFUSED as exc:
                    refused.append((index, _reason(exc)))
        return refused

    def _grow(self, rows: list[dict[str, Any]], names: list[str]) -> None:
        """Make the table, or add the columns it lacks, for ``rows``."""
        assert self.db is not None
        new = [n for n in names if n.lower() not in self._known]
        if not new:
            return
        table = self.db.table(self.config.table)
        wanted = set(new)
        from sqlite_utils.utils import suggest_column_types

        types = suggest_column_types([{k: v for k, v in r.items() if k in wanted} for r in rows])
        if not self._known:
            for key in self.pk:
                types.setdefault(key, str)
            table.create(types, pk=self.pk[0] if len(self.pk) == 1 else (self.pk or None))
        else:
            for name in new:
                table.add_column(name, types.get(name, str))
        self._known.update(n.lower() for n in types)

    def _statement(self, names: list[str]) -> str:
        key = tuple(names)
        sql = self._statements.get(key)
        if sql is None:
            table = _quote(self.config.table)
            cols = ", ".join(_quote(n) for n in names)
            sql = f"INSERT INTO {table} ({cols}) VALUES ({', '.join('?' * len(names))})"
            if not names:  # an empty mapping (refused with a pk: it has no key)
                sql = f"INSERT INTO {table} DEFAULT VALUES"
            elif self.pk:
                others = [n for n in names if n not in self.pk]
                conflict = ", ".join(_quote(k) for k in self.pk)
                if others:
                    sets = ", ".join(f"{_quote(n)} = excluded.{_quote(n)}" for n in others)
                    sql += f" ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
                else:
                    sql += f" ON CONFLICT ({conflict}) DO NOTHING"
            self._statements[key] = sql
        return sql

    def _values(
        self, rows: list[dict[str, Any]], names: list[str], start: int, end: int
    ) -> tuple[list[int], list[tuple[Any, ...]], list[tuple[int, str]]]:
        """The values for ``names`` of each of ``rows[start:end]`` (nested ones as JSON
        text): the indexes of the rows made, their values, and the rows refused before SQLite
        sees them (no primary key)."""
        keys = [names.index(k) for k in self.pk if k in names]
        missing_key = len(keys) < len(self.pk)
        made: list[int] = []
        values: list[tuple[Any, ...]] = []
        refused: list[tuple[int, str]] = []
        for index in range(start, end):
            row = rows[index]
            value = [row.get(n) for n in names]
            for place, item in enumerate(value):
                if type(item) in _NESTED:
                    value[place] = json.dumps(item, default=repr)
            if self.pk and (missing_key or any(value[k] is None for k in keys)):
                wanted = ", ".join(self.pk)
                refused.append((index, f"no value for the primary key ({wanted}) to upsert by"))
                continue
            made.append(index)
            values.append(tuple(value))
        return made, values, refused

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


_NESTED = (dict, list, tuple)


def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"sqlite refused the row: {text}"


class SqliteSink(Sink):
    """Writes events as rows of a SQLite table: upserted by primary key, or inserted.

    An event's value (a mapping) is one row, nested mappings and lists as JSON text; a value
    that is not a mapping goes in a column called ``value``. The table is made from the first
    rows when missing, and a column is added when an event brings a new one. Each flush is one
    transaction in a WAL-mode database. With ``pk`` set, writing an event again replaces its
    row, so the sink is idempotent; without it every write adds rows.
    """

    name = "sqlite"
    Config: ClassVar[type[ConnectorConfig]] = SqliteSinkConfig
    idempotent = True
    """With ``pk`` set (see :meth:`idempotent_for`)."""

    @classmethod
    def idempotent_for(cls, config: SqliteSinkConfig) -> bool:
        """Idempotent as configured: only an upsert by primary key is."""
        return config.pk is not None

    def __init__(self, config: SqliteSinkConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: SqliteSinkConfig = config
        where = f"sqlite sink {context.name!r}"
        self._writer = _Writer(config, context.resolve(config.path), where)
        self._thread: DatabaseThread | None = None
        self._events: list[Event] = []

    async def open(self) -> None:
        """Open the database on a thread of the sink's own; if that fails, the thread and
        what was opened are let go before the error is raised."""
        self._thread = DatabaseThread(f"sqlite-sink-{self.context.name}")
        try:
            await self._thread.call(self._writer.open)
        except BaseException:
            await self.close()
            raise

    async def write(self, events: Sequence[Event]) -> None:
        self._events.extend(events)

    async def flush(self) -> None:
        assert self._thread is not None, "flush() before open()"
        events, self._events = self._events, []
        if not events:
            return
        rows = [row_of(event) for event in events]
        try:
            refused = await self._thread.call(self._writer.write, rows)
        except sqlite3.Error as exc:  # a locked database, a full disk: the flush is retried
            raise ConnectorError(f"{self._writer.where}: {one_line(exc)}") from exc
        if refused:
            raise EventsRejected([Rejection(events[i], reason) for i, reason in refused])

    async def close(self) -> None:
        self._events = []
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                await thread.call(self._writer.close)
            finally:
                thread.shutdown()
