"""The read-only sandbox every query runs in.

Two locks, so that a query sent over the network one day can do no harm:

1. :func:`check_statement` lets through one statement, and only a ``SELECT`` (``WITH``,
   ``FROM``-first, ``DESCRIBE``, ``SUMMARIZE`` and ``SHOW`` are SELECTs to DuckDB) or an
   ``EXPLAIN`` of one. ``INSERT``, ``UPDATE``, ``DELETE``, ``CREATE``, ``DROP``, ``COPY``,
   ``EXPORT``, ``ATTACH``, ``INSTALL``, ``LOAD``, ``SET``, ``PRAGMA``, ``CALL`` and the rest are
   refused by name.
2. :func:`sandboxed_connection` opens an in-memory DuckDB whose file access is off
   (``enable_external_access=false``) except for reading the allowed folders
   (``allowed_directories``), with extensions neither installed nor loaded on demand, Python
   objects not found by name, the time zone UTC, and the configuration locked
   (``lock_configuration``) so that nothing inside a query can undo any of it.

Each connection also has bounds on what one query may take: ``memory_limit``
(:data:`DEFAULT_MAX_MEMORY`: a quarter of the machine's memory) and, for what does not fit in
it, ``max_temp_directory_size`` (:data:`DEFAULT_MAX_TEMP_DISK`: 4 GiB) of temporary files in a
folder of its own under the system's temporary folder, which DuckDB removes when the connection
closes.
"""

from __future__ import annotations

import os
import re
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from ..errors import QueryError

__all__ = [
    "DEFAULT_MAX_MEMORY",
    "DEFAULT_MAX_TEMP_DISK",
    "MISSING_DEPENDENCY",
    "check_statement",
    "load_duckdb",
    "sandboxed_connection",
]

MISSING_DEPENDENCY = (
    "queries need DuckDB and pyarrow, which are not installed; install them with "
    "pip install 'millstream[query]'"
)

_MIB = 1024 * 1024


def _machine_memory() -> int | None:
    """The bytes of memory this process may use: the machine's, or its control group's limit
    when that is lower; None when neither can be read."""
    try:
        total: int | None = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        total = None
    try:
        with open("/sys/fs/cgroup/memory.max") as limit:
            text = limit.read().strip()
    except OSError:
        text = ""
    if text.isdigit():
        total = int(text) if total is None else min(total, int(text))
    return total


def _default_max_memory() -> int:
    memory = _machine_memory()
    return 1024 * _MIB if memory is None else max(256 * _MIB, memory // 4)


DEFAULT_MAX_MEMORY = _default_max_memory()
"""The memory one query may use unless told otherwise: a quarter of the machine's (at least
256 MiB; 1 GiB when the machine's cannot be read)."""

DEFAULT_MAX_TEMP_DISK = 4 * 1024 * _MIB
"""The disk one query may fill with what does not fit in its memory, unless told otherwise."""

_EXPLAIN = re.compile(r"^\s*explain\s*(\([^)]*\))?(\s*analy[sz]e\b)?", re.IGNORECASE)


def load_duckdb() -> Any:
    """The ``duckdb`` module, or QueryError saying how to install it."""
    try:
        import duckdb
        import pyarrow  # noqa: F401
    except ImportError:
        raise QueryError(MISSING_DEPENDENCY) from None
    return duckdb


def check_statement(sql: str) -> bool:
    """Refuse anything but one read-only statement; return True when it is an EXPLAIN.

    Raises QueryError naming the kind of statement refused.
    """
    duckdb = load_duckdb()
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error:
        return False  # not valid SQL: the parse that follows reports where
    if not statements:
        raise QueryError("the query is empty; give a SELECT statement")
    if len(statements) > 1:
        raise QueryError(
            f"one statement at a time, please: the query holds {len(statements)}; "
            "remove the ones after the first ';'"
        )
    kind = statements[0].type.name
    if kind == "SELECT":
        return False
    if kind == "EXPLAIN":
        inner = _EXPLAIN.sub("", sql, count=1)
        try:
            inner_kinds = [s.type.name for s in duckdb.extract_statements(inner)]
        except duckdb.Error:
            inner_kinds = []
        if inner != sql and inner_kinds == ["SELECT"]:
            return True
        raise QueryError("EXPLAIN works on SELECT statements only")
    word = _statement_word(sql) or kind
    raise QueryError(
        f"queries are read-only: {word} statements are not allowed; "
        "ask with SELECT (or EXPLAIN SELECT)"
    )


def _statement_word(sql: str) -> str:
    match = re.match(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*([A-Za-z]+)", sql, re.DOTALL)
    return match.group(1).upper() if match else ""


def allowed_directories(folders: Iterable[str | os.PathLike[str]]) -> list[str]:
    """The folders a query may read files from, resolved, each ending in a separator."""
    out = []
    for folder in folders:
        path = Path(folder).expanduser().resolve()
        if not path.is_dir():
            raise QueryError(f"--allow {str(folder)!r}: no such folder")
        out.append(str(path).rstrip(os.sep) + os.sep)
    return out


def sandboxed_connection(
    allow: Iterable[str | os.PathLike[str]] = (),
    threads: int | None = None,
    *,
    max_memory: int = DEFAULT_MAX_MEMORY,
    max_temp_disk: int = DEFAULT_MAX_TEMP_DISK,
) -> Any:
    """An in-memory DuckDB connection that can read only the ``allow`` folders' files, and
    whose queries use at most ``max_memory`` bytes of memory and ``max_temp_disk`` bytes of
    temporary files (0: none; a query that needs more raises DuckDB's OutOfMemoryException)."""
    duckdb = load_duckdb()
    folders = allowed_directories(allow)
    if max_memory <= 0 or max_temp_disk < 0:
        raise QueryError(
            f"a query's memory limit must be above 0 and its temporary disk limit 0 or more; "
            f"got {max_memory} and {max_temp_disk} bytes"
        )
    spill = os.path.join(tempfile.gettempdir(), f"millstream-query-{uuid.uuid4().hex}")
    config: dict[str, str | bool | int] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "memory_limit": f"{max_memory}B",
        "max_temp_directory_size": f"{max_temp_disk}B",
        "temp_directory": spill,  # made on the first spill, removed with the connection
    }
    if threads:
        config["threads"] = threads
    con = duckdb.connect(":memory:", config=config)
    try:
        listed = ", ".join("'" + f.replace("'", "''") + "'" for f in folders)
        con.execute(f"SET allowed_directories = [{listed}]")
        con.execute("SET enable_external_access = false")
        con.execute("SET python_enable_replacements = false")
        con.execute("SET TimeZone = 'UTC'")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con
