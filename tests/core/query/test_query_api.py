"""``run_query``: the function behind ``millstream query`` (and later ``POST /query``), on a
connection the caller already holds."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from millstream.core.client import connect
from millstream.core.errors import QueryError
from millstream.core.query import run_query
from millstream.core.record import Record


async def test_on_the_writing_connection_while_it_writes(tmp_path: Path) -> None:
    async with await connect(f"file:{tmp_path / 'store'}") as conn:
        await conn.admin().create_topic("events", 2)
        async with conn.producer() as producer:
            await producer.send_batch(
                "events", [Record(b"a", b'{"x": %d}' % i) for i in range(500)]
            )
            more = producer.send_batch(
                "events", [Record(b"b", b'{"x": %d}' % i) for i in range(500, 1000)]
            )
            result = await asyncio.to_thread(
                run_query, conn, "SELECT count(*), min(value.x) FROM events", 10, 5.0
            )
            count, low = result.rows[0]
            assert 500 <= count <= 1000 and low == 0  # what was acknowledged when it began
            await more
        result = await asyncio.to_thread(
            run_query, conn, "SELECT key, count(*) FROM events GROUP BY 1 ORDER BY 1"
        )
        assert result.rows == [("a", 500), ("b", 500)]
        assert result.as_dicts()[0] == {"key": "a", "count_star()": 500}
        (stats,) = result.stats
        assert stats.records_read == 1000


async def test_row_and_time_limits_and_the_allowed_folders(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text("a\n1\n2\n")
    async with await connect(f"file:{tmp_path / 'store'}") as conn:
        with pytest.raises(QueryError, match="more than 1 rows"):
            run_query(conn, "SELECT * FROM range(5)", max_rows=1)
        with pytest.raises(QueryError, match="Permission Error"):
            run_query(conn, f"SELECT * FROM '{tmp_path / 't.csv'}'")
        allowed = run_query(conn, f"SELECT sum(a) FROM '{tmp_path / 't.csv'}'", allow=[tmp_path])
        assert allowed.rows == [(3,)]
