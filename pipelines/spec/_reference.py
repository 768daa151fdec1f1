"""The key tables of docs/pipelines.md, written from the models so that they never drift.

The document marks each table with ``<!-- keys: ModelName -->`` … ``<!-- end keys -->``;
:func:`update_reference` rewrites what lies between. Run it after changing a model::

    python -m millstream.pipelines.spec._reference docs/pipelines.md
"""

from __future__ import annotations

import re
import sys
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from millstream.core.duration import Duration, RetentionMs, format_duration

from ._models import (
    ExpressionText,
    FileSpec,
    Name,
    Outputs,
    OutputSpec,
    RetrySpec,
    RouteSpec,
    SinkSpec,
    SourceSpec,
    StepEntry,
    TopicName,
    TopicNames,
    TopicSpec,
)

__all__ = ["MODELS", "key_table", "update_reference"]

MODELS: dict[str, tuple[type[BaseModel], str, str]] = {
    "FileSpec": (FileSpec, "the-file", "pipeline file"),
    "TopicSpec": (TopicSpec, "topics", "topic settings"),
    "SourceSpec": (SourceSpec, "sources", "source"),
    "RouteSpec": (RouteSpec, "routes", "route"),
    "OutputSpec": (OutputSpec, "routing-by-content", "`{topic, when}`"),
    "SinkSpec": (SinkSpec, "sinks", "sink"),
    "RetrySpec": (RetrySpec, "retry", "retry settings"),
}
"""Each documented model, by the name its marker uses: the anchor of its section, and what a
link to it says."""

_NAMED: list[tuple[Any, str]] = [
    (Name, "name"),
    (TopicName, "topic"),
    (TopicNames, "topic or list of topics"),
    (Outputs, "topic, list of topics, or list of `{topic, when}`"),
    (Duration, "duration"),
    (RetentionMs, "duration or `forever`"),
    (StepEntry, "`NAME: ARGUMENT`"),
    (ExpressionText, "expression"),
]
_MARKER = re.compile(r"(<!-- keys: (\w+) -->\n)(.*?)(<!-- end keys -->)", re.DOTALL)


def key_table(model: type[BaseModel]) -> str:
    """The Markdown table of ``model``'s keys: key, type, default, meaning."""
    hints = typing.get_type_hints(model, include_extras=True)
    rows = ["| key | type | default | meaning |", "|---|---|---|---|"]
    own = [name for name in model.model_fields if name in vars(model).get("__annotations__", {})]
    shared = [name for name in model.model_fields if name not in own]
    for name in own + shared:  # a model's own keys first, then those it shares with others
        field = model.model_fields[name]
        key = field.alias or name
        kind = _type_text(hints[name])
        rows.append(f"| `{key}` | {kind} | {_default_text(field)} | {field.description or ''} |")
    return "\n".join(rows) + "\n"


def update_reference(text: str) -> str:
    """``text`` with every marked table written anew from its model."""

    def table(match: re.Match[str]) -> str:
        model = MODELS[match.group(2)][0]
        return match.group(1) + key_table(model) + match.group(4)

    return _MARKER.sub(table, text)


def _type_text(annotation: Any) -> str:
    for known, text in _NAMED:
        if annotation == known:
            return text
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_text(args[0])
    if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
        members = [a for a in args if a is not type(None)]
        return " or ".join(_type_text(a) for a in members)
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is dict:
        value = _type_text(args[1])
        if value == "anything":
            return "mapping"
        return f"mapping of {_type_text(args[0])} → {value}"
    if origin is list:
        item = _type_text(args[0])
        return "list" if item == "anything" else f"list of {item}"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        anchor, label = next((a, t) for m, a, t in MODELS.values() if m is annotation)
        return f"[{label}](#{anchor})"
    return {int: "integer", str: "text", float: "number", bool: "boolean"}.get(
        annotation, "anything"
    )


def _default_text(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()  # type: ignore[call-arg]
        if isinstance(value, BaseModel):
            return "see below"
        return f"`{value!r}`" if value else "empty"
    value = field.default
    if value is None:
        return "—"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, timedelta):
        return f"`{format_duration(value)}`"
    return f"`{value}`"


def main(argv: list[str]) -> int:
    for name in argv:
        path = Path(name)
        path.write_text(update_reference(path.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
