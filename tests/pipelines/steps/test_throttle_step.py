"""The throttle step: holds a rate by waiting, never by dropping."""

from __future__ import annotations

import time

import pytest
from pydantic import ValidationError

from millstream.pipelines.steps import ThrottleStep


async def test_a_burst_within_the_rate_passes_at_once(harness) -> None:
    step = harness.build(ThrottleStep, {"rate": 100, "per": "1s"})
    start = time.monotonic()
    out = await harness.values(step, list(range(100)))
    assert out == list(range(100))
    assert time.monotonic() - start < 0.05


async def test_more_than_the_rate_waits_and_nothing_is_dropped(harness) -> None:
    step = harness.build(ThrottleStep, {"rate": 200, "per": "1s"})
    start = time.monotonic()
    passed = []
    for batch in range(6):
        passed += await harness.values(step, list(range(batch * 50, batch * 50 + 50)))
    elapsed = time.monotonic() - start
    assert passed == list(range(300))
    # 200 pass at once (the bucket), the other 100 need 0.5 s at 200/s
    assert 0.45 <= elapsed < 1.0


async def test_the_default_period_is_a_second(harness) -> None:
    step = harness.build(ThrottleStep, {"rate": 1000})
    assert step.per_second == 1000


@pytest.mark.parametrize(
    "argument", [{"rate": 0}, {"rate": -1}, {"per": "1s"}, {"rate": 1, "per": "1"}, 10]
)
def test_bad_arguments(harness, argument: object) -> None:
    with pytest.raises(ValidationError):
        harness.build(ThrottleStep, argument)
