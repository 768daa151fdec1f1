"""Hypothesis strategies for protocol messages, generated from the schemas themselves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest
from hypothesis import strategies as st

from millstream.core.protocol import (
    API_KEYS,
    Field,
    Message,
    MessageCodec,
    request_schema,
    response_schema,
)

_LIMITS = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
}

_TEXT = st.text(max_size=12)
_BYTES = st.binary(max_size=24)


def _primitive(type_name: str) -> st.SearchStrategy[Any]:
    if type_name in _LIMITS:
        low, high = _LIMITS[type_name]
        return st.integers(low, high)
    if type_name == "bool":
        return st.booleans()
    if type_name == "float64":
        return st.floats(allow_nan=False)
    if type_name == "uuid":
        return st.uuids()
    if type_name == "string":
        return _TEXT
    return _BYTES  # bytes, records


def _value(f: Field, cls: type[Message], version: int) -> st.SearchStrategy[Any]:
    if f.type == "array":
        if f.fields:
            item = message_strategy(getattr(cls, _camel(f.name)), version)
        else:
            item = _primitive(f.item_type or "")
        strategy = st.lists(item, max_size=3)
    elif f.type == "struct":
        strategy = message_strategy(getattr(cls, _camel(f.name)), version)
    else:
        strategy = _primitive(f.type)
    if version in f.nullable:
        strategy = st.none() | strategy
    return strategy


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_"))


def message_strategy(cls: type[Message], version: int) -> st.SearchStrategy[Message]:
    """Messages of ``cls`` as ``version`` carries them: every field of the version drawn from
    its type, every other field left at its default (what decoding gives back)."""
    present = {f.name: _value(f, cls, version) for f in cls._schema_fields if version in f.versions}
    return st.builds(cls, **present)


class Described(NamedTuple):
    """One message of one API in one version."""

    name: str
    key: int
    version: int
    kind: str  # "request" or "response"

    @property
    def codec(self) -> MessageCodec:
        if self.kind == "request":
            return request_schema(self.key, self.version)
        return response_schema(self.key, self.version)


def _all_described() -> list[Described]:
    return [
        Described(schema.name, key, version, kind)
        for key, schema in sorted(API_KEYS.items())
        for version in range(schema.versions.low, schema.versions.high + 1)
        for kind in ("request", "response")
    ]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A test that takes ``described`` runs once per API, version and direction."""
    if "described" in metafunc.fixturenames:
        every = _all_described()
        metafunc.parametrize(
            "described", every, ids=[f"{d.name}-v{d.version}-{d.kind}" for d in every]
        )


@pytest.fixture(scope="session")
def messages() -> Callable[[type[Message], int], st.SearchStrategy[Message]]:
    """``messages(cls, version)``: a strategy of messages of ``cls`` in ``version``."""
    return message_strategy
