"""The connectors' backoff: how long to wait before trying something again."""

from __future__ import annotations

import random

__all__ = ["backoff"]


def backoff(attempt: int, initial: float, most: float) -> float:
    """The wait, in seconds, before try ``attempt + 1`` (``attempt`` >= 1): doubling from
    ``initial`` up to ``most``, with up to a fifth of jitter so that many clients do not retry
    in step."""
    delay = min(most, initial * 2 ** (attempt - 1))
    return delay * (0.8 + 0.2 * random.random())
