"""When to try an HTTP request again: which answers are worth it, and how long to wait."""

from __future__ import annotations

import email.utils
import random
import time

__all__ = ["backoff", "retry_after", "worth_retrying"]


def worth_retrying(status: int) -> bool:
    """True for answers that may succeed later: 408, 429 and every 5xx."""
    return status in (408, 429) or status >= 500


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds a ``Retry-After`` header asks to wait (delay-seconds or an HTTP date), or None
    when there is none or it cannot be read."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def backoff(attempt: int, initial: float, most: float) -> float:
    """The wait before try ``attempt + 1`` (``attempt`` >= 1): doubling from ``initial`` up to
    ``most``, with up to a fifth of jitter so that many clients do not retry in step."""
    delay = min(most, initial * 2 ** (attempt - 1))
    return delay * (0.8 + 0.2 * random.random())
