"""Long polls that time out or are cancelled leave nothing behind on an idle partition."""

from __future__ import annotations

import asyncio

from millstream.core.log import LogStore


async def test_timed_out_and_cancelled_waits_are_forgotten(tmp_path) -> None:
    store = LogStore.open(tmp_path / "data")
    try:
        partition = store.create_topic("idle", 1).partition(0)
        for _ in range(50):
            assert await partition.wait_for_data(0, 0.001) is False
        task = asyncio.ensure_future(partition.wait_for_data(0, 10))
        await asyncio.sleep(0.01)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert partition._data_waiters == []
    finally:
        await store.close()
