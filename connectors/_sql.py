"""SQL helpers the database connectors share: quoting names, errors as one line, and the
password of a connection string (to keep it out of what is printed)."""

from __future__ import annotations

__all__ = ["one_line", "quote"]


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
