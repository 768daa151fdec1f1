"""A store with known records for the query tests, written once per module.

``readings`` (json, 2 partitions, small segments): 2,000 records, record ``n`` keyed
``dev-{n % 5}`` with value ``{"device_id", "temp": 20 + n % 10, "n", "location": {"lat", "lon"}}``
and timestamp ``T0 + n`` seconds; every 100th also has ``"extra": "x"``, every 50th a header
``src: gen``. ``logs`` (text), ``blobs`` (bytes), ``mixed`` (json whose rows disagree, one of
them not JSON) and ``empty`` (json, no records) are small.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from query_data import fill


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("query") / "store"
    asyncio.run(fill(path))
    return path


@pytest.fixture(scope="module")
def engine(store_dir: Path):
    from millstream.core.log import LogStore
    from millstream.core.query import QueryEngine

    store = LogStore.open(store_dir, read_only=True)
    yield QueryEngine(store, allow=[store_dir.parent])
    asyncio.run(store.close())
