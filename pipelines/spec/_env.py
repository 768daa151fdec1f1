"""``${VAR}`` substitution in the strings of a pipeline file, as docker-compose does it.

=====================  ================================================================
``${VAR}``             the variable's value; an error when it is not set
``${VAR:-default}``    ``default`` when VAR is unset or empty (``default`` may use ``${…}``)
``${VAR-default}``     ``default`` only when VAR is unset
``${VAR:?message}``    an error saying ``message`` when VAR is unset or empty
``${VAR?message}``     an error saying ``message`` when VAR is unset
``$${``                a literal ``${``
=====================  ================================================================

The result is always a string: ``partitions: ${PARTS}`` gives ``"4"``, which the model turns
into the number 4 where a number is expected, as YAML itself never sees the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

__all__ = ["EnvSubstitutionError", "substitute"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_FORMS = "${VAR}, ${VAR:-default} or ${VAR:?message}"


class EnvSubstitutionError(Exception):
    """A substitution that cannot be made; ``offset`` is where it starts in the string."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset


def substitute(text: str, env: Mapping[str, str], *, base: int = 0) -> str:
    """``text`` with every ``${…}`` replaced from ``env``; ``$${`` becomes ``${``.

    ``base`` is added to offsets in errors (for defaults, which sit inside another string).
    """
    if "$" not in text:
        return text
    out: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        dollar = text.find("$", i)
        if dollar < 0:
            out.append(text[i:])
            break
        out.append(text[i:dollar])
        if text.startswith("$${", dollar):
            out.append("${")
            i = dollar + 3
        elif text.startswith("${", dollar):
            end = _closing_brace(text, dollar + 2)
            if end < 0:
                raise EnvSubstitutionError(
                    f"unterminated {text[dollar:]!r}: close it with '}}' (or write $${{ for a "
                    "literal ${)",
                    base + dollar,
                )
            out.append(_expand(text[dollar + 2 : end], env, base + dollar))
            i = end + 1
        else:
            out.append("$")
            i = dollar + 1
    return "".join(out)


def _closing_brace(text: str, start: int) -> int:
    """The index of the ``}`` that closes a ``${`` whose body starts at ``start``; -1: none."""
    depth = 1
    i = start
    while i < len(text):
        if text.startswith("${", i):
            depth += 1
            i += 2
            continue
        if text[i] == "}":
            depth -= 1
            if depth == 0:
                return i
        i += 1
    return -1


def _expand(body: str, env: Mapping[str, str], offset: int) -> str:
    match = _NAME.match(body)
    if match is None:
        raise EnvSubstitutionError(
            f"'${{{body}}}' names no variable; use {_FORMS} (a name of letters, digits and _)",
            offset,
        )
    name = match.group()
    rest = body[match.end() :]
    value = env.get(name)
    if rest == "":
        if value is None:
            raise EnvSubstitutionError(
                f"environment variable {name!r} is not set; set it, or give a default: "
                f"${{{name}:-default}}",
                offset,
            )
        return value
    empty_counts = rest.startswith(":")
    operator = rest[1:2] if empty_counts else rest[:1]
    argument = rest[2:] if empty_counts else rest[1:]
    missing = value is None or (empty_counts and value == "")
    argument_offset = offset + 2 + len(name) + (2 if empty_counts else 1)
    if operator == "-":
        if missing:
            return substitute(argument, env, base=argument_offset)
        return value or ""
    if operator == "?":
        if missing:
            state = "not set or empty" if empty_counts else "not set"
            reason = substitute(argument, env, base=argument_offset) if argument else ""
            raise EnvSubstitutionError(
                f"environment variable {name!r} is {state}" + (f": {reason}" if reason else ""),
                offset,
            )
        return value or ""
    raise EnvSubstitutionError(f"cannot read '${{{body}}}'; use {_FORMS}", offset)
