"""``throttle``: hold a route to a rate; events wait, none is dropped.

::

    - throttle: {rate: 100, per: 1s}

A token bucket holding up to ``rate`` tokens (a burst of at most one ``per`` of events): each
event takes one, and a batch that finds too few waits until its share has accrued. Because the
route waits, its consumer reads no further meanwhile: the rate holds upstream as back-pressure.
"""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from millstream.core.event import Event
from millstream.core.step import Rejection, Step, StepContext

from ..spec import Duration

__all__ = ["ThrottleArgs", "ThrottleStep"]


class ThrottleArgs(BaseModel):
    """The argument of ``throttle``."""

    model_config = ConfigDict(extra="forbid")

    rate: float = Field(gt=0, description="how many events may pass per `per`")
    per: Duration = Field(
        "1s", validate_default=True, description="the period of `rate` (default 1s)"
    )


class ThrottleStep(Step):
    """Delays batches so that no more than ``rate`` events pass per ``per`` on average."""

    name = "throttle"
    Args: ClassVar = ThrottleArgs

    def __init__(self, args: ThrottleArgs, context: StepContext) -> None:
        super().__init__(args, context)
        seconds = args.per.total_seconds()
        if seconds <= 0:
            from millstream.core.errors import ConfigError

            raise ConfigError("throttle: per must be longer than 0", path="per")
        self.per_second = args.rate / seconds
        self.capacity = max(args.rate, 1.0)
        self.tokens = self.capacity
        self.last = time.monotonic()

    async def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.last) * self.per_second)
        self.last = now
        self.tokens -= len(events)
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.per_second)
        return events
