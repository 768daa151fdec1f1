"""Processing one batch of a route: its steps in order, then routing to its outputs.

:class:`RouteProcessor` is what the runtime and ``millstream test`` both run; it knows nothing
of the log. Given a batch of decoded events it returns, per output topic, the events to write
and, separately, the events that failed, each with the step that failed it and why.

Routing, after the steps:

- each entry of ``to`` may have a ``when`` expression; an entry without one matches every event;
- ``switch: all`` (the default) sends an event to every entry that matches it, ``switch:
  first`` only to the first;
- an event that no entry matches goes to the ``unmatched`` topic when the route names one,
  and is otherwise dropped (it is not an error);
- an event whose ``when`` raises goes to the dead letters (``to[1].when``) and to no output.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from millstream.core.event import Event
from millstream.core.step import Expression, Rejection, Step, StepContext

from .plan import RoutePlan
from .steps._fields import failure

__all__ = ["DeadLetter", "RouteProcessor", "RouteResult"]


@dataclass(slots=True)
class DeadLetter:
    """An event that failed: ``step`` names where (``steps[1].set``, ``to[0].when``) and
    ``reason`` says why, in one line."""

    event: Event
    step: str
    reason: str


@dataclass(slots=True)
class RouteResult:
    """What one batch became: ``outputs`` maps every output topic of the route (and its
    ``unmatched`` topic) to the events to write there, in input order; ``dead`` holds the
    events that failed."""

    outputs: dict[str, list[Event]]
    dead: list[DeadLetter] = field(default_factory=list)


class RouteProcessor:
    """A route's steps, built once from its plan, and its routing.

    ``process`` may be called for one batch at a time (steps such as ``dedupe`` and
    ``throttle`` keep state between batches); ``close`` releases the steps.
    """

    def __init__(self, plan: RoutePlan, context: StepContext) -> None:
        self.plan = plan
        self.steps: list[tuple[str, Step]] = []
        for i, step_plan in enumerate(plan.steps):
            step = step_plan.step(step_plan.args, context)
            self.steps.append((f"steps[{i}].{step_plan.step.name}", step))
        self.outputs: list[tuple[str, Expression | None]] = [
            (output.topic, output.when) for output in plan.outputs
        ]
        self.first = plan.switch == "first"
        self.unmatched = plan.unmatched
        extra = [self.unmatched] if self.unmatched else []
        self.topics = list(dict.fromkeys([t for t, _ in self.outputs] + extra))
        self.single = (
            self.outputs[0][0] if len(self.outputs) == 1 and self.outputs[0][1] is None else None
        )

    async def process(self, events: list[Event]) -> RouteResult:
        """Run ``events`` through the steps, then route what is left."""
        dead: list[DeadLetter] = []
        for label, step in self.steps:
            if not events:
                break
            rejected: list[Rejection] = []
            result = step.process(events, rejected)
            events = result if result.__class__ is list else await result
            if rejected:
                dead.extend(DeadLetter(r.event, label, r.reason) for r in rejected)
        if self.single is not None:
            return RouteResult({self.single: events}, dead)
        try:
            outputs = self._route(events)
        except Exception:  # a `when` raised: again, one event at a time
            outputs = self._route_each(events, dead)
        return RouteResult(outputs, dead)

    def _route(self, events: list[Event]) -> dict[str, list[Event]]:
        outputs: dict[str, list[Event]] = {topic: [] for topic in self.topics}
        if self.first:
            remaining = events
            for topic, when in self.outputs:
                if not remaining:
                    break
                if when is None:
                    outputs[topic].extend(remaining)
                    remaining = []
                    break
                flags = [bool(when(event)) for event in remaining]
                outputs[topic].extend(e for e, hit in zip(remaining, flags, strict=True) if hit)
                remaining = [e for e, hit in zip(remaining, flags, strict=True) if not hit]
            if self.unmatched:
                outputs[self.unmatched].extend(remaining)
            return outputs
        matched: set[int] | None = set() if self.unmatched else None
        for topic, when in self.outputs:
            chosen = events if when is None else [event for event in events if when(event)]
            outputs[topic].extend(chosen)
            if matched is not None:
                matched.update(map(id, chosen))
        if self.unmatched and matched is not None:
            outputs[self.unmatched].extend(e for e in events if id(e) not in matched)
        return outputs

    def _route_each(self, events: list[Event], dead: list[DeadLetter]) -> dict[str, list[Event]]:
        outputs: dict[str, list[Event]] = {topic: [] for topic in self.topics}
        for event in events:
            targets: list[str] = []
            try:
                for i, (topic, when) in enumerate(self.outputs):
                    at = i
                    if when is None or when(event):
                        targets.append(topic)
                        if self.first:
                            break
            except Exception as exc:
                dead.append(DeadLetter(event, f"to[{at}].when", failure(exc)))
                continue
            if not targets and self.unmatched:
                targets.append(self.unmatched)
            for topic in targets:
                outputs[topic].append(event)
        return outputs

    async def close(self) -> None:
        """Close every step, in order; the first error is raised after all are closed."""
        error: BaseException | None = None
        for _, step in self.steps:
            try:
                await step.close()
            except Exception as exc:
                error = error or exc
        if error is not None:
            raise error
