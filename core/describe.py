"""What a connector's ``Config`` model says about its settings: one entry per setting, with
the type as a pipeline author reads it. ``millstream connectors describe`` prints these, and
the settings tables of docs/connectors/*.md are written from them."""

from __future__ import annotations

import types
import typing
from datetime import timedelta
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, SecretBytes, SecretStr
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .connector import ConnectorConfig

__all__ = ["settings_of", "shown_default", "type_text"]


def settings_of(config: type[ConnectorConfig]) -> list[dict[str, Any]]:
    """One entry per field of a connector's Config model: name (its alias when it has one),
    type, default, required, secret, description."""
    settings = []
    for field_name, info in config.model_fields.items():
        secret = _is_secret(info.annotation)
        settings.append(
            {
                "name": info.alias or field_name,
                "type": type_text(info.annotation),
                "default": _default_of(info, secret),
                "required": info.is_required(),
                "secret": secret,
                "description": info.description or "",
            }
        )
    return settings


def _default_of(info: FieldInfo, secret: bool) -> Any:
    if info.is_required():
        return None
    if info.default_factory is not None:
        return "(computed)"
    default = info.default
    if default is PydanticUndefined:
        return None
    if secret and default is not None:
        return "********"
    return orjson.loads(orjson.dumps(default, default=str, option=orjson.OPT_NON_STR_KEYS))


def shown_default(default: Any) -> str:
    return orjson.dumps(default).decode() if not isinstance(default, str) else f'"{default}"'


_TYPE_NAMES: dict[Any, str] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    bytes: "bytes",
    Path: "path",
    SecretStr: "string",
    SecretBytes: "bytes",
    timedelta: "duration",
    dict: "mapping",
    list: "list",
    type(None): "null",
    Any: "any",
}


def type_text(annotation: Any) -> str:
    """A type as a pipeline author reads it: ``integer | null``, ``list of string``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_text(args[0])
    if origin is typing.Literal:
        return " | ".join(orjson.dumps(a).decode() for a in args)
    if origin is typing.Union or origin is types.UnionType:
        return " | ".join(type_text(a) for a in args)
    if origin in (list, tuple, set, frozenset) and args:
        return f"list of {type_text(args[0])}"
    if origin is dict and len(args) == 2:
        return f"mapping of {type_text(args[1])}"
    if annotation in _TYPE_NAMES:
        return _TYPE_NAMES[annotation]
    if origin in _TYPE_NAMES:
        return _TYPE_NAMES[origin]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return getattr(annotation, "__name__", str(annotation))


def _is_secret(annotation: Any) -> bool:
    if annotation in (SecretStr, SecretBytes):
        return True
    return any(_is_secret(a) for a in typing.get_args(annotation))
