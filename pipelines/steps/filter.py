"""``filter``: keep the events for which an expression is true.

::

    - filter: value.temp is not None and -50 < value.temp < 150

An event whose expression raises (``value.temp > 5`` when temp is missing: None > 5) is
rejected with the error, and goes to the dead-letter topic.
"""

from __future__ import annotations

from typing import ClassVar

from millstream.core.event import Event
from millstream.core.step import Rejection, Step, StepContext

from ..expr import ExpressionText
from ._fields import failure

__all__ = ["FilterStep"]


class FilterStep(Step):
    """Keeps the events whose expression is truthy; drops the others."""

    name = "filter"
    Args: ClassVar = ExpressionText

    def __init__(self, args: str, context: StepContext) -> None:
        super().__init__(args, context)
        self.test = context.expression(args)

    def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        test = self.test
        try:
            return [event for event in events if test(event)]
        except Exception:
            pass  # one event raised: go again, one at a time, to reject just those
        kept = []
        for event in events:
            try:
                if test(event):
                    kept.append(event)
            except Exception as exc:
                rejected.append(Rejection(event, failure(exc)))
        return kept
