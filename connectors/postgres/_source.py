"""The ``postgres`` source: rows of a table or a query, once (snapshot) or as they come
(incremental)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field, SecretStr, model_validator

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    Source,
    SourceBatch,
    key_bytes,
)
from millstream.core.duration import Duration

from .._rows import event_value, position_value, whole_groups
from .._sql import RowSourceConfig, check_position, keyset_sql, quote
from ._connect import (
    INSTALL_HINT,
    backoff,
    connect,
    is_connection_error,
    one_line,
    password_of,
    printable_dsn,
)

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresSource", "PostgresSourceConfig"]

_CURSOR = "millstream_snapshot"
"""The server-side cursor a snapshot without a position column is read through."""

_PRIMARY_KEY_SQL = """
SELECT a.attname
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = to_regclass(%s) AND i.indisprimary
"""


class PostgresSourceConfig(RowSourceConfig):
    dsn: SecretStr = Field(
        description="where to connect: postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
        "(or key=value pairs); never printed"
    )
    table: str | None = Field(
        None, description="the table to read, schema.table allowed (or give `query`)"
    )
    column: str | None = Field(
        None,
        description="the column whose value only grows (id, updated_at): rows are read in its "
        "order and its last value is the position; a table defaults to its one-column "
        "primary key",
    )
    reconnect_for: Duration = Field(
        "60s",  # validated into a timedelta
        validate_default=True,
        description="how long to keep trying to reach the database (at start, and when a "
        "connection drops) before failing",
    )

    @model_validator(mode="after")
    def _psycopg_installed(self) -> PostgresSourceConfig:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ValueError(INSTALL_HINT) from None
        return self


class PostgresSource(Source):
    """Rows of a PostgreSQL table or query as events: a snapshot, or new rows as they come.

    Each row becomes one event whose value maps column names to values (dates and times as
    ISO 8601 text, numerics as numbers, jsonb as it is). The position is the last value of the
    column rows are read by (or, for a snapshot without one, the number of rows read), so a
    restart goes on just after the last acknowledged row; a dropped connection is reconnected
    and the read goes on from there.
    """

    name = "postgres"
    Config: ClassVar[type[ConnectorConfig]] = PostgresSourceConfig
    resumable = True

    def __init__(self, config: PostgresSourceConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: PostgresSourceConfig = config
        self._dsn = config.dsn.get_secret_value()
        self._where = f"postgres source {context.name!r}"
        self._within = config.reconnect_for.total_seconds()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        if config.table is not None:
            self._subject = ".".join(quote(p) for p in config.table.split("."))
        else:  # every statement has parameters, so a % of the query must be doubled
            self._subject = f"({(config.query or '').replace('%', '%%')}) AS millstream_query"
        self._column: str | None = config.column
        self._names: list[str] = []
        self._position: Any = None
        self._cursor_on: psycopg.AsyncConnection[Any] | None = None  # the snapshot's cursor
        self._cursor_at = -1  # how many rows that cursor has given

    @property
    def bounded(self) -> bool:
        return self.config.mode == "snapshot"

    async def open(self, position: Any) -> None:
        """Connect and check the settings against the table or query; on failure the
        connection is closed before the error is raised."""
        try:
            await self._open(position)
        except BaseException:
            await self._forget()
            raise

    async def _open(self, position: Any) -> None:
        conn = await self._connection()
        config = self.config
        psycopg = _psycopg()
        setting = "table" if config.table is not None else "query"
        try:
            cursor = await conn.execute(f"SELECT * FROM {self._subject} LIMIT %s", (0,))
            self._names = [d.name for d in cursor.description or ()]
            if self._column is None and config.table is not None:
                cursor = await conn.execute(_PRIMARY_KEY_SQL, (self._subject,))
                keys = [str(r[0]) for r in await cursor.fetchall()]
                if len(keys) == 1:
                    self._column = keys[0]
        except psycopg.Error as exc:
            if is_connection_error(exc):
                raise
            raise ConnectorError(
                f"{self._where}: {setting}: {one_line(exc, password_of(self._dsn))}"
            ) from None
        known = ", ".join(self._names)
        if self._column is None and config.mode == "incremental":
            raise ConnectorError(
                f"{self._where}: column: table {config.table!r} has no one-column primary "
                f"key; name a column that only grows, one of: {known}"
            )
        if self._column is not None and self._column not in self._names:
            raise ConnectorError(
                f"{self._where}: column: no column {self._column!r}; known: {known}"
            )
        if config.key is not None and config.key not in self._names:
            raise ConnectorError(f"{self._where}: key: no column {config.key!r}; known: {known}")
        check_position(self._where, position, by_column=self._column is not None)
        self._position = position

    async def read(self) -> SourceBatch | None:
        interval = self.config.interval.total_seconds()
        while True:
            events, position = await self._fetch_reconnecting()
            if events:
                self._position = position
                return SourceBatch(events, position)
            if self.bounded:
                return None
            await asyncio.sleep(interval)

    async def close(self) -> None:
        await self._forget()

    # -- reading ----------------------------------------------------------------------------

    async def _fetch_reconnecting(self) -> tuple[list[Event], Any]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._within
        attempt = 0
        while True:
            attempt += 1
            try:
                conn = await self._connection()
                return await self._fetch(conn, self._position)
            except Exception as exc:
                if not is_connection_error(exc):
                    if isinstance(exc, _psycopg().Error):  # the table dropped, a query failing
                        secret = password_of(self._dsn)
                        raise ConnectorError(f"{self._where}: {one_line(exc, secret)}") from exc
                    raise
                await self._forget()
                now = loop.time()
                if now >= deadline:
                    raise ConnectorError(
                        f"{self._where}: lost {printable_dsn(self._dsn)} and could not read "
                        f"again within {self._within:g}s: {one_line(exc, password_of(self._dsn))}"
                    ) from None
                self.context.log.warning(
                    "%s: %s; reading again", self._where, one_line(exc, password_of(self._dsn))
                )
                await asyncio.sleep(min(deadline - now, backoff(attempt)))

    async def _fetch(
        self, conn: psycopg.AsyncConnection[Any], position: Any
    ) -> tuple[list[Event], Any]:
        batch = self.config.batch_size
        if self._column is None:
            return await self._fetch_counted(conn, position)
        after = None if position is None else position["after"]
        rows = await self._keyset(conn, after, batch + 1)
        at = self._names.index(self._column)
        kept = whole_groups(rows, lambda row: row[at], batch)
        if kept is None:  # one value fills the batch: read that whole group
            kept = await self._keyset(conn, rows[0][at], None, equal=True)
        if not kept:
            return [], position
        return self._events(kept), {"after": position_value(kept[-1][at])}

    async def _fetch_counted(
        self, conn: psycopg.AsyncConnection[Any], position: Any
    ) -> tuple[list[Event], Any]:
        """The next rows of a snapshot without a position column, counted.

        The whole snapshot is read through one server-side cursor in a ``REPEATABLE READ``
        transaction, so every batch comes from the same state of the database: a row is read
        once however the table changes meanwhile. A table's rows are ordered by their whole
        value (a query's by its own ``ORDER BY``), so a cursor declared again after a restart
        or a reconnect skips, by ``OFFSET``, the rows already read."""
        done = 0 if position is None else int(position["rows"])
        if self._cursor_on is not conn or self._cursor_at != done:
            await self._end_snapshot(conn)
            order = " ORDER BY millstream_query::text" if self.config.table is not None else ""
            subject = self._subject + (" AS millstream_query" if order else "")
            await conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            await conn.execute(
                f"DECLARE {_CURSOR} NO SCROLL CURSOR FOR "
                f"SELECT * FROM {subject}{order} OFFSET {done:d}",
                (),  # parameters given, so a doubled % in the query is read as one
            )
            self._cursor_on, self._cursor_at = conn, done
        cursor = await conn.execute(f"FETCH FORWARD {self.config.batch_size:d} FROM {_CURSOR}")
        rows = await cursor.fetchall()
        self._cursor_at += len(rows)
        if not rows:
            await self._end_snapshot(conn)
            return [], position
        return self._events(rows), {"rows": done + len(rows)}

    async def _end_snapshot(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Close the snapshot's cursor and its transaction, if open on ``conn``."""
        if self._cursor_on is conn:
            await conn.execute("COMMIT")
        self._cursor_on, self._cursor_at = None, -1

    async def _keyset(
        self,
        conn: psycopg.AsyncConnection[Any],
        after: Any,
        limit: int | None,
        *,
        equal: bool = False,
    ) -> list[tuple[Any, ...]]:
        assert self._column is not None
        select = f"SELECT * FROM {self._subject}"
        order = quote(self._column)
        sql, params = keyset_sql(select, order, after, limit, equal=equal, mark="%s")
        cursor = await conn.execute(sql, params)
        return list(await cursor.fetchall())

    def _events(self, rows: list[tuple[Any, ...]]) -> list[Event]:
        names = self._names
        key = self.config.key
        events: list[Event] = []
        for row in rows:
            value = {name: event_value(v) for name, v in zip(names, row, strict=True)}
            events.append(Event(value, key_bytes(value[key]) if key is not None else None))
        return events

    # -- connecting -------------------------------------------------------------------------

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        await self._forget()
        self._conn = await connect(
            self._dsn,
            self._where,
            self._within,
            autocommit=True,
            log=lambda text: self.context.log.warning("%s", text),
        )
        return self._conn

    async def _forget(self) -> None:
        conn, self._conn = self._conn, None
        self._cursor_on, self._cursor_at = None, -1  # gone with its connection
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except Exception as exc:  # a broken connection may fail to close; it is gone
                self.context.log.debug("%s: closing: %s", self._where, exc)


def _psycopg() -> Any:
    from ._connect import psycopg_module

    return psycopg_module()
