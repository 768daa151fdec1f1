"""The ``postgres`` connector: a source reading rows of a PostgreSQL table or query (a
snapshot, or new rows as they come) and a sink upserting events as rows (``INSERT … ON
CONFLICT``) or appending them with ``COPY``, both through psycopg 3's asyncio API.

psycopg is an optional dependency (``pip install 'millstream[postgres]'``): this package
imports without it, and a pipeline that uses the connector says how to install it.
"""

from __future__ import annotations

from ._sink import PostgresSink, PostgresSinkConfig
from ._source import PostgresSource, PostgresSourceConfig

__all__ = ["PostgresSink", "PostgresSinkConfig", "PostgresSource", "PostgresSourceConfig"]
