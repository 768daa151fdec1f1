"""The ``postgres`` sink: events as rows, upserted with ``INSERT … ON CONFLICT`` or appended
with ``COPY``, one transaction per flush."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    EventsRejected,
    Rejection,
    Sink,
)
from millstream.core.duration import Duration

from .._rows import columns_of, row_of, same_columns
from .._sql import quote
from ._connect import (
    INSTALL_HINT,
    backoff,
    connect,
    is_connection_error,
    is_row_error,
    one_line,
    password_of,
    printable_dsn,
)
from ._table import Table, sql_type_of

if TYPE_CHECKING:
    import psycopg

__all__ = ["PostgresSink", "PostgresSinkConfig"]

_COLUMNS_SQL = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod)
FROM pg_attribute a
WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
"""

_UNIQUE_SQL = """
SELECT array_agg(a.attname::text ORDER BY a.attname)
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = to_regclass(%s) AND i.indisunique
GROUP BY i.indexrelid
"""


_STAGE = "millstream_stage"
"""The temporary table an upsert batch is copied into first."""
_ORDER = "millstream_order"
"""Its column numbering the rows in the order they came."""


class PostgresSinkConfig(ConnectorConfig):
    dsn: SecretStr = Field(
        description="where to connect: postgresql://USER:PASSWORD@HOST:PORT/DATABASE "
        "(or key=value pairs); never printed"
    )
    table: str = Field(
        description="the table to write (schema.table allowed); made if missing, from "
        "`columns` or from the first rows"
    )
    pk: str | list[str] | None = Field(
        None,
        description="the primary key column(s): upsert mode updates the row with the same key; "
        "a table made by the sink gets it as its PRIMARY KEY",
    )
    mode: Literal["upsert", "copy"] = Field(
        "upsert",
        description="upsert: INSERT … ON CONFLICT (pk) DO UPDATE, idempotent; copy: append "
        "with COPY, fastest, a redelivered event is a second row",
    )
    columns: dict[str, str] | None = Field(
        None,
        description="the columns of a table to make, name: SQL type (id: bigint, "
        "payload: jsonb); without it the types are guessed from the first rows",
    )
    reconnect_for: Duration = Field(
        "60s",  # validated into a timedelta
        validate_default=True,
        description="how long to keep trying to reach the database (at start, and when a "
        "connection drops) before failing",
    )

    @field_validator("table")
    @classmethod
    def _named(cls, value: str) -> str:
        if not value.strip() or any(not part for part in value.split(".")):
            raise ValueError("a table needs a name (schema.table at most)")
        return value

    @field_validator("pk")
    @classmethod
    def _some_columns(cls, value: str | list[str] | None) -> str | list[str] | None:
        if isinstance(value, list) and not value:
            raise ValueError("name at least one primary key column, or leave pk out")
        return value

    @model_validator(mode="after")
    def _coherent(self) -> PostgresSinkConfig:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise ValueError(INSTALL_HINT) from None
        if self.mode == "upsert" and self.pk is None:
            raise ValueError("pk: mode upsert needs the primary key column(s) to upsert by")
        if self.columns is not None:
            missing = [c for c in self.keys if c not in self.columns]
            if missing:
                raise ValueError(f"columns: the pk column(s) {missing} are not among the columns")
        return self

    @property
    def keys(self) -> list[str]:
        """The pk as a list (empty without one)."""
        if self.pk is None:
            return []
        return [self.pk] if isinstance(self.pk, str) else list(self.pk)


class PostgresSink(Sink):
    """Writes events as rows of a PostgreSQL table: upserted by primary key, or appended
    with COPY.

    An event's value (a mapping) is one row; nested mappings and lists go in jsonb columns.
    The table is made when missing (from ``columns``, or with types guessed from the first
    rows) and a column is added when an event brings a new one. Each flush is one
    transaction; a row the database refuses is set aside and the others still land. A
    dropped connection is reconnected and the batch written again. Upsert mode is
    idempotent; copy mode is not.
    """

    name = "postgres"
    Config: ClassVar[type[ConnectorConfig]] = PostgresSinkConfig
    idempotent = True
    """In upsert mode (see :meth:`idempotent_for`)."""

    @classmethod
    def idempotent_for(cls, config: PostgresSinkConfig) -> bool:
        """Idempotent as configured: upsert mode is, copy mode is not."""
        return config.mode == "upsert"

    def __init__(self, config: PostgresSinkConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: PostgresSinkConfig = config
        self._dsn = config.dsn.get_secret_value()
        self._where = f"postgres sink {context.name!r}"
        self._within = config.reconnect_for.total_seconds()
        self._table = Table(config.table)
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._events: list[Event] = []

    # -- life cycle ----------------------------------------------------------------------------

    async def open(self) -> None:
        """Connect, read the table (making it from ``columns`` if set and missing) and check
        it can be upserted into; on failure the connection is closed before the error is
        raised."""
        try:
            conn = await self._connection()
            if self.config.columns is not None and not self._table.columns:
                async with conn.transaction():
                    await conn.execute(
                        self._table.create_sql(self.config.columns, self.config.keys)
                    )
                await self._load(conn)
        except BaseException as exc:
            await self._forget()
            if isinstance(exc, _psycopg().Error):
                raise ConnectorError(f"{self._where}: {one_line(exc, self._secret())}") from exc
            raise

    async def write(self, events: Sequence[Event]) -> None:
        self._events.extend(events)

    async def flush(self) -> None:
        events, self._events = self._events, []
        if not events:
            return
        rows = [row_of(event) for event in events]
        attempt = 0
        deadline = asyncio.get_running_loop().time() + self._within
        while True:
            attempt += 1
            try:
                conn = await self._connection()
                refused = await self._write(conn, rows)
                break
            except Exception as exc:
                if not is_connection_error(exc):
                    await self._forget()
                    if isinstance(exc, _psycopg().Error):
                        raise ConnectorError(
                            f"{self._where}: {one_line(exc, self._secret())}"
                        ) from exc
                    raise
                await self._forget()
                now = asyncio.get_running_loop().time()
                if now >= deadline:
                    raise ConnectorError(
                        f"{self._where}: lost {printable_dsn(self._dsn)} and could not write "
                        f"again within {self._within:g}s: {one_line(exc, self._secret())}"
                    ) from None
                self.context.log.warning(
                    "%s: %s; writing the batch again", self._where, one_line(exc, self._secret())
                )
                await asyncio.sleep(min(deadline - now, backoff(attempt)))
        if refused:
            raise EventsRejected([Rejection(events[i], reason) for i, reason in refused])

    async def close(self) -> None:
        self._events = []
        await self._forget()

    # -- connecting ----------------------------------------------------------------------------

    def _secret(self) -> str | None:
        return password_of(self._dsn)

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        await self._forget()
        # autocommit: each transaction is a ``conn.transaction()`` block, BEGIN to COMMIT
        conn = await connect(
            self._dsn,
            self._where,
            self._within,
            autocommit=True,
            log=lambda text: self.context.log.warning("%s", text),
        )
        self._conn = conn
        try:
            await self._load(conn)
        except BaseException:
            await self._forget()
            raise
        return conn

    async def _forget(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            try:
                await conn.close()
            except Exception as exc:  # a broken connection may fail to close; it is gone
                self.context.log.debug("%s: closing: %s", self._where, exc)

    async def _load(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Read the table's columns (none while it is missing); in upsert mode, check that
        the pk has a unique index to conflict on."""
        table = self._table
        cursor = await conn.execute(_COLUMNS_SQL, (table.sql,))
        table.load([(str(n), str(t)) for n, t in await cursor.fetchall()])
        keys = self.config.keys
        if table.columns and self.config.mode == "upsert":
            cursor = await conn.execute(_UNIQUE_SQL, (table.sql,))
            uniques = [sorted(r[0]) for r in await cursor.fetchall()]
            if sorted(keys) not in uniques:
                raise ConnectorError(
                    f"{self._where}: pk: table {table.name!r} has no primary key or unique "
                    f"index on {keys} to upsert by; add one, or use mode: copy"
                )

    # -- writing -------------------------------------------------------------------------------

    async def _write(
        self, conn: psycopg.AsyncConnection[Any], rows: list[dict[str, Any]]
    ) -> list[tuple[int, str]]:
        """Write ``rows`` in one transaction; the index and reason of each row refused."""
        try:
            async with conn.transaction():
                names = columns_of(rows)
                await self._grow(conn, rows, names)
                made, values, refused = self._values(rows, names, as_text=False)
                try:
                    async with conn.transaction():  # a savepoint: the bulk write alone
                        await self._bulk(conn, names, values, [rows[i] for i in made])
                except Exception as exc:
                    if not is_row_error(exc):
                        raise
                    # the statements below need every value as text
                    made, values, refused = self._values(rows, names, as_text=True)
                    refused += await self._one_by_one(conn, rows, names, made, values)
        except BaseException:
            self._table.columns = {}  # what the transaction made is gone: read it again
            raise
        refused.sort()
        return refused

    def _values(
        self, rows: list[dict[str, Any]], names: list[str], *, as_text: bool
    ) -> tuple[list[int], list[tuple[Any, ...]], list[tuple[int, str]]]:
        """The rows' values as :meth:`Table.values` makes them; in upsert mode a row with no
        columns at all (an empty mapping) is refused here, having no key to upsert by."""
        made, values, refused = self._table.values(rows, names, as_text=as_text)
        if self.config.mode == "upsert" and any(not rows[i] for i in made):
            keys = ", ".join(self.config.keys)
            kept = [(i, v) for i, v in zip(made, values, strict=True) if rows[i]]
            refused += [
                (i, f"no value for the primary key ({keys}) to upsert by")
                for i in made
                if not rows[i]
            ]
            made, values = [i for i, _ in kept], [v for _, v in kept]
        return made, values, refused

    async def _grow(
        self, conn: psycopg.AsyncConnection[Any], rows: list[dict[str, Any]], names: list[str]
    ) -> None:
        """Make the table, or add the columns it lacks, for ``rows`` (whose columns are
        ``names``)."""
        table = self._table
        if not table.columns:
            await self._load(conn)
        new = [n for n in names if n not in table.columns]
        if not new and table.columns:
            return
        types = {n: sql_type_of([row.get(n) for row in rows]) for n in new}
        if not table.columns:
            missing = [k for k in self.config.keys if k not in types]
            if missing:
                raise ConnectorError(
                    f"{self._where}: pk: cannot make table {table.name!r}: the first rows have "
                    f"no column {missing[0]!r}"
                )
            await conn.execute(table.create_sql(types, self.config.keys))
        else:
            for name, sql_type in types.items():
                await conn.execute(table.add_column_sql(name, sql_type))
        await self._load(conn)

    def _statement(self, names: Sequence[str]) -> str:
        """The statement that writes one row: an upsert, or an insert in copy mode."""
        cols = ", ".join(quote(n) for n in names)
        sql = f"INSERT INTO {self._table.sql} ({cols}) VALUES ({', '.join(['%s'] * len(names))})"
        if self.config.mode == "upsert":
            sql += f" {self._on_conflict(names)}"
        return sql

    def _on_conflict(self, names: Sequence[str]) -> str:
        keys = self.config.keys
        others = [n for n in names if n not in keys]
        conflict = ", ".join(quote(k) for k in keys)
        if not others:
            return f"ON CONFLICT ({conflict}) DO NOTHING"
        sets = ", ".join(f"{quote(n)} = EXCLUDED.{quote(n)}" for n in others)
        return f"ON CONFLICT ({conflict}) DO UPDATE SET {sets}"

    async def _bulk(
        self,
        conn: psycopg.AsyncConnection[Any],
        names: list[str],
        values: list[tuple[Any, ...]],
        rows: list[dict[str, Any]],
    ) -> None:
        """Write every row at once: COPY straight into the table, or, to upsert, COPY into a
        temporary table dropped at commit, then an ``INSERT … SELECT … ON CONFLICT`` per run
        of rows naming the same columns (``rows``, whose values are ``values``), setting
        those columns only and keeping the last row of each key (a key may come twice in a
        batch; one statement may not update a row twice)."""
        if not values:
            return
        cols = ", ".join(quote(n) for n in names)
        target = self._table.sql
        async with conn.cursor() as cursor:
            if self.config.mode == "upsert":
                await cursor.execute(
                    f"CREATE TEMP TABLE {_STAGE} ON COMMIT DROP AS "
                    f"SELECT {cols} FROM {target} WITH NO DATA"
                )
                await cursor.execute(
                    f"ALTER TABLE {_STAGE} ADD COLUMN {_ORDER} bigint GENERATED ALWAYS AS IDENTITY"
                )
                target = _STAGE
            async with cursor.copy(f"COPY {target} ({cols}) FROM STDIN") as copy:
                for row in values:
                    await copy.write_row(row)
            if self.config.mode == "upsert":
                keys = ", ".join(quote(k) for k in self.config.keys)
                for run, start, end in same_columns(rows):
                    run_cols = ", ".join(quote(n) for n in run)
                    await cursor.execute(
                        f"INSERT INTO {self._table.sql} ({run_cols}) "
                        f"SELECT DISTINCT ON ({keys}) {run_cols} FROM {_STAGE} "
                        f"WHERE {_ORDER} > %s AND {_ORDER} <= %s "
                        f"ORDER BY {keys}, {_ORDER} DESC {self._on_conflict(run)}",
                        (start, end),
                    )
                await cursor.execute(f"DROP TABLE {_STAGE}")

    async def _one_by_one(
        self,
        conn: psycopg.AsyncConnection[Any],
        rows: list[dict[str, Any]],
        names: list[str],
        made: list[int],
        values: list[tuple[Any, ...]],
    ) -> list[tuple[int, str]]:
        """Each row in a savepoint of its own, setting the columns its event has: the ones
        the database refuses, with its message; the others stay in the transaction."""
        refused: list[tuple[int, str]] = []
        async with conn.cursor() as cursor:
            for index, row in zip(made, values, strict=True):
                places = [i for i, n in enumerate(names) if n in rows[index]]
                sql = self._statement([names[i] for i in places])
                try:
                    async with conn.transaction():
                        await cursor.execute(sql, [row[i] for i in places])
                except Exception as exc:
                    if not is_row_error(exc):
                        raise
                    refused.append((index, f"postgres refused the row: {one_line(exc)}"))
        return refused


def _psycopg() -> Any:
    from ._connect import psycopg_module

    return psycopg_module()
