"""Fixtures for the event-log tests: real stores in temporary directories."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from millstream.core.log import LogStore
from millstream.core.record import Record


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[LogStore]:
    log_store = LogStore.open(tmp_path / "data")
    yield log_store
    await log_store.close()


def make_records(n: int, *, start: int = 0, size: int = 20, key: bool = True) -> list[Record]:
    """``n`` records with distinct values (``v<i>`` padded to ``size`` bytes)."""
    return [
        Record(
            key=f"k{i % 10}".encode() if key else None,
            value=f"v{i}".encode().ljust(size, b"."),
            timestamp=1_700_000_000_000 + i,
        )
        for i in range(start, start + n)
    ]


@pytest.fixture(name="records")
def records_fixture():
    """The :func:`make_records` factory."""
    return make_records
