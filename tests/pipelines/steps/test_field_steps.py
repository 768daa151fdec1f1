"""The steps that reshape values: set, drop, keep, rename; and field paths."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from millstream.core.errors import ConfigError
from millstream.core.event import Event
from millstream.pipelines.steps import DropStep, KeepStep, RenameStep, SetStep
from millstream.pipelines.steps._fields import parse_path

# --- set ----------------------------------------------------------------------------------


async def test_set_computes_fields(harness) -> None:
    step = (SetStep, {"temp_f": "value.temp * 9 / 5 + 32", "checked": "True"})
    assert await harness.values(step, [{"temp": 100}]) == [
        {"temp": 100, "temp_f": 212.0, "checked": True}
    ]


async def test_set_makes_nested_dicts(harness) -> None:
    step = (SetStep, {"site.floor.n": "2", "site.name": "'mill'", "top": "1"})
    out = await harness.values(step, [{}, {"site": {"old": 1}}])
    assert out == [
        {"site": {"floor": {"n": 2}, "name": "mill"}, "top": 1},
        {"site": {"old": 1, "floor": {"n": 2}, "name": "mill"}, "top": 1},
    ]


async def test_set_takes_yaml_scalars_as_they_are(harness) -> None:
    step = (SetStep, {"a": 2, "b": 1.5, "c": True, "d": None, "e": math.inf})
    out = await harness.values(step, [{}])
    assert out == [{"a": 2, "b": 1.5, "c": True, "d": None, "e": math.inf}]


async def test_set_expressions_see_the_value_as_it_was(harness) -> None:
    step = (SetStep, {"n": "value.n + 1", "m": "value.n"})
    assert await harness.values(step, [{"n": 1}]) == [{"n": 2, "m": 1}]


async def test_set_rejects_a_failing_event_and_leaves_it_unchanged(harness) -> None:
    step = (SetStep, {"a": "1", "b.c": "value.x + 1"})
    out, rejected = await harness.run(step, [{"x": 1}, {"x": "s"}, {"x": 2, "b": 5}])
    assert [e.value for e in out] == [{"x": 1, "a": 1, "b": {"c": 2}}]
    assert rejected[0].event.value == {"x": "s"}
    assert rejected[0].reason.startswith("TypeError: can only concatenate str")
    assert rejected[1].event.value == {"x": 2, "b": 5}
    assert rejected[1].reason == "TypeError: cannot set b.c: b is int, not an object"


async def test_set_rejects_a_value_that_is_not_an_object(harness) -> None:
    out, rejected = await harness.run((SetStep, {"a": "1"}), ["text", None, [1]])
    assert out == []
    assert [r.reason for r in rejected] == [
        "set needs a JSON object value, got str",
        "set needs a JSON object value, got nothing (null)",
        "set needs a JSON object value, got list",
    ]


def test_set_arguments_are_checked(harness) -> None:
    with pytest.raises(ValidationError):
        harness.build(SetStep, {})
    with pytest.raises(ValidationError, match="unknown name 'nope'"):
        harness.build(SetStep, {"a": "nope"})
    with pytest.raises(ValidationError, match="not a field path"):
        harness.build(SetStep, {"a..b": "1"})
    with pytest.raises(ValidationError):
        harness.build(SetStep, {"a": [1, 2]})


def test_set_expression_errors_in_a_file_name_the_field(harness) -> None:
    with pytest.raises(ConfigError) as caught:
        harness.pipeline('- set: {ok: "1", temp_f: "value.temp *"}')
    assert caught.value.path == "routes.r.steps[0].set.temp_f"
    assert caught.value.line == 10
    assert "invalid syntax" in caught.value.message


# --- drop, keep, rename -------------------------------------------------------------------


async def test_drop_removes_fields_top_level_and_nested(harness) -> None:
    values = [{"a": 1, "debug": 2, "raw": {"payload": 3, "keep": 4}}, {"a": 1}, "text"]
    out = await harness.values((DropStep, ["debug", "raw.payload", "nothing.here"]), values)
    assert out == [{"a": 1, "raw": {"keep": 4}}, {"a": 1}, "text"]
    assert await harness.values((DropStep, ["a", "b"]), [{"a": 1, "b": 2, "c": 3}]) == [{"c": 3}]


async def test_keep_keeps_only_the_listed_fields(harness) -> None:
    values = [{"device": "d", "temp": 1, "site": {"name": "m", "secret": 1}, "x": 0}, {"x": 1}]
    out = await harness.values((KeepStep, ["device", "site.name", "missing"]), values)
    assert out == [{"device": "d", "site": {"name": "m"}}, {}]


async def test_keep_rejects_a_value_that_is_not_an_object(harness) -> None:
    out, rejected = await harness.run((KeepStep, ["a"]), ["text"])
    assert out == [] and rejected[0].reason == "keep needs a JSON object value, got str"


async def test_rename_moves_fields(harness) -> None:
    step = (RenameStep, {"temp": "celsius", "loc": "site.location", "nothing": "x"})
    out = await harness.values(step, [{"temp": 1, "loc": "here", "site": {"n": 1}}, "text"])
    assert out == [{"celsius": 1, "site": {"n": 1, "location": "here"}}, "text"]


async def test_rename_into_something_that_is_not_an_object_is_rejected(harness) -> None:
    out, rejected = await harness.run((RenameStep, {"a": "b.c"}), [{"a": 1, "b": 2}])
    assert out == [] and "b is int" in rejected[0].reason
    assert rejected[0].event.value == {"a": 1, "b": 2}  # left as it was


async def test_rename_swaps_and_rotates_fields(harness) -> None:
    swap = (RenameStep, {"a": "b", "b": "a"})
    assert await harness.values(swap, [{"a": 1, "b": 2}, {"a": 1}]) == [{"a": 2, "b": 1}, {"b": 1}]
    rotate = (RenameStep, {"a": "b", "b": "c", "c": "a"})
    assert await harness.values(rotate, [{"a": 1, "b": 2, "c": 3}]) == [{"a": 3, "b": 1, "c": 2}]
    nest = (RenameStep, {"a": "a.inner", "site.name": "site"})
    assert await harness.values(nest, [{"a": 1}]) == [{"a": {"inner": 1}}]


async def test_rename_onto_a_field_that_stays_rejects_the_event_unchanged(harness) -> None:
    step = (RenameStep, {"tmp": "temp", "x": "y"})
    values = [{"tmp": 1, "temp": 99, "x": 5}, {"tmp": 1, "x": 5}, {"temp": 99, "x": 5}]
    out, rejected = await harness.run(step, values)
    assert [e.value for e in out] == [{"temp": 1, "y": 5}, {"temp": 99, "y": 5}]
    assert rejected[0].event.value == {"tmp": 1, "temp": 99, "x": 5}
    assert rejected[0].reason == (
        "ValueError: cannot rename tmp to temp: temp is there already "
        "(drop it first, or rename it too)"
    )
    out, rejected = await harness.run(
        (RenameStep, {"a": "site.name"}), [{"a": 1, "site": {"name": 2}}]
    )
    assert out == [] and "site.name is there already" in rejected[0].reason


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ({"a": "c", "b": "c"}, "a and b are both renamed to c"),
        ({"a": "c", "b": "c.d"}, "c.d is inside c"),
        ({"a": "x", "a.b": "y"}, "a.b is inside a"),
        ({"a.b": "x", 'a["b"]': "y"}, "a.b is renamed twice"),
    ],
)
def test_rename_targets_that_collide_are_refused(harness, argument, message) -> None:
    with pytest.raises(ValidationError, match=message):
        harness.build(RenameStep, argument)


def test_path_lists_and_maps_are_checked(harness) -> None:
    for step, bad in ((DropStep, []), (KeepStep, ["a."]), (RenameStep, {"a": ""}), (DropStep, "a")):
        with pytest.raises(ValidationError):
            harness.build(step, bad)


async def test_steps_keep_the_event_record(harness) -> None:
    event = Event(
        {"a": 1}, key=b"k", headers=(("h", b"v"),), timestamp=5, topic="t", partition=1, offset=9
    )
    out, _ = await harness.run((SetStep, {"b": "2"}), [event])
    assert out[0] is event and (event.key, event.timestamp, event.offset) == (b"k", 5, 9)


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("a", ("a",)),
        ("site.name", ("site", "name")),
        ('tags["a.b"]', ("tags", "a.b")),
        ("tags['a.b'].c", ("tags", "a.b", "c")),
        (" spaced name ", ("spaced name",)),
    ],
)
def test_field_paths(text: str, path: tuple[str, ...]) -> None:
    assert parse_path(text) == path


@pytest.mark.parametrize("text", ["", ".a", "a.", "a..b", "a[0]", 'a["b'])
def test_bad_field_paths(text: str) -> None:
    with pytest.raises(ValueError):
        parse_path(text)
