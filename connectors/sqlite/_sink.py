"""The ``sqlite`` sink: events as rows of a table, inserted or upserted by primary key."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import sqlite_utils
from pydantic import Field, field_validator
from sqlite_utils.db import PrimaryKeyRequired

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    EventsRejected,
    Rejection,
    Sink,
)

from .._rows import row_of
from ._thread import DatabaseThread

__all__ = ["SqliteSink", "SqliteSinkConfig"]

_REFUSED = (
    sqlite3.IntegrityError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    sqlite3.DataError,
    OverflowError,
    PrimaryKeyRequired,
)
"""What SQLite raises for a row it will never take (a constraint, a value it cannot bind, a
missing primary key); anything else (a locked database, a full disk) fails the whole flush."""


_STATEMENT_ROWS = 500
"""Rows per INSERT statement (within SQLite's limit of bound values for rows of ~60 columns)."""


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
    """The SQL side of the sink; every method runs on the sink's own thread."""

    def __init__(self, config: SqliteSinkConfig, path: Path, where: str) -> None:
        self.config = config
        self.path = path
        self.where = where
        self.db: sqlite_utils.Database | None = None
        self.pk: str | tuple[str, ...] | None = (
            tuple(config.pk) if isinstance(config.pk, list) else config.pk
        )

    def open(self) -> None:
        if not self.path.parent.is_dir():
            raise ConnectorError(
                f"{self.where}: path: no folder {str(self.path.parent)!r} to make "
                f"{self.path.name!r} in"
            )
        try:
            self.db = sqlite_utils.Database(self.path, execute_plugins=False)
            self.db.enable_wal()
        except sqlite3.DatabaseError as exc:
            raise ConnectorError(f"{self.where}: path: {exc} ({self.path})") from None

    def write(self, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Write ``rows`` in one transaction; the index and reason of each row refused."""
        assert self.db is not None
        try:
            with self.db.atomic():
                self._put(rows)
            return []
        except _REFUSED:
            pass  # find the rows at fault; the others go in
        refused: list[tuple[int, str]] = []
        with self.db.atomic():
            for index, row in enumerate(rows):
                try:
                    with self.db.atomic():  # a savepoint
                        self._put([row])
                except _REFUSED as exc:
                    refused.append((index, _reason(exc)))
        return refused

    def _put(self, rows: list[dict[str, Any]]) -> None:
        assert self.db is not None
        table = self.db.table(self.config.table)
        if self.pk is None:
            table.insert_all(rows, alter=True, batch_size=_STATEMENT_ROWS)
        else:
            table.upsert_all(rows, pk=self.pk, alter=True, batch_size=_STATEMENT_ROWS)

    def close(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


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
        self._thread = DatabaseThread(f"sqlite-sink-{self.context.name}")
        await self._thread.call(self._writer.open)

    async def write(self, events: Sequence[Event]) -> None:
        self._events.extend(events)

    async def flush(self) -> None:
        assert self._thread is not None, "flush() before open()"
        events, self._events = self._events, []
        if not events:
            return
        rows = [row_of(event) for event in events]
        refused = await self._thread.call(self._writer.write, rows)
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
