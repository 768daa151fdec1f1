"""The query engine: read-only SQL over the topics of a store, run by DuckDB.

Every topic is a table (``topic``, ``partition``, ``record_offset``, ``timestamp``, ``key``,
``headers``, ``value``); see :mod:`.engine` for the columns, :mod:`.pushdown` for which
``WHERE`` clauses narrow what is read, and :mod:`.sandbox` for what a query may not do. DuckDB
and pyarrow come with the ``query`` extra (``pip install 'millstream[query]'``); without them,
running a query raises QueryError saying so.

::

    from millstream.core.query import run_query

    result = run_query(connection, "SELECT key, avg(value.temp) FROM readings GROUP BY key")
    for row in result.as_dicts():
        ...
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = [
    "QueryEngine",
    "QueryResult",
    "ScanBounds",
    "ScanStats",
    "engine_for",
    "run_query",
]

if TYPE_CHECKING:
    from .engine import QueryEngine, QueryResult, engine_for, run_query
    from .scan import ScanBounds, ScanStats


def __getattr__(name: str) -> Any:
    # DuckDB and pyarrow are optional: they are imported when the engine is first used
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    try:
        from . import engine, scan
    except ImportError as exc:
        if exc.name not in ("duckdb", "pyarrow"):
            raise
        from ..errors import QueryError
        from .sandbox import MISSING_DEPENDENCY

        raise QueryError(MISSING_DEPENDENCY) from None
    return getattr(engine if hasattr(engine, name) else scan, name)
