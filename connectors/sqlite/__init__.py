"""The ``sqlite`` connector: a source reading rows of a SQLite table or query (a snapshot, or
new rows as they come) and a sink inserting or upserting events as rows (its table made and
grown with sqlite-utils), each instance working on a thread of its own.
"""

from __future__ import annotations

from ._sink import SqliteSink, SqliteSinkConfig
from ._source import SqliteSource, SqliteSourceConfig

__all__ = ["SqliteSink", "SqliteSinkConfig", "SqliteSource", "SqliteSourceConfig"]
