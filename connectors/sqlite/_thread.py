"""One thread per connector instance, owning its SQLite connection.

SQLite calls block, so they run off the event loop; a connection is used from one thread only,
so each instance runs all its calls on a thread of its own, one at a time, in the order made.
A call whose caller was cancelled still runs to its end; its result is dropped.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["DatabaseThread"]

T = TypeVar("T")


class DatabaseThread:
    """Runs functions one after another on one thread of its own."""

    def __init__(self, name: str) -> None:
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=name)

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the thread; its result or its exception."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def shutdown(self) -> None:
        """No more calls; the thread ends once the calls made so far have run."""
        self._executor.shutdown(wait=False)
