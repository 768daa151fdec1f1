"""Decoded messages: small slotted classes made from a schema, one per structure.

Each API gets a class per message (``MetadataRequest``, ``MetadataResponse``) and one per
nested structure, reachable as an attribute named after the field in CamelCase
(``MetadataResponse.Brokers``, ``ProduceRequest.TopicData.PartitionData``). A class carries the
fields of every version of its API; a field a version does not carry holds its default. The
classes are made, and named as ``__module__``, by the registry.

Why slotted classes rather than dicts: a misspelt field is an ``AttributeError`` instead of a
silent new key, an object is about half the size of a dict with the same fields, and attribute
access reads like the protocol documentation. They are built by generated ``__init__`` functions
that take every field positionally, so the decoder constructs one with a single call.
"""

from __future__ import annotations

from typing import Any, ClassVar

from .schema import Field

__all__ = ["Message", "make_message_class"]


class Message:
    """The base of every decoded message and nested structure.

    Two messages are equal when they are of the same class and every field is equal.
    ``to_dict()`` gives plain dicts and lists (for logs, JSON and tests).
    """

    __slots__ = ()
    _fields: ClassVar[tuple[str, ...]] = ()
    _schema_fields: ClassVar[tuple[Field, ...]] = ()

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # replaced in every generated class
        raise TypeError("Message is abstract; use a class from the protocol registry")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, n) == getattr(other, n) for n in self._fields)

    __hash__ = None  # type: ignore[assignment]  # mutable, like a dataclass with eq

    def __repr__(self) -> str:
        inner = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields)
        return f"{type(self).__qualname__}({inner})"

    def to_dict(self) -> dict[str, Any]:
        """The fields as a dict, nested structures as dicts too."""
        return {n: _plain(getattr(self, n)) for n in self._fields}


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


class _NewList:
    """The default of an array parameter: a fresh empty list per object, not a shared one."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "[]"


_NEW = _NewList()


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def make_message_class(
    name: str, fields: tuple[Field, ...], module: str, qualname: str | None = None
) -> type[Message]:
    """A :class:`Message` subclass for ``fields``, with one nested class per structure field.

    Its ``__init__`` takes every field, positionally in schema order or by keyword, each
    defaulting to the field's default (arrays to a fresh ``[]``).
    """
    qualname = qualname or name
    nested: dict[str, type[Message]] = {}
    for f in fields:
        if f.fields:
            child = _camel(f.name)
            nested[child] = make_message_class(child, f.fields, module, f"{qualname}.{child}")
    names = tuple(f.name for f in fields)
    namespace: dict[str, Any] = {"_NEW": _NEW}
    params = []
    body = []
    for i, f in enumerate(fields):
        if f.type == "array" and f.default is not None:
            params.append(f"{f.name}=_NEW")
            body.append(f"    self.{f.name} = [] if {f.name} is _NEW else {f.name}")
        elif f.type == "struct":
            cls_name = f"_C{i}"
            namespace[cls_name] = nested[_camel(f.name)]
            params.append(f"{f.name}=_NEW")
            body.append(f"    self.{f.name} = {cls_name}() if {f.name} is _NEW else {f.name}")
        else:
            default_name = f"_D{i}"
            namespace[default_name] = f.default_value()
            params.append(f"{f.name}={default_name}")
            body.append(f"    self.{f.name} = {f.name}")
    source = f"def __init__({', '.join(['self', *params])}):\n" + (
        "\n".join(body) if body else "    pass"
    )
    exec(compile(source, f"<message {qualname}>", "exec"), namespace)
    init = namespace["__init__"]
    init.__qualname__ = f"{qualname}.__init__"
    attrs: dict[str, Any] = {
        "__slots__": names,
        "__init__": init,
        "__module__": module,
        "__qualname__": qualname,
        "_fields": names,
        "_schema_fields": fields,
        "__doc__": f"{qualname}: " + (", ".join(names) if names else "no fields") + ".",
        **nested,
    }
    return type(name, (Message,), attrs)
