"""What a compiled expression may call: the whitelisted functions and the field readers.

Everything here is reached only through the names the compiler puts into an expression's
globals; the expression itself cannot name anything else.
"""

from __future__ import annotations

import functools
import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson

__all__ = [
    "FUNCTIONS",
    "MAX_INT_BITS",
    "MAX_ITERATIONS",
    "MAX_SEQUENCE",
    "bounded_lshift",
    "bounded_mul",
    "bounded_pow",
    "field",
    "headers_text",
    "item",
    "iterations",
    "key_text",
    "regex",
    "searcher",
    "text_mod",
]

MAX_INT_BITS = 100_000
"""The largest integer (in bits) ``**`` and ``<<`` may make: far above any real number, far
below one that would stall a worker."""

MAX_SEQUENCE = 10_000_000
"""The longest string or list ``*`` may make by repetition."""

MAX_ITERATIONS = 1_000_000
"""The most items the comprehensions of one evaluation of an expression may go through, all
together (``for a in x for b in y`` goes through ``len(x) × len(y)``)."""


# --- field reads ---------------------------------------------------------------------------


def field(base: Any, name: str) -> Any:
    """``base.name``: the field of a dict, None for anything else (a missing field too)."""
    if isinstance(base, dict):
        return base.get(name)
    return None


def item(base: Any, index: Any) -> Any:
    """``base[index]``: a dict's field, a list's, tuple's or string's element or slice; None
    when there is no such field or element, or when ``base`` holds none."""
    if isinstance(base, dict):
        return None if index.__class__ is slice else base.get(index)
    if isinstance(base, list | tuple | str | bytes):
        if index.__class__ is slice:
            return base[index]
        if isinstance(index, int):
            try:
                return base[index]
            except IndexError:
                return None
    return None


def key_text(key: Any) -> str | None:
    """The record key as text (UTF-8, bad bytes replaced), None when absent."""
    if key is None or key.__class__ is str:
        return key
    return bytes(key).decode("utf-8", "replace")


def headers_text(headers: Any) -> dict[str, str]:
    """The headers as a dict name → text (the last of repeated names wins)."""
    return {
        name: value.decode("utf-8", "replace") if isinstance(value, bytes) else value
        for name, value in headers
    }


# --- bounded arithmetic --------------------------------------------------------------------


def _int_bits(value: Any) -> int:
    return abs(value).bit_length() if isinstance(value, int) else 0


def _too_large_int(bits: float) -> OverflowError:
    return OverflowError(
        f"the result would be an integer of about {int(bits):,} bits, over the limit of "
        f"{MAX_INT_BITS:,}"
    )


def bounded_pow(base: Any, exponent: Any) -> Any:
    """``base ** exponent``; OverflowError, before computing anything, when an integer result
    would be over :data:`MAX_INT_BITS` bits (estimated as ``exponent × log2(|base|)``)."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 1 and abs(base) > 1:
        if exponent > MAX_INT_BITS:  # |base| ≥ 2: at least one bit per unit of exponent
            raise _too_large_int(exponent)
        bits = exponent * math.log2(abs(base))
        if bits > MAX_INT_BITS:
            raise _too_large_int(bits)
    return base**exponent


def bounded_lshift(value: Any, shift: Any) -> Any:
    """``value << shift``; OverflowError when the result would be over :data:`MAX_INT_BITS`
    bits."""
    if isinstance(shift, int) and shift > 0 and isinstance(value, int) and value:
        bits = _int_bits(value) + shift
        if bits > MAX_INT_BITS:
            raise _too_large_int(bits)
    return value << shift


def bounded_mul(left: Any, right: Any) -> Any:
    """``left * right``; OverflowError when a repeated string, bytes, list or tuple would be
    longer than :data:`MAX_SEQUENCE` or a product of integers over :data:`MAX_INT_BITS` bits."""
    if left.__class__ is float or right.__class__ is float:
        return left * right
    if isinstance(left, int) and isinstance(right, int):
        bits = _int_bits(left) + _int_bits(right)
        if bits > MAX_INT_BITS + 1:
            raise _too_large_int(bits)
        return left * right
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, str | bytes | list | tuple) and isinstance(times, int):
            items = len(seq) * times
            if items > MAX_SEQUENCE:
                raise OverflowError(
                    f"repeating {len(seq):,} items {times:,} times would make {items:,}, "
                    f"over the limit of {MAX_SEQUENCE:,}"
                )
    return left * right


def text_mod(left: Any, right: Any) -> Any:
    """``left % right`` for numbers; TypeError for text on the left: printf-style formatting
    is not available (its widths and precisions come from the data)."""
    if isinstance(left, str | bytes | bytearray):
        raise TypeError("'%' formatting of text is not available; use an f-string or str()")
    return left % right


def iterations(budget: list[int], iterable: Any) -> Any:
    """``iterable``, its items counted against ``budget`` (``[items left]``, one per evaluation
    of an expression); OverflowError once the comprehensions of that evaluation would go
    through more than :data:`MAX_ITERATIONS` items. A sized iterable is counted whole, up
    front, so a comprehension costs nothing per item."""
    try:
        size = len(iterable)
    except TypeError:
        return _counted(budget, iterable)  # not sized: counted as it goes (or not iterable)
    budget[0] -= size
    if budget[0] < 0:
        raise _too_many_iterations()
    return iterable


def _counted(budget: list[int], iterable: Any) -> Any:
    for item in iterable:
        budget[0] -= 1
        if budget[0] < 0:
            raise _too_many_iterations()
        yield item


def _too_many_iterations() -> OverflowError:
    return OverflowError(
        f"the comprehensions would go through more than {MAX_ITERATIONS:,} items in one evaluation"
    )


# --- the whitelisted functions -------------------------------------------------------------


def lower(text: Any) -> Any:
    """``text`` in lower case; None stays None."""
    return None if text is None else text.lower()


def upper(text: Any) -> Any:
    """``text`` in upper case; None stays None."""
    return None if text is None else text.upper()


def startswith(text: Any, prefix: Any) -> bool:
    """Whether ``text`` begins with ``prefix`` (False when ``text`` is None)."""
    return text is not None and text.startswith(prefix)


def endswith(text: Any, suffix: Any) -> bool:
    """Whether ``text`` ends with ``suffix`` (False when ``text`` is None)."""
    return text is not None and text.endswith(suffix)


def contains(container: Any, part: Any) -> bool:
    """Whether ``part`` is in ``container`` (text, list or object keys; False when None)."""
    return container is not None and part in container


@functools.lru_cache(maxsize=256)
def regex(pattern: str | bytes) -> re.Pattern[Any]:
    """``pattern`` compiled, once per distinct pattern."""
    return re.compile(pattern)


def match(text: Any, pattern: Any) -> bool:
    """Whether the regular expression ``pattern`` matches anywhere in ``text`` (False when
    ``text`` is None); anchor it with ``^`` and ``$`` to match the whole text."""
    return text is not None and regex(pattern).search(text) is not None


def searcher(pattern: re.Pattern[Any]) -> Callable[[Any, Any], bool]:
    """``match`` for a pattern known when the expression is compiled."""
    search = pattern.search

    def match_compiled(text: Any, _pattern: Any = None) -> bool:
        return text is not None and search(text) is not None

    return match_compiled


def now() -> int:
    """The current time, in milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def parse_time(text: Any, format: Any = None) -> int | None:
    """``text`` as milliseconds since the epoch: ISO 8601 (``2024-05-01T12:00:00Z``), or the
    ``strptime`` ``format`` when given. A time without a zone is UTC; None stays None."""
    if text is None:
        return None
    if isinstance(text, bytes):
        text = text.decode()
    if not isinstance(text, str):
        raise TypeError(f"parse_time needs text, got {type(text).__name__}")
    try:
        moment = (
            datetime.fromisoformat(text.strip())
            if format is None
            else datetime.strptime(text, format)
        )
    except ValueError:
        how = "an ISO 8601 time" if format is None else f"a time in the format {format!r}"
        raise ValueError(f"{text[:60]!r} is not {how}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def json(value: Any) -> Any:
    """JSON text (str or bytes) → the value it holds; any other value → its compact JSON text."""
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            raise ValueError(f"not valid JSON: {exc}") from None
    return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "len": (len, 1, 1),
    "str": (str, 0, 1),
    "int": (int, 0, 2),
    "float": (float, 0, 1),
    "round": (round, 1, 2),
    "abs": (abs, 1, 1),
    "min": (min, 1, None),
    "max": (max, 1, None),
    "any": (any, 1, 1),
    "all": (all, 1, 1),
    "sum": (sum, 1, 2),
    "lower": (lower, 1, 1),
    "upper": (upper, 1, 1),
    "startswith": (startswith, 2, 2),
    "endswith": (endswith, 2, 2),
    "contains": (contains, 2, 2),
    "match": (match, 2, 2),
    "now": (now, 0, 0),
    "parse_time": (parse_time, 1, 2),
    "json": (json, 1, 1),
}
"""Every function an expression may call: name → (function, fewest arguments, most (None: no
limit))."""
