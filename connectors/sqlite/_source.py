"""The ``sqlite`` source: rows of a table or a query, once (snapshot) or as they come
(incremental)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any, ClassVar

from pydantic import Field

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    Source,
    SourceBatch,
    key_bytes,
)

from .._rows import event_value, position_value, whole_groups
from .._sql import RowSourceConfig, check_position, keyset_sql, one_line
from .._sql import quote as _quote
from ._thread import DatabaseThread

__all__ = ["SqliteSource", "SqliteSourceConfig"]

_ROWID = "__millstream_rowid"
"""The name the rowid is read under when it is the position (then left out of the event)."""


class SqliteSourceConfig(RowSourceConfig):
    path: Path = Field(description="the SQLite database file to read (it must exist)")
    column: str | None = Field(
        None,
        description="the column whose value only grows (rowid, id, updated_at): rows are read "
        "in its order and its last value is the position; incremental mode on a table "
        "defaults to rowid",
    )


class _Reader:
    """The SQL side of the source; every method runs on the source's own thread.

    Rows are read in order of the position column, ``batch_size`` at a time, by keyset
    (``WHERE column > last``); without a column (a snapshot of a query) they are read in the
    query's order and the position is the number of rows read.
    """

    def __init__(self, config: SqliteSourceConfig, path: Path, where: str) -> None:
        self.config = config
        self.path = path
        self.where = where
        self.conn: sqlite3.Connection | None = None
        self.names: list[str] = []
        self.column: str | None = None  # the position column; None: count rows
        self.by_rowid = False
        self._cursor: sqlite3.Cursor | None = None
        self._cursor_at = -1

    def open(self) -> None:
        config = self.config
        if not self.path.is_file():
            raise ConnectorError(f"{self.where}: path: no database file at {str(self.path)!r}")
        try:
            self.conn = sqlite3.connect(
                self.path.resolve().as_uri() + "?mode=ro",
                uri=True,
                isolation_level=None,
                check_same_thread=True,
            )
            subject = _quote(config.table) if config.table is not None else f"({config.query})"
            self.names = [
                d[0] for d in self.conn.execute(f"SELECT * FROM {subject} LIMIT 0").description
            ]
        except sqlite3.DatabaseError as exc:
            setting = "table" if config.table is not None else "query"
            raise ConnectorError(f"{self.where}: {setting}: {exc} (in {self.path})") from None
        self.subject = subject
        column = config.column
        if column is None and (config.mode == "incremental" or config.table is not None):
            column = "rowid"
        rowid = column is not None and column.lower() == "rowid" and config.table is not None
        if rowid and "rowid" not in (n.lower() for n in self.names):
            try:
                self.conn.execute(f"SELECT rowid FROM {subject} LIMIT 0")
                self.by_rowid = True
            except sqlite3.OperationalError:
                if config.mode == "incremental" or config.column is not None:
                    raise ConnectorError(
                        f"{self.where}: column: table {config.table!r} has no rowid; "
                        f"name a column that only grows, one of: {', '.join(self.names)}"
                    ) from None
                column = None  # a snapshot of a table without rowid: count rows
        if column is not None and not self.by_rowid and column not in self.names:
            raise ConnectorError(
                f"{self.where}: column: no column {column!r}; known: {', '.join(self.names)}"
            )
        if config.key is not None and config.key not in self.names:
            raise ConnectorError(
                f"{self.where}: key: no column {config.key!r}; known: {', '.join(self.names)}"
            )
        self.column = column

    def check_position(self, position: Any) -> None:
        check_position(self.where, position, by_column=self.column is not None)

    def fetch(self, position: Any) -> tuple[list[Event], Any]:
        """The next rows after ``position`` as events, and the position after them."""
        assert self.conn is not None
        if self.column is None:
            return self._fetch_counted(position)
        after = None if position is None else position["after"]
        column = _ROWID if self.by_rowid else self.column
        rows, names = self._keyset(after, limit=self.config.batch_size + 1)
        at = names.index(column)
        kept = whole_groups(rows, lambda row: row[at], self.config.batch_size)
        if kept is None:  # one value fills the batch: read that whole group
            rows, names = self._keyset(rows[-1][at], limit=None, equal=True)
            kept = rows
        if not kept:
            return [], position
        last = kept[-1][at]
        return self._events(kept, names), {"after": position_value(last)}

    def _keyset(
        self, after: Any, *, limit: int | None, equal: bool = False
    ) -> tuple[list[tuple[Any, ...]], list[str]]:
        assert self.conn is not None and self.column is not None
        if self.by_rowid:
            select, order = f"SELECT rowid AS {_quote(_ROWID)}, * FROM {self.subject}", "rowid"
        else:
            select, order = f"SELECT * FROM {self.subject}", _quote(self.column)
        sql, params = keyset_sql(select, order, after, limit, equal=equal, mark="?")
        cursor = self.conn.execute(sql, params)
        return cursor.fetchall(), [d[0] for d in cursor.description]

    def _fetch_counted(self, position: Any) -> tuple[list[Event], Any]:
        assert self.conn is not None
        done = 0 if position is None else int(position["rows"])
        if self._cursor is None or self._cursor_at != done:
            if self._cursor is not None:
                self._cursor.close()
            self._cursor = self.conn.execute(
                f"SELECT * FROM {self.subject} LIMIT -1 OFFSET ?", (done,)
            )
            self._cursor_at = done
        rows = self._cursor.fetchmany(self.config.batch_size)
        self._cursor_at += len(rows)
        if not rows:
            return [], position
        names = [d[0] for d in self._cursor.description]
        return self._events(rows, names), {"rows": done + len(rows)}

    def _events(self, rows: list[tuple[Any, ...]], names: list[str]) -> list[Event]:
        key = self.config.key
        drop = _ROWID if self.by_rowid else None
        events: list[Event] = []
        for row in rows:
            value = dict(zip(names, row, strict=True))
            if drop is not None:
                del value[drop]
            if any(type(v) is bytes for v in row):
                value = {k: event_value(v) for k, v in value.items()}
            events.append(Event(value, key_bytes(value[key]) if key is not None else None))
        return events

    def close(self) -> None:
        if self._cursor is not None:
            self._cursor.close()
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class SqliteSource(Source):
    """Rows of a SQLite table or query as events: a snapshot, or new rows as they come.

    Each row becomes one event whose value maps column names to values (blobs as base64
    text). The position is the last value of the column rows are read by (or, for a snapshot
    of a query, the number of rows read), so a restart goes on just after the last
    acknowledged row.
    """

    name = "sqlite"
    Config: ClassVar[type[ConnectorConfig]] = SqliteSourceConfig
    resumable = True

    def __init__(self, config: SqliteSourceConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: SqliteSourceConfig = config
        where = f"sqlite source {context.name!r}"
        self._reader = _Reader(config, context.resolve(config.path), where)
        self._thread: DatabaseThread | None = None
        self._position: Any = None

    @property
    def bounded(self) -> bool:
        return self.config.mode == "snapshot"

    async def open(self, position: Any) -> None:
        self._thread = DatabaseThread(f"sqlite-source-{self.context.name}")
        try:
            await self._thread.call(self._reader.open)
            self._reader.check_position(position)
        except BaseException:  # let the thread and the connection go
            await self.close()
            raise
        self._position = position

    async def read(self) -> SourceBatch | None:
        assert self._thread is not None, "read() before open()"
        interval = self.config.interval.total_seconds()
        while True:
            try:
                events, position = await self._thread.call(self._reader.fetch, self._position)
            except sqlite3.Error as exc:  # the table dropped, the file gone
                raise ConnectorError(f"{self._reader.where}: {one_line(exc)}") from exc
            if events:
                self._position = position
                return SourceBatch(events, position)
            if self.bounded:
                return None
            await asyncio.sleep(interval)

    async def close(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            try:
                await thread.call(self._reader.close)
            finally:
                thread.shutdown()
