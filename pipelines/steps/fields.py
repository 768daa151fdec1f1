"""Steps that reshape an event's value (a JSON object): ``set``, ``drop``, ``keep``, ``rename``.

::

    - set: {temp_f: "value.temp * 9 / 5 + 32", site.checked: "True", version: 2}
    - drop: [debug, raw.payload]
    - keep: [device, temp_f, site.name]
    - rename: {temp: celsius, loc: site.location}

Field paths are relative to the value: ``site.name`` is ``value["site"]["name"]``; a name with a
dot in it is written in brackets, ``tags["a.b"]``. Values are changed in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

from pydantic import AfterValidator, Field

from millstream.core.event import Event
from millstream.core.step import Rejection, Step, StepContext

from ..expr import ExpressionText, compile_expressions, compile_update
from ._fields import (
    MISSING,
    FieldPath,
    FieldPathText,
    check_path,
    failure,
    parse_path,
    pop_path,
    read_path,
    set_path,
)

__all__ = ["DropStep", "KeepStep", "RenameStep", "SetStep"]


def _not_an_object(step: str, value: Any) -> str:
    kind = "nothing (null)" if value is None else type(value).__name__
    return f"{step} needs a JSON object value, got {kind}"


def _constant_text(value: Any) -> str:
    """A YAML scalar given to ``set`` as an expression giving it."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    return repr(value)


class SetStep(Step):
    """Sets fields to the values of expressions; nested paths make the dicts they need.

    Every expression sees the value as it was before the step (``set: {a: "1", b: "value.a"}``
    sets b to the old a); a YAML number, true/false or null is set as it is. An event whose
    value is not a JSON object, or whose expression raises, is rejected and left unchanged.
    """

    name = "set"
    Args: ClassVar = Annotated[
        dict[FieldPathText, ExpressionText | bool | int | float | None], Field(min_length=1)
    ]

    def __init__(self, args: dict[str, Any], context: StepContext) -> None:
        super().__init__(args, context)
        texts = []
        for path, text in args.items():
            if isinstance(text, str):
                simple = path if path.replace("_", "").isalnum() else ""
                context.expression(text, simple)  # located errors, should it be invalid
                texts.append(text)
            else:
                texts.append(_constant_text(text))
        self.paths = [parse_path(path) for path in args]
        if all(len(path) == 1 for path in self.paths):  # one generated function does it all
            self.update: Callable[[Event], None] | None = compile_update(
                {path[0]: text for path, text in zip(self.paths, texts, strict=True)}
            )
        else:
            self.update = None
            self.compute = compile_expressions(texts)

    def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        update = self.update
        kept: list[Event] = []
        append = kept.append
        for event in events:
            value = event.value
            if value.__class__ is not dict and not isinstance(value, dict):
                rejected.append(Rejection(event, _not_an_object("set", value)))
                continue
            try:
                if update is not None:
                    update(event)
                else:
                    self._set_paths(event, value)
            except Exception as exc:
                rejected.append(Rejection(event, failure(exc)))
                continue
            append(event)
        return kept

    def _set_paths(self, event: Event, value: dict[str, Any]) -> None:
        results = self.compute(event)
        for path in self.paths:  # check first, so that a failure changes nothing
            check_path(value, path)
        for path, result in zip(self.paths, results, strict=True):
            set_path(value, path, result)


class DropStep(Step):
    """Removes fields; a field that is not there, or a value that is no object, is left alone."""

    name = "drop"
    Args: ClassVar = Annotated[list[FieldPathText], Field(min_length=1)]

    def __init__(self, args: list[str], context: StepContext) -> None:
        super().__init__(args, context)
        self.paths = [parse_path(path) for path in args]
        self.top = (
            tuple(path[0] for path in self.paths)
            if all(len(path) == 1 for path in self.paths)
            else None
        )

    def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        top, paths = self.top, self.paths
        for event in events:
            value = event.value
            if not isinstance(value, dict):
                continue
            if top is not None:
                pop = value.pop
                for name in top:
                    pop(name, None)
            else:
                for path in paths:
                    pop_path(value, path)
        return events


class KeepStep(Step):
    """Keeps only the listed fields (nested paths keep their place); the rest is removed.
    A listed field that is not there is not made; a value that is no object is rejected."""

    name = "keep"
    Args: ClassVar = Annotated[list[FieldPathText], Field(min_length=1)]

    def __init__(self, args: list[str], context: StepContext) -> None:
        super().__init__(args, context)
        self.paths = [parse_path(path) for path in args]

    def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        paths = self.paths
        kept: list[Event] = []
        for event in events:
            value = event.value
            if not isinstance(value, dict):
                rejected.append(Rejection(event, _not_an_object("keep", value)))
                continue
            new: dict[str, Any] = {}
            for path in paths:
                found = read_path(value, path)
                if found is not MISSING:
                    set_path(new, path, found)
            event.value = new
            kept.append(event)
        return kept


def _inside(path: FieldPath, outer: FieldPath) -> bool:
    """Whether ``path`` is ``outer`` or a field within it."""
    return path[: len(outer)] == outer


def _shown(path: FieldPath) -> str:
    return ".".join(path)


def _distinct_moves(moves: dict[str, str]) -> dict[str, str]:
    """Refuse renames that collide: one field renamed twice, or within another renamed
    field; two fields renamed to one place, or one into the other's new place."""
    olds = [(text, parse_path(text)) for text in moves]
    news = [(text, parse_path(new)) for text, new in moves.items()]
    for i, (text_a, a) in enumerate(olds):
        for text_b, b in olds[i + 1 :]:
            if a == b:
                raise ValueError(f"{_shown(a)} is renamed twice ({text_a!r} and {text_b!r})")
            if _inside(a, b) or _inside(b, a):
                inner, outer = (a, b) if _inside(a, b) else (b, a)
                raise ValueError(f"{_shown(inner)} is inside {_shown(outer)}, which is renamed too")
    for i, (text_a, a) in enumerate(news):
        for text_b, b in news[i + 1 :]:
            if a == b:
                raise ValueError(f"{text_a} and {text_b} are both renamed to {_shown(a)}")
            if _inside(a, b) or _inside(b, a):
                inner, outer = (a, b) if _inside(a, b) else (b, a)
                raise ValueError(
                    f"{_shown(inner)} is inside {_shown(outer)}: two renames to one place"
                )
    return moves


class RenameStep(Step):
    """Moves fields to new paths (``old: new``), making the dicts the new path needs. All
    the fields are taken out first and then put in their new places, so ``{a: b, b: a}``
    swaps them. A field that is not there is skipped; a value that is no object is left alone.

    An event is rejected, and left unchanged, when a new path holds a field that stays (one
    not renamed away: renaming onto it would lose it) or runs through something that is not an
    object. Renames that collide in every event (two to one place) are refused when checking.
    """

    name = "rename"
    Args: ClassVar = Annotated[
        dict[FieldPathText, FieldPathText], Field(min_length=1), AfterValidator(_distinct_moves)
    ]

    def __init__(self, args: dict[str, str], context: StepContext) -> None:
        super().__init__(args, context)
        self.moves = [(parse_path(old), parse_path(new)) for old, new in args.items()]

    def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        kept = []
        for event in events:
            value = event.value
            if isinstance(value, dict):
                try:
                    self._move(value)
                except (TypeError, ValueError) as exc:
                    rejected.append(Rejection(event, failure(exc)))
                    continue
            kept.append(event)
        return kept

    def _move(self, value: dict[str, Any]) -> None:
        """Move the fields of ``value``, or raise without changing it."""
        moving = [
            (old, new, found)
            for old, new in self.moves
            if (found := read_path(value, old)) is not MISSING
        ]
        if not moving:
            return
        vacated = [old for old, _, _ in moving]
        for old, new, _ in moving:
            _check_free(value, old, new, vacated)
        for old, _, _ in moving:
            pop_path(value, old)
        for _, new, found in moving:
            set_path(value, new, found)


def _check_free(
    value: dict[str, Any], old: FieldPath, new: FieldPath, vacated: list[FieldPath]
) -> None:
    """Raise when ``new`` cannot take the field from ``old`` once the ``vacated`` fields are
    taken out: it holds a field that stays (ValueError), or runs through something that is not
    an object (TypeError)."""
    inner: Any = value
    for depth in range(1, len(new) + 1):
        if any(_inside(new[:depth], gone) for gone in vacated):
            return  # emptied by this step: the rest of the path is made
        if not isinstance(inner, dict):
            raise TypeError(
                f"cannot set {_shown(new)}: {_shown(new[: depth - 1])} is "
                f"{type(inner).__name__}, not an object"
            )
        inner = inner.get(new[depth - 1], MISSING)
        if inner is MISSING or (inner is None and depth < len(new)):
            return
    raise ValueError(
        f"cannot rename {_shown(old)} to {_shown(new)}: {_shown(new)} is there already "
        "(drop it first, or rename it too)"
    )
