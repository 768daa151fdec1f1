"""Keyed state that steps keep between batches, bounded in time and in size.

A step that remembers (``dedupe`` now; windowed aggregations later) keeps its memory here, one
instance per route worker. The state lives in memory: it is not shared between workers and
starts empty when a worker starts, so a step that needs more than "recently" must say so.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any

import orjson

__all__ = ["ExpiringKeys", "canonical_key"]


class ExpiringKeys:
    """Keys seen in the last ``window_s`` seconds, at most ``max_keys`` of them.

    A key is kept from when it is first added until its window has passed; when there are more
    than ``max_keys``, the oldest are forgotten early. ``clock`` (monotonic seconds) is for tests.
    """

    def __init__(
        self,
        window_s: float,
        max_keys: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.max_keys = max_keys
        self.clock = clock
        self._until: OrderedDict[Hashable, float] = OrderedDict()
        self.evicted = 0
        """How many keys were forgotten early, because of ``max_keys``."""

    def __len__(self) -> int:
        return len(self._until)

    def expire(self, now: float | None = None) -> float:
        """Forget the keys whose window has passed; gives ``now``."""
        now = self.clock() if now is None else now
        until = self._until
        while until:
            first = next(iter(until.values()))
            if first > now:
                break
            until.popitem(last=False)
        return now

    def add(self, key: Hashable, now: float) -> bool:
        """Add ``key`` unless it is held; True when it was not (it is new in the window)."""
        until = self._until
        if key in until:
            return False
        until[key] = now + self.window_s
        if len(until) > self.max_keys:
            until.popitem(last=False)
            self.evicted += 1
        return True


def canonical_key(value: Any) -> Hashable:
    """``value`` as a dict key that is equal for equal JSON and differs for different JSON:
    ``true``, ``1`` and ``1.0`` are three keys (Python holds them equal), ``{"a": 1, "b": 2}``
    and ``{"b": 2, "a": 1}`` one. Text is itself; anything else its compact JSON with sorted
    keys (bytes, so never equal to a text), or, when it has none (bytes, a set, an integer
    past 64 bits), its type with its value."""
    if value.__class__ is str:
        return value
    try:
        return orjson.dumps(value, option=_CANONICAL)
    except TypeError:
        pass
    try:
        hash(value)
    except TypeError:
        return (type(value).__qualname__, repr(value))
    return (type(value).__qualname__, value)


_CANONICAL = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
