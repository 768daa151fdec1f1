"""The dedupe step and its bounded, expiring memory."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from millstream.pipelines.steps import DedupeStep
from millstream.pipelines.steps._state import ExpiringKeys


async def test_repeats_within_the_window_are_dropped(harness) -> None:
    step = harness.build(DedupeStep, {"by": "value.id", "window": "10m"})
    first = await harness.values(step, [{"id": 1, "n": 0}, {"id": 2}, {"id": 1, "n": 1}])
    assert first == [{"id": 1, "n": 0}, {"id": 2}]
    assert await harness.values(step, [{"id": 2}, {"id": 3}]) == [{"id": 3}]  # across batches


async def test_unhashable_keys_compare_by_content_and_none_passes(harness) -> None:
    step = harness.build(DedupeStep, {"by": "value.k", "window": "1h"})
    values = [{"k": {"a": 1, "b": 2}}, {"k": {"b": 2, "a": 1}}, {"k": [1]}, {}, {"x": 1}]
    assert await harness.values(step, values) == [{"k": {"a": 1, "b": 2}}, {"k": [1]}, {}, {"x": 1}]


async def test_keys_that_differ_in_json_stay_distinct(harness) -> None:
    step = harness.build(DedupeStep, {"by": "value.k", "window": "1h"})
    values = [
        {"k": True}, {"k": 1}, {"k": 1.0}, {"k": "1"}, {"k": [1]}, {"k": [True]}, {"k": "[1]"},
        {"k": {"a": 1}}, {"k": {"a": True}}, {"k": 0}, {"k": False}, {"k": b"[1]"},
        {"k": 2**70}, {"k": 2**70},  # the last one, and only it, repeats its key
    ]  # fmt: skip
    assert await harness.values(step, values) == values[:-1]
    tuples = harness.build(DedupeStep, {"by": "(value.a, value.b)", "window": "1h"})
    pairs = [{"a": 1, "b": True}, {"a": 1, "b": 1}, {"a": True, "b": 1}, {"a": 1, "b": 1}]
    assert await harness.values(tuples, pairs) == pairs[:3]


async def test_a_key_is_forgotten_after_its_window(harness) -> None:
    step = harness.build(DedupeStep, {"by": "value.id", "window": "10s"})
    clock = [100.0]
    step.seen.clock = lambda: clock[0]
    assert len(await harness.values(step, [{"id": 1}])) == 1
    clock[0] = 109.9
    assert await harness.values(step, [{"id": 1}]) == []
    clock[0] = 110.1
    assert await harness.values(step, [{"id": 1}]) == [{"id": 1}]


async def test_memory_is_bounded_by_max_keys(harness) -> None:
    step = harness.build(DedupeStep, {"by": "value.id", "window": "1h", "max_keys": 3})
    await harness.values(step, [{"id": i} for i in range(10)])
    assert len(step.seen) == 3 and step.seen.evicted == 7
    assert await harness.values(step, [{"id": 0}, {"id": 9}]) == [{"id": 0}]  # 0 was forgotten


async def test_a_failing_key_expression_rejects_the_event(harness) -> None:
    step = harness.build(DedupeStep, {"by": "value.id + 1", "window": "1m"})
    out, rejected = await harness.run(step, [{"id": 1}, {}])
    assert len(out) == 1 and rejected[0].reason.startswith("TypeError")


@pytest.mark.parametrize(
    "argument",
    [
        {"by": "value.id"},
        {"by": "value.id", "window": "10"},
        {"by": "value.id", "window": "10m", "max_keys": 0},
        {"by": "nope", "window": "10m"},
        {"by": "value.id", "window": "10m", "extra": 1},
        "value.id",
    ],
)
def test_bad_arguments(harness, argument: object) -> None:
    with pytest.raises(ValidationError):
        harness.build(DedupeStep, argument)


def test_expiring_keys_alone() -> None:
    keys = ExpiringKeys(window_s=5, max_keys=10, clock=lambda: 0.0)
    assert keys.add("a", 0.0) and not keys.add("a", 1.0) and keys.add("b", 3.0)
    keys.expire(5.0)
    assert len(keys) == 1 and keys.add("a", 5.0)
