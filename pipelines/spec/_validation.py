"""Validating part of a YAML document against a pydantic type, errors located in the file.

:func:`validate_node` runs pydantic on a value read by :func:`~._document.read_yaml` and turns
the first error (in file order) into a one-line :class:`ConfigError` at the line and column of
the key or value at fault, with a message a person can act on: "unknown key 'patitions'; did you
mean 'partitions'? valid keys: …", "expected a whole number, got 'four'".

Values of fields typed :class:`pydantic.SecretStr` (or ``SecretBytes``) never appear in a
message: their input is not shown, and their text is blanked wherever else it turns up.
"""

from __future__ import annotations

import difflib
import functools
import re
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, SecretBytes, SecretStr, TypeAdapter, ValidationError

from millstream.core.errors import ConfigError

from ._document import Positions, YamlPath

__all__ = ["validate_node"]

_HIDDEN = "**********"
_HINTS = {
    "from": "; name the topic(s) it reads: `from: TOPIC` or `from: [A, B]`",
    "to": "; name the topic(s) it writes: `to: TOPIC` or `to: [A, B]`",
    "connector": "; name the connector to use (`millstream plugins list` shows them)",
    "pipeline": "; give the pipeline a name: `pipeline: NAME`",
    "topic": "; name the topic: `{topic: NAME, when: EXPRESSION}`",
}
_EXPECTED = {
    "int_type": "expected a whole number",
    "int_parsing": "expected a whole number",
    "int_from_float": "expected a whole number",
    "float_type": "expected a number",
    "float_parsing": "expected a number",
    "bool_type": "expected true or false",
    "bool_parsing": "expected true or false",
    "string_type": "expected text",
    "bytes_type": "expected text",
    "dict_type": "expected a mapping (key: value)",
    "model_type": "expected a mapping (key: value)",
    "model_attributes_type": "expected a mapping (key: value)",
    "list_type": "expected a list",
    "tuple_type": "expected a list",
    "set_type": "expected a list",
    "frozen_set_type": "expected a list",
    "none_required": "expected nothing (null)",
}


def validate_node(
    type_: Any,
    value: Any,
    positions: Positions,
    path: YamlPath = (),
    *,
    context: Mapping[str, Any] | None = None,
) -> Any:
    """``value`` (the YAML value found at ``path``) validated as ``type_``.

    ``type_`` is anything pydantic validates (a model, ``list[int]``, an ``Annotated`` type).
    On failure raises ConfigError at the file position of the first wrong key or value, in
    file order, with the full YAML path (``path`` + where inside ``value``).
    """
    try:
        return _adapter(type_).validate_python(value, context=dict(context or {}))
    except ValidationError as exc:
        raise _located(exc, type_, value, positions, path) from None


@functools.lru_cache(maxsize=512)
def _cached_adapter(type_: Any) -> TypeAdapter[Any]:
    return TypeAdapter(type_)


def _adapter(type_: Any) -> TypeAdapter[Any]:
    try:
        return _cached_adapter(type_)
    except TypeError:  # an unhashable type expression
        return TypeAdapter(type_)


def _located(
    exc: ValidationError, type_: Any, value: Any, positions: Positions, base: YamlPath
) -> ConfigError:
    secrets = list(_secret_values(type_, value, ()))
    secret_paths = [p for p, _ in secrets]
    problems: dict[tuple[YamlPath, bool], list[tuple[str, bool, str, Any, bool]]] = {}
    for error in exc.errors(include_url=False):
        raw_path, at_key, missing = _raw_path(
            value, tuple(error["loc"]), error["type"] == "missing"
        )
        at_key = at_key or error["type"] == "extra_forbidden"
        show_input = not any(raw_path[: len(p)] == p for p in secret_paths)
        message = _message(error, type_, missing)
        problems.setdefault((raw_path + ((missing,) if missing else ()), at_key), []).append(
            (message, at_key, missing or "", error.get("input"), show_input)
        )

    def order(item: tuple[tuple[YamlPath, bool], list[Any]]) -> tuple[bool, int, int]:
        """Unknown keys first (a misspelt key also makes a required one missing), then file
        order."""
        (path, _), entries = item
        full = base + (path[:-1] if entries[0][2] else path)
        where = positions.key(full) if entries[0][1] else positions.value(full)
        unknown = entries[0][0].startswith("unknown key")
        return not unknown, where.line, where.column

    (path, _), entries = min(problems.items(), key=order)
    message, at_key, missing, given, show_input = entries[0]
    expected = [m for m, *_ in entries]
    if len(entries) > 1 and all(m.startswith("expected ") for m in expected):
        unique = list(dict.fromkeys(m.removeprefix("expected ") for m in expected))
        message = "expected " + " or ".join(unique)
    if message.startswith("expected ") and show_input:
        message += f", got {_shown(given)}"
    message = _scrub(message, [secret for _, secret in secrets])
    if missing:
        return positions.error(message, base + path[:-1], at_key=True)
    return positions.error(message, base + path, at_key=at_key)


def _raw_path(value: Any, loc: tuple[Any, ...], missing: bool) -> tuple[YamlPath, bool, str | None]:
    """The path in the YAML value that a pydantic ``loc`` names.

    Parts of ``loc`` that the value does not have are union tags (``'str'``, ``'list[str]'``)
    and are skipped, except the last key of a ``missing`` error (returned third). ``[key]``
    means the error is about a key itself: the position is then the key's.
    """
    path: list[str | int] = []
    current = value
    for i, part in enumerate(loc):
        if part == "[key]":
            return tuple(path), True, None
        if (isinstance(current, dict) and isinstance(part, str) and part in current) or (
            isinstance(current, list)
            and isinstance(part, int)
            and not isinstance(part, bool)
            and 0 <= part < len(current)
        ):
            path.append(part)
            current = current[part]  # type: ignore[index]
        elif missing and i == len(loc) - 1 and isinstance(part, str):
            return tuple(path), False, part
    return tuple(path), False, None


def _message(error: Mapping[str, Any], type_: Any, missing: str | None) -> str:
    kind = error["type"]
    ctx = error.get("ctx") or {}
    loc = tuple(error["loc"])
    if kind == "missing":
        name = missing or str(loc[-1])
        return f"missing required key {name!r}" + _HINTS.get(name, "")
    if kind == "extra_forbidden":
        return _unknown_key(str(loc[-1]), _valid_keys(type_, loc[:-1]))
    if kind in _EXPECTED:
        return _EXPECTED[kind]
    if kind in ("literal_error", "enum"):
        return f"expected {ctx.get('expected', 'one of the listed values')}"
    if kind == "greater_than_equal":
        return f"must be {ctx['ge']} or more"
    if kind == "greater_than":
        return f"must be more than {ctx['gt']}"
    if kind == "less_than_equal":
        return f"must be {ctx['le']} or less"
    if kind == "less_than":
        return f"must be less than {ctx['lt']}"
    if kind in ("too_short", "string_too_short"):
        least = ctx.get("min_length", 1)
        if least == 1:
            return "must not be empty"
        return f"needs at least {least} {'characters' if kind.startswith('string') else 'items'}"
    if kind in ("too_long", "string_too_long"):
        most = ctx.get("max_length")
        return f"may have at most {most} {'characters' if kind.startswith('string') else 'items'}"
    if kind == "string_pattern_mismatch":
        return f"does not match the pattern {ctx.get('pattern')}"
    text = str(error.get("msg", "not valid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        text = text.removeprefix(prefix)
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _unknown_key(key: str, valid: list[str] | None) -> str:
    if valid is None:
        return f"unknown key {key!r}"
    if not valid:
        return f"unknown key {key!r}; nothing may be set here"
    close = difflib.get_close_matches(key, valid, n=1, cutoff=0.6)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r}; {hint}valid keys: {', '.join(valid)}"


def _valid_keys(type_: Any, loc: tuple[Any, ...]) -> list[str] | None:
    """The keys the model found at ``loc`` inside ``type_`` accepts (None: not a model)."""
    current = type_
    for part in loc:
        current = _child_type(current, part)
    for member in _members(current):
        if isinstance(member, type) and issubclass(member, BaseModel):
            return [field.alias or name for name, field in member.model_fields.items()]
    return None


def _members(type_: Any) -> list[Any]:
    """A type with Annotated, Optional and Union taken apart."""
    origin = typing.get_origin(type_)
    if origin is typing.Annotated:
        return _members(typing.get_args(type_)[0])
    if origin is typing.Union or origin is types.UnionType:
        return [m for arg in typing.get_args(type_) for m in _members(arg)]
    return [type_]


def _child_type(type_: Any, part: Any) -> Any:
    """The type of ``part`` (a key, an index) inside ``type_``; ``type_`` itself when ``part``
    is a union tag that names no child."""
    for member in _members(type_):
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(part, str):
            for name, field in member.model_fields.items():
                if part in (name, field.alias):
                    return field.annotation
        origin = typing.get_origin(member)
        args = typing.get_args(member)
        if origin in (dict, Mapping) and isinstance(part, str) and len(args) == 2:
            return args[1]
        if origin in (list, tuple, Sequence, set, frozenset) and isinstance(part, int) and args:
            return args[0]
    return type_


def _secret_values(type_: Any, raw: Any, path: YamlPath) -> typing.Iterator[tuple[YamlPath, str]]:
    """Every (path, text) in ``raw`` that lands in a secret field of ``type_``."""
    if raw is None:
        return
    for member in _members(type_):
        if member in (SecretStr, SecretBytes):
            yield from ((path, text) for text in _scalars(raw))
            continue
        if isinstance(member, type) and issubclass(member, BaseModel) and isinstance(raw, dict):
            for name, field in member.model_fields.items():
                key = field.alias or name
                if key in raw:
                    yield from _secret_values(field.annotation, raw[key], (*path, key))
            continue
        origin = typing.get_origin(member)
        args = typing.get_args(member)
        if origin in (dict, Mapping) and isinstance(raw, dict) and len(args) == 2:
            for key, item in raw.items():
                yield from _secret_values(args[1], item, (*path, key))
        elif origin in (list, tuple, Sequence) and isinstance(raw, list) and args:
            for i, item in enumerate(raw):
                yield from _secret_values(args[0], item, (*path, i))


def _scalars(raw: Any) -> typing.Iterator[str]:
    """The text of every scalar in ``raw`` (at least one entry, so the path is known)."""
    if isinstance(raw, dict):
        for item in raw.values():
            yield from _scalars(item)
    elif isinstance(raw, list):
        for item in raw:
            yield from _scalars(item)
    elif isinstance(raw, bytes):
        yield raw.decode(errors="replace")
    else:
        yield str(raw)
    yield ""


def _scrub(message: str, secrets: list[str]) -> str:
    for secret in sorted(set(secrets), key=len, reverse=True):
        if not secret:
            continue
        if len(secret) >= 8:
            message = message.replace(secret, _HIDDEN)
        else:
            message = re.sub(
                rf"(?<![A-Za-z0-9]){re.escape(secret)}(?![A-Za-z0-9])", _HIDDEN, message
            )
    return message


def _shown(value: Any) -> str:
    if value is None:
        return "nothing (null)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:37] + "..."
        return repr(text)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    return f"a {type(value).__name__}"
