"""Flexible versions added as data alone: widening an API's range and naming its flexible
versions gives bytes that kafka-python's codec reads and writes identically; and a schema using
every field type, nullable and tagged, round-trips in both encodings."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.protocol.consumer import (
    HeartbeatRequest,
    HeartbeatResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    OffsetCommitRequest,
    OffsetCommitResponse,
    SyncGroupRequest,
    SyncGroupResponse,
)

from millstream.core.protocol import ApiSchema, Message
from millstream.core.protocol.codec import compile_message
from millstream.core.protocol.message import make_message_class
from millstream.core.protocol.schema import array, field, struct
from millstream.core.protocol.schemas_groups import HEARTBEAT, JOIN_GROUP, OFFSET_COMMIT, SYNC_GROUP

# The first flexible version of each of these APIs changes nothing but the encoding.
WIDENED = [
    (JOIN_GROUP, 6, JoinGroupRequest, JoinGroupResponse),
    (SYNC_GROUP, 4, SyncGroupRequest, SyncGroupResponse),
    (HEARTBEAT, 4, HeartbeatRequest, HeartbeatResponse),
    (OFFSET_COMMIT, 8, OffsetCommitRequest, OffsetCommitResponse),
]


def _widen(schema: ApiSchema, version: int) -> ApiSchema:
    return ApiSchema(
        schema.key,
        schema.name,
        f"{schema.versions.low}-{version}",
        flexible=f"{version}+",
        request=schema.request,
        response=schema.response,
    )


@pytest.mark.parametrize(
    ("schema", "version", "request_class", "response_class"),
    WIDENED,
    ids=[f"{s.name}-v{v}" for s, v, _, _ in WIDENED],
)
@pytest.mark.parametrize("kind", ["request", "response"])
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_first_flexible_version_matches_kafka_python(
    schema: ApiSchema,
    version: int,
    request_class: Any,
    response_class: Any,
    kind: str,
    messages: Any,
    data: st.DataObject,
) -> None:
    widened = _widen(schema, version)
    fields = widened.request if kind == "request" else widened.response
    cls = make_message_class(f"{schema.name}{kind.capitalize()}", fields, __name__)
    codec = compile_message(cls, version, widened.is_flexible(version), f"{schema.name} v{version}")
    message = data.draw(messages(cls, version))
    ours = codec.encode(message)
    theirs_class = request_class if kind == "request" else response_class
    theirs = theirs_class.decode(ours, version=version)
    if kind == "request":
        theirs.with_header()
    assert bytes(theirs.encode()) == ours
    assert codec.decode_all(ours) == message


EVERYTHING = ApiSchema(
    9999,
    "Everything",
    "0-2",
    flexible="1+",
    request=(
        field("i8", "int8", "0+"),
        field("i16", "int16", "0+"),
        field("i32", "int32", "0+"),
        field("i64", "int64", "0+"),
        field("u16", "uint16", "0+"),
        field("u32", "uint32", "0+"),
        field("f64", "float64", "0+"),
        field("flag", "bool", "0+", default=True),
        field("id", "uuid", "0+"),
        field("name", "string", "0+"),
        field("maybe_name", "string", "0+", nullable="0+", default=None),
        field("blob", "bytes", "0+"),
        field("maybe_blob", "bytes", "0+", nullable="0+"),
        field("records", "records", "0+", nullable="0+"),
        array("ints", "int32", "0+"),
        array("longs", "int64", "0+", nullable="2+"),
        array("names", "string", "0+"),
        array("blobs", "bytes", "0+"),
        array("ids", "uuid", "0+"),
        array(
            "items",
            (field("key", "string", "0+"), field("value", "int64", "1+", default=-1)),
            "0+",
            nullable="1+",
        ),
        struct("point", (field("x", "int32", "0+"), field("y", "int32", "0+")), "0+"),
        field("only_v2", "int16", "2", default=7),
        field("tagged_epoch", "int64", "1+", tag=0, default=-1),
        field("tagged_name", "string", "1+", tag=1, nullable="1+", default=None),
        array("tagged_list", (field("n", "int32", "1+"),), "1+", tag=5),
        struct("tagged_point", (field("z", "int8", "1+"),), "1+", tag=7),
    ),
    response=(),
)
EVERYTHING_CLASS = make_message_class("EverythingRequest", EVERYTHING.request, __name__)


@pytest.mark.parametrize("version", [0, 1, 2])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_field_type_round_trips(version: int, messages: Any, data: st.DataObject) -> None:
    codec = compile_message(
        EVERYTHING_CLASS, version, EVERYTHING.is_flexible(version), f"Everything v{version}"
    )
    message = data.draw(messages(EVERYTHING_CLASS, version))
    encoded = codec.encode(message)
    assert codec.decode_all(encoded) == message
    if version == 0:
        assert message.only_v2 == 7  # absent in this version: its default


def test_tagged_fields_are_written_only_when_not_default() -> None:
    codec = compile_message(EVERYTHING_CLASS, 1, True, "Everything v1")
    plain = codec.encode(EVERYTHING_CLASS())
    assert plain.endswith(b"\x00")  # no tagged fields at all
    tagged = EVERYTHING_CLASS(tagged_epoch=5)
    encoded = codec.encode(tagged)
    # one tagged field: tag 0, 8 bytes, the epoch
    assert encoded == plain[:-1] + b"\x01\x00\x08" + (5).to_bytes(8, "big")
    assert codec.decode_all(encoded).tagged_epoch == 5


def test_unknown_tagged_fields_are_skipped() -> None:
    codec = compile_message(EVERYTHING_CLASS, 1, True, "Everything v1")
    plain = codec.encode(EVERYTHING_CLASS(name="n"))
    with_unknown = plain[:-1] + b"\x01\x63\x03abc"  # tag 99, 3 bytes
    assert codec.decode_all(with_unknown) == EVERYTHING_CLASS(name="n")


def test_schema_mistakes_are_caught_when_written() -> None:
    with pytest.raises(ValueError, match="exists only in flexible versions"):
        ApiSchema(1, "Bad", "0-3", request=(field("t", "int8", "0+", tag=0),), response=())
    with pytest.raises(ValueError, match="described twice"):
        ApiSchema(
            1, "Bad", "0", request=(field("a", "int8", "0+"), field("a", "int8", "0+")), response=()
        )
    with pytest.raises(ValueError, match="unknown type 'int12'"):
        field("a", "int12", "0+")
    with pytest.raises(ValueError, match=r"invalid version range 'x\+'"):
        field("a", "int8", "x+")


def test_messages_are_plain_values() -> None:
    message = EVERYTHING_CLASS(name="a", items=[EVERYTHING_CLASS.Items(key="k")])
    assert isinstance(message, Message)
    assert message.to_dict()["items"] == [{"key": "k", "value": -1}]
    assert "EverythingRequest(i8=0" in repr(message)
    with pytest.raises(AttributeError):
        message.nmae = "typo"  # type: ignore[attr-defined]
    assert dataclasses.is_dataclass(message) is False
