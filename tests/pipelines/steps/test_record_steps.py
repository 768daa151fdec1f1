"""The key and timestamp steps."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from millstream.core.event import Event
from millstream.pipelines.steps import KeyStep, TimestampStep


async def test_key_sets_the_stored_key(harness) -> None:
    values = [{"id": "c1"}, {"id": 42}, {"id": None}, {"id": {"b": 1, "a": 2}}, {"id": True}]
    out, rejected = await harness.run((KeyStep, "value.id"), values)
    assert not rejected
    assert [e.key for e in out] == [b"c1", b"42", None, b'{"a":2,"b":1}', b"true"]


async def test_key_from_the_old_key(harness) -> None:
    out, _ = await harness.run((KeyStep, "upper(key)"), [Event(1, key=b"abc")])
    assert out[0].key == b"ABC"


async def test_key_rejects_an_event_whose_expression_raises(harness) -> None:
    out, rejected = await harness.run((KeyStep, "value.a + 1"), [{"a": 1}, {}])
    assert [e.key for e in out] == [b"2"]
    assert rejected[0].reason.startswith("TypeError: unsupported operand")


@pytest.mark.parametrize(
    ("ts", "ms"),
    [
        (1_714_564_800_123, 1_714_564_800_123),  # int: milliseconds
        (1_714_564_800.5, 1_714_564_800_500),  # float: seconds
        ("2024-05-01T12:00:00Z", 1_714_564_800_000),  # ISO 8601
        ("2024-05-01T12:00:00.250+00:00", 1_714_564_800_250),
        ("2024-05-01T12:00:00", 1_714_564_800_000),  # no zone: UTC
        (0, 0),
    ],
)
async def test_timestamp_rules(harness, ts: object, ms: int) -> None:
    out, rejected = await harness.run((TimestampStep, "value.ts"), [{"ts": ts}])
    assert not rejected
    assert out[0].timestamp == ms


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (None, "TypeError: a timestamp must be a number or a time text, got None"),
        (True, "TypeError: a timestamp must be a number or a time text, got True"),
        ([1], "TypeError: a timestamp must be a number or a time text, got list"),
        ("yesterday", "ValueError: 'yesterday' is not an ISO 8601 time"),
        (-5, "ValueError: timestamp -5 is outside years 1970 to 9999"),
        (1.7e12, "(a float is read as seconds)"),
    ],
)
async def test_timestamp_rejects_what_is_no_time(harness, ts: object, reason: str) -> None:
    out, rejected = await harness.run((TimestampStep, "value.ts"), [{"ts": ts}])
    assert out == []
    assert reason in rejected[0].reason


async def test_timestamp_with_parse_time_and_a_format(harness) -> None:
    step = (TimestampStep, "parse_time(value.when, '%d/%m/%Y %H:%M')")
    out, _ = await harness.run(step, [{"when": "01/05/2024 12:00"}])
    assert out[0].timestamp == 1_714_564_800_000


def test_bad_arguments(harness) -> None:
    for step in (KeyStep, TimestampStep):
        with pytest.raises(ValidationError):
            harness.build(step, "value.")
        with pytest.raises(ValidationError):
            harness.build(step, 5)
