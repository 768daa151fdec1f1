"""How an API's messages are described: fields with version ranges, as data.

A schema reads like Kafka's own message definitions. Each field names the versions it exists in
(``"3+"``, ``"0-4"``, ``"5"``, ``"none"``), the versions in which it may be null, and, for
flexible versions, whether it travels as a tagged field::

    ApiSchema(
        3, "Metadata", "0-8",
        request=(
            array("topics", (field("name", "string", "0+"),), "0+", nullable="1+"),
            field("allow_auto_topic_creation", "bool", "4+", default=True),
        ),
        response=(...),
    )

Field types: ``int8``, ``int16``, ``int32``, ``int64``, ``uint16``, ``uint32``, ``float64``,
``bool``, ``uuid``, ``string``, ``bytes`` and ``records`` (record batches, nullable bytes the
protocol never looks inside); ``array(name, "int32", ...)`` for arrays of those, and
``array(name, (fields...), ...)`` or ``struct(name, (fields...), ...)`` for nested structures.
A field absent from a version decodes to its default: ``default=`` if given, else 0, ``False``,
``""``, ``b""``, the zero UUID, ``[]``, or ``None`` for ``records``.

Field names are Python identifiers in snake_case (Kafka's ``AllowAutoTopicCreation`` is
``allow_auto_topic_creation``). The generic codec in :mod:`.codec` compiles a schema per
version; nothing here encodes anything.
"""

from __future__ import annotations

import keyword
import uuid
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Final

__all__ = [
    "PRIMITIVE_TYPES",
    "TYPE_DEFAULT",
    "ApiSchema",
    "Field",
    "VersionRange",
    "array",
    "field",
    "struct",
]

PRIMITIVE_TYPES: Final = frozenset(
    {
        "int8",
        "int16",
        "int32",
        "int64",
        "uint16",
        "uint32",
        "float64",
        "bool",
        "uuid",
        "string",
        "bytes",
        "records",
    }
)


class _TypeDefault:
    """The sentinel for "no ``default=`` given": the field's type decides (0, "", [] ...).

    ``None`` cannot play this part because it is a real default (a nullable string whose
    default is null).
    """

    _instance: _TypeDefault | None = None

    def __new__(cls) -> _TypeDefault:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "TYPE_DEFAULT"


TYPE_DEFAULT: Final = _TypeDefault()

_MAX_VERSION = 0x7FFF


@dataclass(frozen=True, slots=True)
class VersionRange:
    """An inclusive range of versions; ``low > high`` is the empty range ("none")."""

    low: int
    high: int

    @classmethod
    def parse(cls, text: str) -> VersionRange:
        """``"3+"``, ``"0-4"``, ``"5"`` or ``"none"``."""
        spec = text.strip()
        try:
            if spec == "none":
                return cls(1, 0)
            if spec.endswith("+"):
                return cls(int(spec[:-1]), _MAX_VERSION)
            if "-" in spec:
                low, high = spec.split("-", 1)
                return cls(int(low), int(high))
            return cls(int(spec), int(spec))
        except ValueError:
            raise ValueError(
                f"invalid version range {text!r}; expected e.g. '3+', '0-4', '5' or 'none'"
            ) from None

    def __contains__(self, version: object) -> bool:
        return isinstance(version, int) and self.low <= version <= self.high

    def __bool__(self) -> bool:
        return self.low <= self.high

    def __str__(self) -> str:
        if not self:
            return "none"
        if self.high == _MAX_VERSION:
            return f"{self.low}+"
        return f"{self.low}" if self.low == self.high else f"{self.low}-{self.high}"


_NONE = VersionRange(1, 0)


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a message or nested structure.

    ``type`` is a primitive type name, or ``"array"``/``"struct"``; an array's items are
    ``item_type`` (a primitive) or ``fields`` (a structure). ``tag`` is set for tagged fields,
    which exist only in the flexible versions among ``versions``.
    """

    name: str
    type: str
    versions: VersionRange
    nullable: VersionRange = _NONE
    tag: int | None = None
    default: object = TYPE_DEFAULT
    item_type: str | None = None
    fields: tuple[Field, ...] = ()

    @property
    def is_struct(self) -> bool:
        """Whether the field (or each of its items) is a nested structure."""
        return bool(self.fields)

    def default_value(self) -> object:
        """The value of this field in a version that does not carry it (a fresh list for arrays)."""
        if self.type == "array":
            if self.default is None:
                return None
            return []
        if self.default is not TYPE_DEFAULT:
            if self.type == "uuid" and isinstance(self.default, str):
                return uuid.UUID(self.default)
            return self.default
        return _TYPE_DEFAULTS[self.type]


_TYPE_DEFAULTS: dict[str, object] = {
    "int8": 0,
    "int16": 0,
    "int32": 0,
    "int64": 0,
    "uint16": 0,
    "uint32": 0,
    "float64": 0.0,
    "bool": False,
    "uuid": uuid.UUID(int=0),
    "string": "",
    "bytes": b"",
    "records": None,
    "struct": None,
}


def _check_name(name: str) -> None:
    if not name.isidentifier() or keyword.iskeyword(name) or name.startswith("_"):
        raise ValueError(f"field name {name!r} must be a public Python identifier")


def field(
    name: str,
    type: str,
    versions: str,
    *,
    nullable: str = "none",
    tag: int | None = None,
    default: object = TYPE_DEFAULT,
) -> Field:
    """A field of a primitive ``type`` present in ``versions``."""
    _check_name(name)
    if type not in PRIMITIVE_TYPES:
        raise ValueError(f"field {name!r}: unknown type {type!r}; known: {sorted(PRIMITIVE_TYPES)}")
    return Field(
        name,
        type,
        VersionRange.parse(versions),
        VersionRange.parse(nullable),
        tag,
        default,
    )


def array(
    name: str,
    items: str | tuple[Field, ...],
    versions: str,
    *,
    nullable: str = "none",
    tag: int | None = None,
    default: object = TYPE_DEFAULT,
) -> Field:
    """An array of a primitive type (``items="int32"``) or of structures (a tuple of fields)."""
    _check_name(name)
    if isinstance(items, str):
        if items not in PRIMITIVE_TYPES or items == "records":
            raise ValueError(f"array {name!r}: unknown item type {items!r}")
        return Field(
            name,
            "array",
            VersionRange.parse(versions),
            VersionRange.parse(nullable),
            tag,
            default,
            item_type=items,
        )
    if not items:
        raise ValueError(f"array {name!r} needs an item type or at least one field")
    return Field(
        name,
        "array",
        VersionRange.parse(versions),
        VersionRange.parse(nullable),
        tag,
        default,
        fields=tuple(items),
    )


def struct(name: str, fields: tuple[Field, ...], versions: str, *, tag: int | None = None) -> Field:
    """A nested structure (not an array) present in ``versions``; never null."""
    _check_name(name)
    if not fields:
        raise ValueError(f"struct {name!r} needs at least one field")
    return Field(name, "struct", VersionRange.parse(versions), _NONE, tag, fields=tuple(fields))


@dataclass(frozen=True)
class ApiSchema:
    """One API: its key, name, the versions described, the flexible ones, and both messages.

    ``versions`` is every version this schema can encode and decode (what the broker may be
    asked), not what it serves; see :mod:`.registry` for what is advertised and served.
    """

    key: int
    name: str
    versions: VersionRange
    request: tuple[Field, ...]
    response: tuple[Field, ...]
    flexible: VersionRange = dataclass_field(default=_NONE)

    def __init__(
        self,
        key: int,
        name: str,
        versions: str,
        *,
        request: tuple[Field, ...],
        response: tuple[Field, ...],
        flexible: str = "none",
    ) -> None:
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "versions", VersionRange.parse(versions))
        object.__setattr__(self, "request", tuple(request))
        object.__setattr__(self, "response", tuple(response))
        object.__setattr__(self, "flexible", VersionRange.parse(flexible))
        for kind, fields in (("request", self.request), ("response", self.response)):
            _check_fields(f"{name}{kind.capitalize()}", fields, self.flexible)

    def is_flexible(self, version: int) -> bool:
        """Whether ``version`` uses compact encodings and tagged fields."""
        return version in self.flexible


def _check_fields(where: str, fields: tuple[Field, ...], flexible: VersionRange) -> None:
    names: set[str] = set()
    tags: set[int] = set()
    for f in fields:
        if f.name in names:
            raise ValueError(f"{where}: field {f.name!r} is described twice")
        names.add(f.name)
        if f.tag is not None:
            if f.tag in tags:
                raise ValueError(f"{where}: tag {f.tag} is used twice")
            tags.add(f.tag)
            if f.versions.low < flexible.low or not flexible:
                raise ValueError(
                    f"{where}.{f.name}: a tagged field exists only in flexible versions "
                    f"({flexible}), not {f.versions}"
                )
        if f.fields:
            _check_fields(f"{where}.{f.name}", f.fields, flexible)
