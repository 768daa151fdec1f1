"""``dedupe``: let the first event of each key through, drop repeats within a window.

::

    - dedupe: {by: value.order_id, window: 10m, max_keys: 100000}

The key is the value of the ``by`` expression; an event whose key is None passes (it has no
key to compare). The window is measured on the worker's clock from when a key was first seen;
memory is bounded by ``max_keys``: past it, the oldest keys are forgotten early, so a repeat
of one of them would pass. The memory is per worker and starts empty when the worker starts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from millstream.core.event import Event
from millstream.core.step import Rejection, Step, StepContext

from ..expr import ExpressionText
from ..spec import Duration
from ._fields import failure
from ._state import ExpiringKeys, canonical_key

__all__ = ["DedupeArgs", "DedupeStep"]


class DedupeArgs(BaseModel):
    """The argument of ``dedupe``."""

    model_config = ConfigDict(extra="forbid")

    by: ExpressionText = Field(description="the expression whose value identifies repeats")
    window: Duration = Field(description="how long a key is remembered, such as 10m")
    max_keys: int = Field(100_000, ge=1, description="the most keys remembered at once")


class DedupeStep(Step):
    """Drops an event whose key was seen within the window."""

    name = "dedupe"
    Args: ClassVar = DedupeArgs

    def __init__(self, args: DedupeArgs, context: StepContext) -> None:
        super().__init__(args, context)
        self.by = context.expression(args.by, "by")
        window: timedelta = args.window
        self.seen = ExpiringKeys(window.total_seconds(), args.max_keys)

    def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        by, seen = self.by, self.seen
        now = seen.expire()
        add = seen.add
        kept = []
        for event in events:
            try:
                key = by(event)
                if key is None or add(canonical_key(key), now):
                    kept.append(event)
            except Exception as exc:
                rejected.append(Rejection(event, failure(exc)))
        return kept
