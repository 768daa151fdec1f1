"""Field paths, as steps name fields: ``temp``, ``site.name``, ``tags["a.b"]``.

A path is read from the event's value (a dict for JSON): its parts are separated by dots, and a
part holding a dot (or any other character) is written in brackets and quotes. Setting a path
makes the dicts along it that are missing; a part that exists but is not a dict is an error.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, Field

__all__ = [
    "MISSING",
    "FieldPath",
    "FieldPathText",
    "check_path",
    "failure",
    "parse_path",
    "pop_path",
    "read_path",
    "set_path",
]

FieldPath = tuple[str, ...]

_PART = re.compile(
    r"""\.?(?:([^.\[\]"']+)|\[\s*"((?:[^"\\]|\\.)*)"\s*\]|\[\s*'((?:[^'\\]|\\.)*)'\s*\])"""
)


class _Missing:
    """What a read of a path that is not there gives, where None is a value that is there."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def parse_path(text: str) -> FieldPath:
    """``'site.name'`` → ``("site", "name")``; ``'tags["a.b"]'`` → ``("tags", "a.b")``.
    ValueError, saying how to write one, when ``text`` is not a field path."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("a field path must not be empty; write one such as site.name")
    parts: list[str] = []
    position = 0
    text = text.strip()
    while position < len(text):
        found = _PART.match(text, position)
        if found is None or (found.group(0).startswith(".") and position == 0):
            raise ValueError(
                f"{text!r} is not a field path; write one such as site.name, or "
                'site["a.b"] for a name holding a dot'
            )
        plain, double, single = found.groups()
        part = plain if plain is not None else double if double is not None else single
        parts.append(part.replace('\\"', '"').replace("\\'", "'"))
        position = found.end()
    return tuple(parts)


def _check(text: str) -> str:
    parse_path(text)
    return text


FieldPathText = Annotated[
    str,
    AfterValidator(_check),
    Field(description='a field of the value: name, site.name, or tags["a.b"]'),
]
"""A pydantic field type for a field path, checked when the pipeline file is validated."""


def read_path(value: Any, path: FieldPath) -> Any:
    """The field at ``path`` in ``value``, or :data:`MISSING`."""
    for part in path:
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def check_path(value: dict[str, Any], path: FieldPath) -> None:
    """TypeError when :func:`set_path` would fail for ``path``; changes nothing."""
    for i, part in enumerate(path[:-1]):
        value = value.get(part)  # type: ignore[assignment]
        if value is None:
            return
        if not isinstance(value, dict):
            _not_settable(path, i, value)


def _not_settable(path: FieldPath, i: int, inner: Any) -> None:
    where = ".".join(path[: i + 1])
    raise TypeError(
        f"cannot set {'.'.join(path)}: {where} is {type(inner).__name__}, not an object"
    )


def set_path(value: dict[str, Any], path: FieldPath, item: Any) -> None:
    """Put ``item`` at ``path``, making missing dicts on the way; TypeError when a part on
    the way is something else."""
    for i, part in enumerate(path[:-1]):
        inner = value.get(part)
        if inner is None:
            inner = value[part] = {}
        elif not isinstance(inner, dict):
            _not_settable(path, i, inner)
        value = inner
    value[path[-1]] = item


def pop_path(value: Any, path: FieldPath) -> Any:
    """Remove the field at ``path`` and give it, or :data:`MISSING` when it is not there."""
    for part in path[:-1]:
        if not isinstance(value, dict):
            return MISSING
        value = value.get(part)
    if not isinstance(value, dict):
        return MISSING
    return value.pop(path[-1], MISSING)


def failure(exc: BaseException) -> str:
    """One line saying why an event failed: ``TypeError: '>' not supported ...``."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
