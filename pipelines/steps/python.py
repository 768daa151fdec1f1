"""``python``: a function of yours, on each event or on each batch.

::

    - python: transforms:enrich                       # transforms.py beside the pipeline file
    - python: {function: mypkg.steps:score, batch: true}

The module is imported once: from a file beside the pipeline file (under a name unique to that
file, so that two pipelines' ``transforms.py`` stay apart), or else from anywhere Python finds
it. The function may be plain or ``async``.

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
import hashlib
import importlib
import importlib.machinery
import importlib.util
import inspect
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
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
    """The function ``module:function`` names; ConfigError saying what is missing.

    A module beside the pipeline file (``base_dir/transforms.py``, or a package folder
    ``base_dir/mypkg/`` for ``mypkg.steps``) is loaded from its file under a name of its own,
    unique to that path, so that pipelines in different folders each get their own
    ``transforms``; loaded once per path. Any other module is imported as Python finds it.
    """
    if not re.match(_REFERENCE, reference):
        raise ConfigError(f"{reference!r} is not module:function, such as transforms:enrich")
    module_name, _, attribute = reference.partition(":")
    folder = Path(base_dir).resolve()
    try:
        module = _import_beside(module_name, folder)
        if module is None:
            module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(f"cannot import module {module_name!r}: {exc}") from None
    except Exception as exc:
        raise ConfigError(
            f"importing module {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from None
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


def _import_beside(module_name: str, folder: Path) -> ModuleType | None:
    """The module ``module_name`` from a file or package in ``folder``, or None when there is
    none there. Its first part is loaded under a name unique to its path; the rest (``steps``
    in ``mypkg.steps``) is imported within it. ``folder`` is on ``sys.path`` meanwhile, so the
    module can import its neighbours."""
    top, _, rest = module_name.partition(".")
    package = folder / top
    file = folder / f"{top}.py"
    init = package / "__init__.py"
    location: Path
    if init.is_file():  # Python's order in one folder: package, module, namespace folder
        location = init
    elif file.is_file() and not rest:
        location = file
    elif package.is_dir() and not _installed(top):
        location = package
    else:
        return None
    digest = hashlib.sha256(str(location).encode()).hexdigest()[:12]
    unique = f"_millstream_local_{digest}_{top}"
    added = str(folder) not in sys.path
    if added:
        sys.path.insert(0, str(folder))
    try:
        if unique not in sys.modules:
            _load(unique, location)
        return importlib.import_module(f"{unique}.{rest}" if rest else unique)
    finally:
        if added:
            sys.path.remove(str(folder))


def _installed(name: str) -> bool:
    """Whether Python finds a top-level module ``name`` without the pipeline's folder."""
    if name in sys.modules:
        return True
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        return False


def _load(name: str, location: Path) -> None:
    """Load the module file, package ``__init__.py`` or package folder at ``location`` into
    ``sys.modules[name]``; nothing is left there when it fails."""
    if location.is_dir():  # a package folder without __init__.py
        spec = importlib.machinery.ModuleSpec(name, None, is_package=True)
        spec.submodule_search_locations = [str(location)]
    else:
        search = [str(location.parent)] if location.name == "__init__.py" else None
        found = importlib.util.spec_from_file_location(
            name, location, submodule_search_locations=search
        )
        if found is None or found.loader is None:
            raise ImportError(f"cannot load {str(location)!r}")
        spec = found
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        if spec.loader is not None:
            spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise


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
