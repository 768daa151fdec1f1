"""Retries with exponential backoff and full jitter."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ..plan import Retry

__all__ = ["Exhausted", "delay", "retrying"]

T = TypeVar("T")


class Exhausted(Exception):
    """Every attempt failed: ``error`` is the last failure, ``attempts`` how many were made."""

    def __init__(self, error: BaseException, attempts: int) -> None:
        super().__init__(f"{error} (after {attempts} attempt{'s' if attempts != 1 else ''})")
        self.error = error
        self.attempts = attempts


def delay(retry: Retry, attempt: int, rng: random.Random | None = None) -> float:
    """The wait before retry number ``attempt`` (1-based): uniform in
    ``[0, min(max_s, initial_s * 2**(attempt-1))]`` ("full jitter")."""
    cap = min(retry.max_s, retry.initial_s * (2 ** (attempt - 1)))
    return (rng or random).uniform(0, cap)


async def retrying(
    operation: Callable[[], Awaitable[T]],
    retry: Retry,
    on_failure: Callable[[BaseException, int], None] | None = None,
) -> T:
    """Run ``operation`` until it succeeds or ``retry.max_attempts`` attempts have failed,
    waiting :func:`delay` between attempts; then raise :class:`Exhausted`.

    ``on_failure(error, attempt)`` is told of every failed attempt (for logs and counters).
    Cancellation is never retried.
    """
    attempt = 0
    while True:
        attempt += 1
        try:
            return await operation()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if on_failure is not None:
                on_failure(exc, attempt)
            if attempt >= retry.max_attempts:
                raise Exhausted(exc, attempt) from exc
            await asyncio.sleep(delay(retry, attempt))
