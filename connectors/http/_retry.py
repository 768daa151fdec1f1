"""When to try an HTTP request again: which answers are worth it, and how long they ask to
wait (the backoff itself is :func:`millstream.connectors._backoff.backoff`)."""

from __future__ import annotations

import email.utils
import time

__all__ = ["retry_after", "worth_retrying"]


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
