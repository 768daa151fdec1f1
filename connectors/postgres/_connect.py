"""Reaching PostgreSQL: the optional psycopg import, connecting with retries, a DSN fit to
print, and telling a dropped connection from a refused row."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from millstream.core import ConnectorError

from .._backoff import backoff as shared_backoff
from .._sql import one_line

if TYPE_CHECKING:
    import psycopg

__all__ = [
    "INSTALL_HINT",
    "connect",
    "is_connection_error",
    "is_row_error",
    "one_line",
    "password_of",
    "printable_dsn",
    "psycopg_module",
]

INSTALL_HINT = "the postgres connector needs psycopg: pip install 'millstream[postgres]'"

_FOR_GOOD = re.compile(
    r"does not exist|authentication failed|no pg_hba\.conf entry|no password supplied|"
    r"invalid (connection option|dsn|integer value|sslmode)|missing \"=\"",
    re.IGNORECASE,
)
"""Connection failures that waiting will not mend: a wrong database, user or password, a DSN
that does not parse."""


def psycopg_module() -> Any:
    """psycopg, or a ConnectorError saying how to install it."""
    try:
        import psycopg
    except ImportError:
        raise ConnectorError(INSTALL_HINT) from None
    return psycopg


def printable_dsn(dsn: str) -> str:
    """``dsn`` without its password: ``postgresql://app:****@db:5432/shop``."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        parts = conninfo_to_dict(dsn)
    except Exception:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1****@", dsn) if "@" in dsn else "(a dsn)"
    user = str(parts.get("user", ""))
    secret = ":****" if parts.get("password") else ""
    host = str(parts.get("host", "")) or "localhost"
    port = f":{parts['port']}" if parts.get("port") else ""
    database = str(parts.get("dbname", ""))
    at = f"{user}{secret}@" if user or secret else ""
    return f"postgresql://{at}{host}{port}/{database}"


def is_connection_error(exc: BaseException) -> bool:
    """True for errors worth reconnecting over: a dropped or refused connection, a server
    shutting down, a serialization failure or deadlock."""
    psycopg = psycopg_module()
    return isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError)


def is_row_error(exc: BaseException) -> bool:
    """True for errors a row causes by itself: a constraint, a value the column cannot take."""
    psycopg = psycopg_module()
    return isinstance(exc, psycopg.IntegrityError | psycopg.DataError)


def password_of(dsn: str) -> str | None:
    """The password ``dsn`` holds (to mask it in what is printed), or None."""
    try:
        from psycopg.conninfo import conninfo_to_dict

        value = conninfo_to_dict(dsn).get("password")
    except Exception:
        return None
    return str(value) if value else None


async def connect(
    dsn: str,
    where: str,
    within: float,
    *,
    autocommit: bool = False,
    log: Callable[[str], None] | None = None,
) -> psycopg.AsyncConnection[Any]:
    """A new connection, trying again with backoff for ``within`` seconds while the server
    cannot be reached (it may be restarting); a wrong database, user or password fails at
    once. Errors name the DSN without its password."""
    psycopg = psycopg_module()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    attempt = 0
    while True:
        attempt += 1
        try:
            return await psycopg.AsyncConnection.connect(
                dsn, autocommit=autocommit, connect_timeout=max(2, min(10, int(within) or 2))
            )
        except psycopg.Error as exc:
            reason = one_line(exc, password_of(dsn))
            if isinstance(exc, psycopg.ProgrammingError) or _FOR_GOOD.search(reason):
                raise ConnectorError(
                    f"{where}: dsn: cannot connect to {printable_dsn(dsn)}: {reason}"
                ) from None
            now = loop.time()
            if now >= deadline:
                raise ConnectorError(
                    f"{where}: cannot reach {printable_dsn(dsn)} (tried for {within:g}s): {reason}"
                ) from None
            if log is not None:
                log(f"{where}: cannot reach {printable_dsn(dsn)} yet ({reason}); trying again")
            await asyncio.sleep(min(deadline - now, backoff(attempt)))


def backoff(attempt: int) -> float:
    """The wait before attempt ``attempt + 1``: from 0.1 s doubling to 2 s (the connectors'
    shared backoff)."""
    return shared_backoff(attempt, 0.1, 2.0)
