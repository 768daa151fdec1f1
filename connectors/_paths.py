"""Dotted paths into JSON values (``data.items``, ``meta.next``, ``$`` for the whole value),
as the connectors' settings and templates name a field of an event's value: the http-poll
source's ``items``, the http sink's URL and the mqtt sink's topic templates
(``{value.device_id}``)."""

from __future__ import annotations

from typing import Any

__all__ = ["MISSING", "check_path", "lookup"]


class _Missing:
    """What :func:`lookup` returns when the path leads nowhere (None is a JSON value)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Any = _Missing()


def _parts(path: str) -> list[str]:
    if path in ("$", ""):
        return []
    if path.startswith("$."):
        path = path[2:]
    return path.split(".")


def check_path(path: str) -> str:
    """``path`` when it is a valid dotted path; ValueError saying what is valid otherwise."""
    if any(not part for part in _parts(path)):
        raise ValueError(
            f"{path!r} is not a dotted path; write names separated by dots, such as "
            "'data.items', or '$' for the whole value"
        )
    return path


def lookup(value: Any, path: str) -> Any:
    """The value at ``path`` inside ``value`` (a number indexes a list), or :data:`MISSING`."""
    for part in _parts(path):
        if isinstance(value, dict):
            if part not in value:
                return MISSING
            value = value[part]
        elif isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(value) <= index < len(value):
                return MISSING
            value = value[index]
        else:
            return MISSING
    return value
