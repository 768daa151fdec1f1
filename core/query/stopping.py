"""When a query must stop: :class:`QueryStop`, shared by the engine and the scans of one query.

A query stops at its time limit or when it is interrupted (Ctrl-C, :meth:`QueryEngine.interrupt
<millstream.core.query.engine.QueryEngine.interrupt>`). DuckDB hears it through
``connection.interrupt()``; a scan that waits for a broker hears it through
:meth:`QueryStop.wait`, which gives up the wait as soon as the query is stopped, so a broker that
stopped answering cannot hold a query past its time limit.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from typing import TypeVar

from ..errors import QueryError

__all__ = ["STOPPED", "QueryStop", "time_limit_message"]

T = TypeVar("T")

STOPPED = "the query was stopped before it finished"
"""Why an interrupted query stopped."""

_SLICE_S = 0.05
"""How often a wait looks at whether its query was interrupted."""


def time_limit_message(timeout: float, doing: str = "") -> str:
    """Why a query stopped at its time limit of ``timeout`` seconds (``doing``: while doing
    what, e.g. ``" while connecting to millstream://host:9092"``)."""
    return (
        f"the query was stopped at its time limit of {timeout:g} s{doing}; "
        "allow it more with --timeout"
    )


class QueryStop:
    """The time limit and the interruption of one query.

    ``timeout`` (seconds, None: no limit) counts from ``started`` (a ``time.monotonic()``;
    default now), so a caller that spent part of the limit before the query (connecting to a
    broker) passes when it began. Thread-safe: DuckDB's threads, the scans and the caller read
    it at once.
    """

    def __init__(self, timeout: float | None = None, *, started: float | None = None) -> None:
        self.timeout = timeout
        begun = time.monotonic() if started is None else started
        self.expires = None if timeout is None else begun + timeout
        self._event = threading.Event()
        self._reason: str | None = None

    @property
    def reason(self) -> str | None:
        """Why the query stopped (a one-line message), or None while it may run."""
        if self._reason is None and self.expires is not None and time.monotonic() >= self.expires:
            self.expire()
        return self._reason

    @property
    def stopped(self) -> bool:
        return self.reason is not None

    def remaining(self) -> float | None:
        """Seconds left before the time limit (None: no limit; never below 0)."""
        if self.expires is None:
            return None
        return max(0.0, self.expires - time.monotonic())

    def expire(self) -> None:
        """The time limit is reached."""
        self._stop(time_limit_message(self.timeout or 0))

    def interrupt(self) -> None:
        """Stop the query (unless it already stopped)."""
        self._stop(STOPPED)

    def _stop(self, reason: str) -> None:
        if self._reason is None:
            self._reason = reason
        self._event.set()

    def check(self) -> None:
        """Raise QueryError saying why, once the query is stopped."""
        reason = self.reason
        if reason is not None:
            raise QueryError(reason)

    def wait(self, future: concurrent.futures.Future[T]) -> T:
        """``future``'s result, waiting no longer than the query may run: once it is stopped,
        the future is cancelled and QueryError says why."""
        while not future.done():
            reason = self.reason
            if reason is not None:
                future.cancel()
                raise QueryError(reason)
            remaining = self.remaining()
            slice_s = _SLICE_S if remaining is None else min(_SLICE_S, remaining)
            concurrent.futures.wait([future], timeout=slice_s)
        return future.result()
