"""Steps that change an event's record rather than its value: ``key`` and ``timestamp``.

::

    - key: value.device_id                  # re-key: the partition follows the new key
    - timestamp: parse_time(value.time)     # event time from the data

A key is stored as :func:`~millstream.core.event.key_bytes` stores it: text as its UTF-8
bytes, a number as its decimal text, None as no key, anything else as compact JSON.

A timestamp expression may give an ``int`` (milliseconds since the epoch), a ``float``
(seconds since the epoch, with a fraction) or text (ISO 8601, read as ``parse_time`` reads it;
UTC when it names no zone). Anything else, or a time outside years 1970–9999, rejects the event.
"""

from __future__ import annotations

from typing import Any, ClassVar

from millstream.core.event import Event, key_bytes
from millstream.core.step import Rejection, Step, StepContext

from ..expr import ExpressionText
from ..expr._functions import parse_time
from ._fields import failure

__all__ = ["KeyStep", "TimestampStep", "to_milliseconds"]

_LAST_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z


class _AssignStep(Step):
    """A step that sets one part of each event from an expression; an event whose expression
    raises, or whose result ``assign`` refuses, is rejected with the reason."""

    Args: ClassVar = ExpressionText

    def __init__(self, args: str, context: StepContext) -> None:
        super().__init__(args, context)
        self.compute = context.expression(args)

    @staticmethod
    def assign(event: Event, result: Any) -> None:
        raise NotImplementedError

    def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        compute, assign = self.compute, self.assign
        kept = []
        for event in events:
            try:
                assign(event, compute(event))
            except Exception as exc:
                rejected.append(Rejection(event, failure(exc)))
                continue
            kept.append(event)
        return kept


class KeyStep(_AssignStep):
    """Sets each event's key to the value of an expression."""

    name = "key"

    @staticmethod
    def assign(event: Event, result: Any) -> None:
        event.key = key_bytes(result)


def to_milliseconds(moment: Any) -> int:
    """A timestamp expression's result as milliseconds since the epoch (see the module's
    rules); ValueError or TypeError saying what was wrong."""
    if isinstance(moment, bool) or moment is None:
        raise TypeError(f"a timestamp must be a number or a time text, got {moment!r}")
    if isinstance(moment, int):
        ms = moment
    elif isinstance(moment, float):
        ms = round(moment * 1000)
    elif isinstance(moment, str | bytes):
        ms = parse_time(moment)  # type: ignore[assignment]
    else:
        raise TypeError(f"a timestamp must be a number or a time text, got {type(moment).__name__}")
    if not 0 <= ms <= _LAST_MS:
        hint = " (a float is read as seconds)" if isinstance(moment, float) else ""
        raise ValueError(f"timestamp {moment!r} is outside years 1970 to 9999{hint}")
    return ms


class TimestampStep(_AssignStep):
    """Sets each event's time (milliseconds since the epoch) from an expression."""

    name = "timestamp"

    @staticmethod
    def assign(event: Event, result: Any) -> None:
        event.timestamp = to_milliseconds(result)
