"""The filter step."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from millstream.core.errors import ConfigError
from millstream.pipelines.steps import FilterStep


async def test_keeps_the_events_for_which_the_expression_is_true(harness) -> None:
    values = [{"temp": t} for t in (10, 200, None, -60, 149)]
    out = await harness.values(
        (FilterStep, "value.temp is not None and -50 < value.temp < 150"), values
    )
    assert out == [{"temp": 10}, {"temp": 149}]


async def test_truthiness_decides(harness) -> None:
    out = await harness.values((FilterStep, "value.tags"), [{"tags": []}, {"tags": ["a"]}, {}])
    assert out == [{"tags": ["a"]}]


async def test_an_event_whose_expression_raises_is_rejected_alone(harness) -> None:
    values = [{"temp": 10}, {}, {"temp": 30}, {"temp": "hot"}]
    out, rejected = await harness.run((FilterStep, "value.temp > 20"), values)
    assert [e.value for e in out] == [{"temp": 30}]
    assert [r.event.value for r in rejected] == [{}, {"temp": "hot"}]
    assert (
        rejected[0].reason
        == "TypeError: '>' not supported between instances of 'NoneType' and 'int'"
    )


async def test_an_empty_batch(harness) -> None:
    assert await harness.values((FilterStep, "True"), []) == []


def test_a_bad_argument_is_refused(harness) -> None:
    with pytest.raises(ValidationError, match="unknown name"):
        harness.build(FilterStep, "temp > 5")
    with pytest.raises(ValidationError):
        harness.build(FilterStep, {"expr": "value.x"})


def test_an_invalid_expression_in_a_file_names_its_place(harness) -> None:
    with pytest.raises(ConfigError) as caught:
        harness.pipeline("- filter: value.__class__")
    error = caught.value
    assert (error.line, error.column) == (10, 17)
    assert error.path == "routes.r.steps[0].filter"
    assert "names starting with '_' are not allowed" in error.message


async def test_an_event_that_would_make_an_enormous_result_is_rejected_with_the_reason(
    harness,
) -> None:
    values = [{"s": "ab"}, {"s": "x" * 100}, {"s": "%0300000000d"}]
    out, rejected = await harness.run((FilterStep, "len(value.s * 1000000) < 5000000"), values)
    assert [e.value for e in out] == [{"s": "ab"}]
    assert rejected[0].reason == (
        "OverflowError: repeating 100 items 1,000,000 times would make 100,000,000, "
        "over the limit of 10,000,000"
    )
    out, rejected = await harness.run((FilterStep, "value.s % 1"), values[2:])
    assert out == []
    assert rejected[0].reason.startswith("TypeError: '%' formatting of text is not available")
