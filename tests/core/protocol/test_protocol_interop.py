"""Our bytes are Kafka's bytes: kafka-python's two independent codecs (its message classes and
its older hand-written schemas) decode what we encode and encode it back byte for byte; where
kafka-python has no such version, the test says so and skips."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from typing import Any

import kafka.protocol.old
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.protocol.api_message import ApiMessage

from millstream.core.protocol import Message

Messages = Callable[[type[Message], int], st.SearchStrategy[Message]]


def _hand_written_classes() -> dict[tuple[int, int, str], Any]:
    found = {}
    for info in pkgutil.iter_modules(kafka.protocol.old.__path__):
        module = importlib.import_module(f"kafka.protocol.old.{info.name}")
        for name, obj in vars(module).items():
            base, _, version = name.rpartition("_v")
            if isinstance(obj, type) and hasattr(obj, "API_KEY") and version.isdigit():
                kind = "request" if base.endswith("Request") else "response"
                found[(obj.API_KEY, obj.API_VERSION, kind)] = obj
    return found


def _message_classes() -> dict[tuple[int, str], Any]:
    found = {}
    for package in ("metadata", "producer", "consumer", "admin"):
        module = importlib.import_module(f"kafka.protocol.{package}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, ApiMessage) and obj is not ApiMessage:
                found[(obj.API_KEY, obj.type)] = obj
    return found


HAND_WRITTEN = _hand_written_classes()
MESSAGE_CLASSES = _message_classes()
_SETTINGS = settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _encode_drawn(described: Any, messages: Messages, data: st.DataObject) -> bytes:
    codec = described.codec
    message: Any = data.draw(messages(codec.message_class, described.version))
    if described.name == "ApiVersions" and described.kind == "response":
        # Kafka clients read an ApiVersions response with an error as v0 (the fallback), so a
        # non-zero error in a later version does not come back in that version.
        message.error_code = 0
    return codec.encode(message)


@_SETTINGS
@given(data=st.data())
def test_kafka_python_messages_reencode_our_bytes(
    described, messages: Messages, data: st.DataObject
) -> None:
    theirs = MESSAGE_CLASSES.get((described.key, described.kind))
    if theirs is None:
        pytest.skip(f"kafka-python has no {described.name} {described.kind} class")
    ours = _encode_drawn(described, messages, data)
    decoded = theirs.decode(ours, version=described.version)
    if described.kind == "request":
        decoded.with_header()  # its request encoder expects one, even when not writing it
    assert bytes(decoded.encode()) == ours


@_SETTINGS
@given(data=st.data())
def test_kafka_python_hand_written_schemas_reencode_our_bytes(
    described, messages: Messages, data: st.DataObject
) -> None:
    theirs = HAND_WRITTEN.get((described.key, described.version, described.kind))
    if theirs is None:
        pytest.skip(f"kafka-python has no hand-written {described.name} v{described.version}")
    ours = _encode_drawn(described, messages, data)
    decoded = theirs.decode(ours)
    assert bytes(decoded.encode()) == ours
