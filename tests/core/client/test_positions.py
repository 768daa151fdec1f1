"""Source positions: kept in __source_positions, durable, newest wins, survive a reopen."""

from __future__ import annotations

from pathlib import Path

import pytest

from millstream.core.client import connect
from millstream.core.errors import InvalidTopicError, ReadOnlyStoreError


async def test_a_position_survives_a_restart_and_the_newest_wins(tmp_path: Path) -> None:
    url = f"file:{tmp_path}"
    async with await connect(url) as conn:
        positions = conn.positions()
        assert await positions.get("p/src") is None
        await positions.put("p/src", b"1")
        await positions.put("p/src", b"2")
        await positions.put("p/other", b"x")
        await positions.put("p/other", None)
    async with await connect(url) as conn:
        positions = conn.positions()
        assert await positions.get("p/src") == b"2"
        assert await positions.get("p/other") is None
        assert await positions.keys() == ["p/src"]


async def test_a_reader_in_another_process_sees_positions_but_cannot_write(tmp_path: Path) -> None:
    url = f"file:{tmp_path}"
    async with await connect(url) as writer:
        await writer.positions().put("p/src", b"7")
        async with await connect(url, read_only=True) as reader:
            assert await reader.positions().get("p/src") == b"7"
            await writer.positions().put("p/src", b"8")
            assert await reader.positions().get("p/src") == b"8"
            with pytest.raises(ReadOnlyStoreError):
                await reader.positions().put("p/src", b"9")


async def test_clients_cannot_write_the_positions_topic(tmp_path: Path) -> None:
    async with await connect(f"file:{tmp_path}") as conn:
        await conn.positions().put("p/src", b"1")
        async with conn.producer() as producer:
            with pytest.raises(InvalidTopicError):
                producer.send("__source_positions", b"forged", key=b"p/src")
