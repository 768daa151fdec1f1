"""``python``: a function of yours, on each event or on each batch.

::

    - python: transforms:enrich                       # transforms.py beside the pipeline file
    - python: {function: mypkg.steps:score, batch: true}

The module is imported once, from the pipeline file's folder or from anywhere Python finds it.
The function may be plain or ``async``.

On each event (the default) it is called with the :class:`~millstream.core.event.Event` and
returns the new value, an ``Event``, a list of values or Events (several events out of one), or
None to drop the event. Async functions run on a batch's events concurrently; the order of the
events is kept. On a batch (``batch: true``) it is called with the list of Events and returns
the list that goes on (values or Events; a value takes the key, headers and time of the event
in its place when the list is as long as the batch, and none otherwise).

An exception rejects the event, or in batch mode the whole batch, with the error.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

from millstream.core.errors import ConfigError
from millstream.core.event import Event
from millstream.core.step import Rejection, Step, StepContext

from ._fields import failure

__all__ = ["PythonArgs", "PythonStep", "load_function"]

_REFERENCE = r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$"

FunctionReference = Annotated[
    str,
    StringConstraints(pattern=_REFERENCE),
    Field(description="module:function, such as transforms:enrich"),
]


class PythonArgs(BaseModel):
    """The argument of ``python`` in its long form."""

    model_config = ConfigDict(extra="forbid")

    function: FunctionReference
    batch: bool = Field(False, description="call it once per batch with the list of events")


def load_function(reference: str, base_dir: Path) -> Callable[..., Any]:
    """The function ``module:function`` names, the module imported from ``base_dir`` first;
    ConfigError saying what is missing."""
    if not re.match(_REFERENCE, reference):
        raise ConfigError(f"{reference!r} is not module:function, such as transforms:enrich")
    module_name, _, attribute = reference.partition(":")
    folder = str(Path(base_dir).resolve())
    added = folder not in sys.path
    if added:
        sys.path.insert(0, folder)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:
        raise ConfigError(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        if added:
            sys.path.remove(folder)
    target: Any = module
    for part in attribute.split("."):
        try:
            target = getattr(target, part)
        except AttributeError:
            raise ConfigError(f"module {module_name!r} has no {attribute!r}") from None
    if not callable(target):
        raise ConfigError(f"{reference!r} is {type(target).__name__}, not a function")
    function: Callable[..., Any] = target
    return function


class PythonStep(Step):
    """Runs a Python function on each event or on each batch."""

    name = "python"
    Args: ClassVar = Annotated[
        PythonArgs,
        BeforeValidator(
            lambda v: {"function": v} if isinstance(v, str) else v,
            json_schema_input_type=FunctionReference | PythonArgs,
        ),
    ]

    def __init__(self, args: PythonArgs, context: StepContext) -> None:
        super().__init__(args, context)
        spec = args
        self.function = load_function(spec.function, context.base_dir)
        self.batch = spec.batch
        self.is_async = inspect.iscoroutinefunction(self.function) or (
            inspect.iscoroutinefunction(getattr(self.function, "__call__", None))  # noqa: B004
        )

    def process(self, events: list[Event], rejected: list[Rejection]) -> Any:
        if self.batch:
            return self._batch(events, rejected)
        if self.is_async:
            return self._each_async(events, rejected)
        function = self.function
        out: list[Event] = []
        for event in events:
            try:
                result = function(event)
                if inspect.isawaitable(result):
                    raise TypeError("returned an awaitable from a function not marked async")
                _collect(event, result, out)
            except Exception as exc:
                rejected.append(Rejection(event, failure(exc)))
        return out

    async def _each_async(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        function = self.function
        results = await asyncio.gather(
            *(function(event) for event in events), return_exceptions=True
        )
        out: list[Event] = []
        for event, result in zip(events, results, strict=True):
            if isinstance(result, BaseException):
                if not isinstance(result, Exception):
                    raise result
                rejected.append(Rejection(event, failure(result)))
                continue
            try:
                _collect(event, result, out)
            except Exception as exc:
                rejected.append(Rejection(event, failure(exc)))
        return out

    async def _batch(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        if not events:
            return events
        try:
            result = self.function(events)
            if inspect.isawaitable(result):
                result = await result
            if result is None:
                return []
            if isinstance(result, Event) or not isinstance(result, list | tuple):
                raise TypeError(
                    f"a batch function must return a list of events, got {type(result).__name__}"
                )
            if len(result) == len(events):  # values in place of the events they came from
                return [
                    item if isinstance(item, Event) else _like(event, item)
                    for event, item in zip(events, result, strict=True)
                ]
            return [item if isinstance(item, Event) else Event(item) for item in result]
        except Exception as exc:
            reason = failure(exc)
            rejected.extend(Rejection(event, reason) for event in events)
            return []


def _like(event: Event, value: Any) -> Event:
    """A new event holding ``value``, with ``event``'s key, headers, time and place."""
    return Event(
        value, event.key, event.headers, event.timestamp, event.topic, event.partition, event.offset
    )


def _collect(event: Event, result: Any, out: list[Event]) -> None:
    if result is None:
        return
    if isinstance(result, Event):
        out.append(result)
    elif isinstance(result, list):
        out.extend(item if isinstance(item, Event) else _like(event, item) for item in result)
    elif result is event.value:
        out.append(event)
    else:
        event.value = result
        out.append(event)
