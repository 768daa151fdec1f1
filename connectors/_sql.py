"""What the database connectors share: quoting names, errors as one line, the settings of
the row sources, their positions, and the keyset statement they read by."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Literal, Self

from pydantic import Field, field_validator, model_validator

from millstream.core import ConnectorConfig, ConnectorError
from millstream.core.duration import Duration

__all__ = ["RowSourceConfig", "check_position", "keyset_sql", "one_line", "quote"]


def quote(name: str) -> str:
    """``name`` as a quoted SQL identifier: in double quotes, a double quote in it doubled."""
    return '"' + name.replace('"', '""') + '"'


def one_line(exc: BaseException, secret: str | None = None) -> str:
    """An error as one line, without ``secret`` (a password) should it appear in it.

    A database error that carries its primary message (psycopg's ``diag``) gives that alone,
    without the ``LINE 1:`` excerpt, caret and context lines that follow it."""
    diag = getattr(exc, "diag", None)
    primary = getattr(diag, "message_primary", None) if diag is not None else None
    text = " ".join(str(primary or exc).split()) or type(exc).__name__
    if secret:
        text = text.replace(secret, "****")
    return text


class RowSourceConfig(ConnectorConfig):
    """The settings the database sources share: what to read (a table or a query), once or
    as rows come, by which column, how often, how many rows at once, and the key column.
    Each source adds where the database is."""

    table: str | None = Field(None, description="the table to read (or give `query`)")
    query: str | None = Field(None, description="a SELECT whose rows to read, in place of `table`")
    mode: Literal["snapshot", "incremental"] = Field(
        "snapshot",
        description="snapshot: read every row once, then end; incremental: read new rows as "
        "they come, by `column`, every `interval`",
    )
    column: str | None = Field(
        None,
        description="the column whose value only grows: rows are read in its order and its "
        "last value is the position",
    )
    interval: Duration = Field(
        "1s",  # validated into a timedelta
        validate_default=True,
        description="incremental: how often to look for new rows (more than 0s)",
    )
    batch_size: int = Field(1000, ge=1, le=100_000, description="the most rows in one batch")
    key: str | None = Field(None, description="the column whose value becomes the event key")

    @field_validator("interval")
    @classmethod
    def _some_wait(cls, value: timedelta) -> timedelta:
        if value <= timedelta(0):
            raise ValueError(
                "must be more than 0s (the wait between looks for new rows), such as 1s or 200ms"
            )
        return value

    @model_validator(mode="after")
    def _one_subject(self) -> Self:
        if (self.table is None) == (self.query is None):
            raise ValueError("set exactly one of table or query")
        if self.mode == "incremental" and self.query is not None and self.column is None:
            raise ValueError("column: incremental mode over a query needs a column to follow")
        return self


def check_position(where: str, position: Any, *, by_column: bool) -> None:
    """Refuse a stored ``position`` that another reading made: ``{"after": value}`` is read
    by a column, ``{"rows": count}`` counts rows; None (no position yet) always fits."""
    if position is None:
        return
    wanted = "after" if by_column else "rows"
    if not isinstance(position, dict) or set(position) != {wanted}:
        raise ConnectorError(
            f"{where}: the stored position {position!r} does not fit these settings "
            f"(expected {{{wanted!r}: ...}}); the mode, table, query or column changed"
        )


def keyset_sql(
    select: str, order: str, after: Any, limit: int | None, *, equal: bool, mark: str
) -> tuple[str, list[Any]]:
    """The statement reading the rows of ``select`` (``SELECT … FROM …``) after ``after`` (or
    equal to it) in order of the expression ``order``, at most ``limit`` of them, and its
    parameters; ``mark`` is the driver's placeholder (``?`` or ``%s``). Rows whose ``order``
    is NULL are never read: they have no place in the order."""
    sql = f"{select} WHERE {order} IS NOT NULL"
    params: list[Any] = []
    if after is not None:
        sql += f" AND {order} {'=' if equal else '>'} {mark}"
        params.append(after)
    sql += f" ORDER BY {order}"
    if limit is not None:
        sql += f" LIMIT {mark}"
        params.append(limit)
    return sql, params
