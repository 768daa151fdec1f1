"""RouteProcessor: steps in order, then routing by when / switch / unmatched; dead letters."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from millstream.core.event import Event
from millstream.pipelines.route import DeadLetter, RouteProcessor, RouteResult
from millstream.pipelines.runtime.context import RuntimeStepContext
from millstream.pipelines.spec import load_pipeline


def processor(tmp_path: Path, route: str) -> RouteProcessor:
    """A processor for route ``r`` (given as YAML) of a pipeline with topics a..e."""
    text = (
        "pipeline: p\n"
        "topics: {a: {}, b: {}, c: {}, d: {}, e: {}}\n"
        "routes:\n  r:\n    from: a\n"
        + textwrap.indent(textwrap.dedent(route).strip(), "    ")
        + "\n"
    )
    path = tmp_path / "pipeline.yaml"
    path.write_text(text)
    plan = load_pipeline(path).routes["r"]
    return RouteProcessor(plan, RuntimeStepContext("p", "r", tmp_path))


def events(*values: object) -> list[Event]:
    return [Event(v, offset=i) for i, v in enumerate(values)]


def values(result: RouteResult) -> dict[str, list[object]]:
    return {topic: [e.value for e in out] for topic, out in result.outputs.items()}


async def test_steps_run_in_order_and_one_output_gets_everything(tmp_path: Path) -> None:
    route = processor(
        tmp_path,
        """
        steps:
          - filter: value.temp is not None and -50 < value.temp < 150
          - set: {temp_f: "value.temp * 9 / 5 + 32", checked: "True"}
          - drop: [debug]
        to: b
        """,
    )
    result = await route.process(events({"temp": 100, "debug": 1}, {"temp": None}, {"temp": 500}))
    assert values(result) == {"b": [{"temp": 100, "temp_f": 212.0, "checked": True}]}
    assert result.dead == []


async def test_the_quickstart_split_fans_out(tmp_path: Path) -> None:
    route = processor(
        tmp_path,
        """
        to:
          - {topic: b, when: "value.temp_f > 100"}
          - {topic: c}
        """,
    )
    result = await route.process(events({"temp_f": 120}, {"temp_f": 50}))
    assert values(result) == {"b": [{"temp_f": 120}], "c": [{"temp_f": 120}, {"temp_f": 50}]}


async def test_switch_all_sends_to_every_match(tmp_path: Path) -> None:
    route = processor(
        tmp_path,
        """
        to:
          - {topic: b, when: "value.n > 1"}
          - {topic: c, when: "value.n > 2"}
          - {topic: d, when: "value.n > 3"}
        """,
    )
    result = await route.process(events({"n": 1}, {"n": 2}, {"n": 3}, {"n": 4}))
    assert values(result) == {
        "b": [{"n": 2}, {"n": 3}, {"n": 4}],
        "c": [{"n": 3}, {"n": 4}],
        "d": [{"n": 4}],
    }


async def test_switch_first_sends_to_the_first_match_only(tmp_path: Path) -> None:
    route = processor(
        tmp_path,
        """
        switch: first
        to:
          - {topic: b, when: "value.n > 3"}
          - {topic: c, when: "value.n > 1"}
          - {topic: d}
        """,
    )
    result = await route.process(events({"n": 1}, {"n": 2}, {"n": 4}, {"n": 3}))
    assert values(result) == {"b": [{"n": 4}], "c": [{"n": 2}, {"n": 3}], "d": [{"n": 1}]}


@pytest.mark.parametrize("switch", ["all", "first"])
async def test_unmatched_events_go_to_the_unmatched_topic(tmp_path: Path, switch: str) -> None:
    route = processor(
        tmp_path,
        f"""
        switch: {switch}
        unmatched: e
        to:
          - {{topic: b, when: "value.kind == 'x'"}}
          - {{topic: c, when: "value.kind == 'y'"}}
        """,
    )
    result = await route.process(events({"kind": "x"}, {"kind": "z"}, {"kind": "y"}, {}))
    assert values(result) == {
        "b": [{"kind": "x"}],
        "c": [{"kind": "y"}],
        "e": [{"kind": "z"}, {}],
    }


async def test_without_unmatched_they_are_dropped(tmp_path: Path) -> None:
    route = processor(tmp_path, 'to: [{topic: b, when: "value.ok"}]')
    result = await route.process(events({"ok": True}, {"ok": False}))
    assert values(result) == {"b": [{"ok": True}]}
    assert result.dead == []


async def test_a_failing_step_names_the_step(tmp_path: Path) -> None:
    route = processor(
        tmp_path,
        """
        steps:
          - filter: "True"
          - set: {n2: "value.n * 2"}
          - filter: value.n2 > 2
        to: b
        """,
    )
    result = await route.process(events({"n": 1}, {"n": None}, {"n": 5}, {"n": "ab"}))
    assert values(result) == {"b": [{"n": 5, "n2": 10}]}
    assert [(d.event.offset, d.step) for d in result.dead] == [
        (1, "steps[1].set"),
        (3, "steps[2].filter"),
    ]
    assert result.dead[0].reason.startswith("TypeError: unsupported operand type(s) for *")
    assert "'>' not supported between instances of 'str' and 'int'" in result.dead[1].reason


@pytest.mark.parametrize("switch", ["all", "first"])
async def test_a_failing_when_dead_letters_the_event_and_sends_it_nowhere(
    tmp_path: Path, switch: str
) -> None:
    route = processor(
        tmp_path,
        f"""
        switch: {switch}
        unmatched: e
        to:
          - {{topic: b, when: "value.kind == 'x'"}}
          - {{topic: c, when: "value.level > 2"}}
          - {{topic: d}}
        """,
    )
    result = await route.process(events({"kind": "x", "level": 1}, {"kind": "y"}, {"level": 3}))
    assert [(d.event.offset, d.step) for d in result.dead] == [(1, "to[1].when")]
    assert "'>' not supported" in result.dead[0].reason
    if switch == "all":
        assert values(result) == {
            "b": [{"kind": "x", "level": 1}],
            "c": [{"level": 3}],
            "d": [{"kind": "x", "level": 1}, {"level": 3}],
            "e": [],
        }
    else:
        assert values(result) == {
            "b": [{"kind": "x", "level": 1}],
            "c": [{"level": 3}],
            "d": [],
            "e": [],
        }


async def test_an_async_step_is_awaited(tmp_path: Path) -> None:
    route = processor(tmp_path, "steps: [{throttle: {rate: 1000}}, {set: {a: '1'}}]\nto: b")
    result = await route.process(events({}, {}))
    assert values(result) == {"b": [{"a": 1}, {"a": 1}]}


async def test_an_empty_batch_and_close(tmp_path: Path) -> None:
    route = processor(tmp_path, "steps: [{filter: 'True'}]\nto: [{topic: b, when: 'True'}]")
    result = await route.process([])
    assert result == RouteResult({"b": []}, [])
    await route.close()


def test_dead_letter_is_a_plain_record() -> None:
    event = Event(1)
    assert DeadLetter(event, "steps[0].filter", "why") == DeadLetter(
        event, "steps[0].filter", "why"
    )
