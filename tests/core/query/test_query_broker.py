"""Queries over a ``millstream broker``: the topics read through the network client."""

from __future__ import annotations

import asyncio
import json

import orjson

from millstream.core.cli import main
from millstream.core.client import connect
from millstream.core.record import Record


async def fill(url: str) -> None:
    async with await connect(url) as conn:
        await conn.admin().create_topic("readings", 2)
        async with conn.producer() as producer:
            records = [
                Record(f"dev-{n % 3}".encode(), orjson.dumps({"n": n, "temp": 20 + n % 10}))
                for n in range(300)
            ]
            await producer.send_batch("readings", records)


def test_a_query_over_a_broker(broker, capsys) -> None:
    url = f"millstream://{broker.bootstrap}"
    asyncio.run(fill(url))
    capsys.readouterr()
    status = main(
        [
            "query",
            "--store",
            url,
            "--format",
            "json",
            "SELECT key, count(*) AS n, max(value.temp) AS hottest FROM readings "
            "GROUP BY key ORDER BY key",
        ]
    )
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert [json.loads(line) for line in out.splitlines()] == [
        {"key": "dev-0", "n": 100, "hottest": 29},
        {"key": "dev-1", "n": 100, "hottest": 29},
        {"key": "dev-2", "n": 100, "hottest": 29},
    ]
    status = main(
        [
            "query",
            "--store",
            url,
            "--stats",
            "SELECT count(*) FROM readings WHERE partition = 1 AND record_offset < 10",
        ]
    )
    out, err = capsys.readouterr()
    assert status == 0, err
    assert out.split()[-1] == "10"
    assert "10 of 300 records" in err
