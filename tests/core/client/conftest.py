"""Fixtures for the client tests: real embedded stores in temporary directories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from millstream.core.client import Connection, connect


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"file:{tmp_path / 'data'}"


@pytest.fixture
async def conn(url: str) -> AsyncIterator[Connection]:
    connection = await connect(url)
    yield connection
    await connection.close()
