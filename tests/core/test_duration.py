"""parse_duration and the Duration field type."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import BaseModel, ValidationError

from millstream.core.duration import Duration, parse_duration


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("200ms", timedelta(milliseconds=200)),
        ("10s", timedelta(seconds=10)),
        ("30m", timedelta(minutes=30)),
        ("12h", timedelta(hours=12)),
        ("7d", timedelta(days=7)),
        ("2w", timedelta(weeks=2)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("1.5s", timedelta(milliseconds=1500)),
        ("0s", timedelta(0)),
    ],
)
def test_parse(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("10", "'10' is not a duration (give a unit)"),
        ("10 s", "'10 s' is not a duration"),
        ("-5s", "'-5s' is not a duration"),
        ("5y", "'5y' is not a duration"),
        ("", "expected a duration such as"),
        ("s", "'s' is not a duration"),
    ],
)
def test_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_duration(text)
    assert str(caught.value).startswith(message)
    assert "200ms" in str(caught.value)


class Window(BaseModel):
    window: Duration


def test_field_type() -> None:
    assert Window(window="5m").window == timedelta(minutes=5)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="5 has no unit"):
        Window(window=5)  # type: ignore[arg-type]
    assert Window.model_json_schema()["properties"]["window"]["type"] == "string"
