"""Pipeline unit tests: the ``tests:`` entries that ``millstream test`` runs.

A test feeds events into one route and says what must come out, per output topic and on the
dead-letter topic, without a store and without connectors::

    tests:
      - name: hot readings are split off
        route: split
        input:
          - value: {temp_f: 120}
          - {value: {temp_f: 50}, key: d1}
        expect:
          hot:
            - value: {temp_f: 120}
          archive:
            - value: {temp_f: 120}
            - {value: {temp_f: 50}, key: d1}
          dead:                               # the route's dead-letter topic
            - {reason: "not supported", step: "steps[0].filter"}

The tests live in the pipeline file, or in a file of their own that holds only ``pipeline:``
(the pipeline file's path, relative to this file) and ``tests:``. docs/steps.md has the rules.
Values are put through their topics' codecs both ways, as a running route would see them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, field_validator

from millstream.core.errors import CodecError, ConfigError
from millstream.core.event import Event
from millstream.core.plugins import Registry, get_registry

from .expr._functions import parse_time
from .plan import Pipeline, RoutePlan
from .route import DeadLetter, RouteProcessor

__all__ = [
    "DEAD_LETTERS",
    "Case",
    "Difference",
    "Outcome",
    "Suite",
    "load_suite",
    "run_case",
    "run_suite",
]

DEAD_LETTERS = "dead_letters"
"""The ``expect`` key for the route's dead letters, whatever its dead-letter topic is called."""

_TEST_FILE_KEYS = {"pipeline", "tests"}


def _moment(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return parse_time(value)
        except ValueError as exc:
            raise ValueError(
                f"expected milliseconds since the epoch or an ISO time: {exc}"
            ) from None
    return value


Moment = Annotated[int, Field(ge=0, description="milliseconds since the epoch, or ISO text")]


class InputEvent(BaseModel):
    """One event fed to the route."""

    model_config = ConfigDict(extra="forbid")

    value: Any = Field(description="the decoded value")
    key: str | None = Field(None, description="the record key, as text")
    headers: dict[str, str] = Field(default_factory=dict, description="header name → text")
    timestamp: Moment = 0
    topic: str | None = Field(None, description="the topic it was read from (default: the first)")

    _moment = field_validator("timestamp", mode="before")(_moment)


class ExpectedEvent(BaseModel):
    """One event expected on a topic; only the parts given are compared."""

    model_config = ConfigDict(extra="forbid")

    value: Any = Field(None, description="the whole value, compared exactly")
    key: str | None = Field(None, description="the key, as text")
    headers: dict[str, str] | None = Field(None, description="headers that must be there")
    timestamp: Moment | None = None
    reason: str | None = Field(None, description="dead letters: text the reason contains")
    step: str | None = Field(None, description="dead letters: the step, such as steps[0].set")

    _moment = field_validator("timestamp", mode="before")(_moment)


class Case(BaseModel):
    """One test: events into a route, what must come out."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="what the test shows")
    route: str = Field(description="the route to feed")
    input: list[InputEvent] = Field(description="the events fed to the route, in order")
    expect: dict[str, list[ExpectedEvent]] = Field(
        default_factory=dict,
        description="per output topic (and the dead-letter topic, or dead_letters) the events "
        "expected there, in order; a topic not named must get nothing",
    )


@dataclass
class Suite:
    """The tests of one file and the pipeline they test."""

    file: Path
    pipeline: Pipeline
    cases: list[Case]
    names: list[str]
    """Each case's name as reported: its ``name``, or ``tests[i]``."""


@dataclass
class Difference:
    """What one topic got against what was expected; ``diff`` marks each line ``  `` (as
    expected), ``- `` (expected, missing) or ``+ `` (got, not expected)."""

    topic: str
    expected: list[Any]
    actual: list[Any]
    diff: list[str]


@dataclass
class Outcome:
    """How one test went."""

    name: str
    route: str
    differences: list[Difference] = field(default_factory=list)
    error: str | None = None

    @property
    def passed(self) -> bool:
        return not self.differences and self.error is None


# --- loading ------------------------------------------------------------------------------


def load_suite(
    path: str | os.PathLike[str],
    *,
    registry: Registry | None = None,
    env: Mapping[str, str] | None = None,
) -> Suite:
    """The tests in the file at ``path`` (a pipeline file, or a tests file naming one) with the
    pipeline they test, validated; ConfigError at the file position of anything wrong."""
    from .spec import load_pipeline, read_yaml, validate_node

    registry = registry or get_registry()
    document = read_yaml(path, env=env)
    raw = document.value
    positions = document.positions
    if isinstance(raw, dict) and raw and set(raw) <= _TEST_FILE_KEYS:
        target = raw.get("pipeline")
        if not isinstance(target, str) or not target:
            raise positions.error(
                "a tests file names the pipeline file it tests: `pipeline: path/to/file.yaml`",
                ("pipeline",),
            )
        pipeline_file = Path(target)
        if not pipeline_file.is_absolute():
            pipeline_file = document.file.parent / pipeline_file
        if not pipeline_file.is_file():
            raise positions.error(f"no pipeline file {str(pipeline_file)!r}", ("pipeline",))
        pipeline = load_pipeline(pipeline_file, registry=registry, env=env)
    else:
        pipeline = load_pipeline(path, registry=registry, env=env)
    entries = raw.get("tests") if isinstance(raw, dict) else None
    if not entries:
        raise ConfigError(
            "no tests here: add a `tests:` list (see docs/steps.md, testing)", file=str(path)
        )
    cases: list[Case] = validate_node(list[Case], entries, positions, ("tests",))
    names = []
    for i, case in enumerate(cases):
        _check_case(case, pipeline, positions, ("tests", i))
        names.append(case.name or f"tests[{i}]")
    return Suite(document.file, pipeline, cases, names)


def _check_case(case: Case, pipeline: Pipeline, positions: Any, path: tuple[Any, ...]) -> None:
    import difflib

    route = pipeline.routes.get(case.route)
    if route is None:
        known = sorted(pipeline.routes)
        close = difflib.get_close_matches(case.route, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise positions.error(
            f"no route {case.route!r} in pipeline {pipeline.name!r}; {hint}"
            f"routes: {', '.join(known) or 'none'}",
            (*path, "route"),
        )
    outputs = _output_topics(route)
    for topic in case.expect:
        if topic not in outputs and topic != DEAD_LETTERS and topic != route.dead_letter:
            valid = [*outputs, *([route.dead_letter] if route.dead_letter else []), DEAD_LETTERS]
            raise positions.error(
                f"route {route.name!r} does not write to {topic!r}; it writes to "
                f"{', '.join(valid)}",
                (*path, "expect", topic),
                at_key=True,
            )
    for i, event in enumerate(case.input):
        if event.topic is not None and event.topic not in route.inputs:
            raise positions.error(
                f"route {route.name!r} reads {', '.join(route.inputs)}, not {event.topic!r}",
                (*path, "input", i, "topic"),
            )


def _output_topics(route: RoutePlan) -> list[str]:
    topics = [output.topic for output in route.outputs]
    if route.unmatched:
        topics.append(route.unmatched)
    return list(dict.fromkeys(topics))


# --- running ------------------------------------------------------------------------------


async def run_suite(suite: Suite, registry: Registry | None = None) -> list[Outcome]:
    """Run every test of ``suite``, each with a fresh route (no state shared between tests)."""
    return [
        await run_case(suite.pipeline, case, name, registry)
        for case, name in zip(suite.cases, suite.names, strict=True)
    ]


async def run_case(
    pipeline: Pipeline, case: Case, name: str, registry: Registry | None = None
) -> Outcome:
    """Run one test through a new :class:`RouteProcessor` of its route."""
    from .runtime.context import RuntimeStepContext

    registry = registry or get_registry()
    route = pipeline.routes[case.route]
    outcome = Outcome(name, route.name)
    try:
        events = [_input(pipeline, route, registry, e, i) for i, e in enumerate(case.input)]
        processor = RouteProcessor(
            route, RuntimeStepContext(pipeline.name, route.name, pipeline.base_dir)
        )
    except Exception as exc:
        outcome.error = f"{type(exc).__name__}: {exc}"
        return outcome
    try:
        result = await processor.process(events)
    except Exception as exc:
        outcome.error = f"the steps raised {type(exc).__name__}: {exc}"
        return outcome
    finally:
        await processor.close()
    dead = list(result.dead)
    got: dict[str, list[dict[str, Any]]] = {}
    for topic, out in result.outputs.items():
        codec = registry.codec(pipeline.topics[topic].codec)
        got[topic] = []
        for event in out:
            try:
                value = codec.decode(codec.encode(event.value))
            except CodecError as exc:
                dead.append(DeadLetter(event, "encode", f"{topic}: {exc}"))
                continue
            got[topic].append(_shown(event, value))
    dead_key = DEAD_LETTERS if DEAD_LETTERS in case.expect else route.dead_letter or DEAD_LETTERS
    got[dead_key] = [
        {**_shown(d.event, _plain(d.event.value)), "step": d.step, "reason": d.reason} for d in dead
    ]
    for topic in dict.fromkeys([*case.expect, *got]):
        expected = [_expected(pipeline, registry, topic, e) for e in case.expect.get(topic, [])]
        actual = got.get(topic, [])
        if not _same(expected, actual):
            outcome.differences.append(Difference(topic, expected, actual, _diff(expected, actual)))
    return outcome


def _input(
    pipeline: Pipeline, route: RoutePlan, registry: Registry, given: InputEvent, offset: int
) -> Event:
    topic = given.topic or route.inputs[0]
    codec = registry.codec(pipeline.topics[topic].codec)
    try:
        value = codec.decode(codec.encode(given.value))
    except CodecError as exc:
        raise CodecError(f"input[{offset}]: topic {topic!r}: {exc}") from None
    return Event(
        value,
        None if given.key is None else given.key.encode(),
        tuple((name, text.encode()) for name, text in given.headers.items()),
        given.timestamp,
        topic,
        0,
        offset,
    )


def _shown(event: Event, value: Any) -> dict[str, Any]:
    """An event as the comparison sees it: text key and headers, the decoded value."""
    return {
        "value": value,
        "key": None if event.key is None else event.key.decode("utf-8", "replace"),
        "headers": {name: v.decode("utf-8", "replace") for name, v in event.headers},
        "timestamp": event.timestamp,
    }


def _plain(value: Any) -> Any:
    try:
        return orjson.loads(orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS))
    except (TypeError, orjson.JSONEncodeError):
        return repr(value)


def _expected(
    pipeline: Pipeline, registry: Registry, topic: str, given: ExpectedEvent
) -> dict[str, Any]:
    """The parts of an expected event that were given, its value put through the codec of
    its topic (as JSON for dead letters)."""
    parts = given.model_dump(exclude_unset=True)
    if "value" in parts:
        plan = pipeline.topics.get(topic)
        try:
            if plan is None or "reason" in parts or "step" in parts:
                raise CodecError("a dead letter")
            codec = registry.codec(plan.codec)
            parts["value"] = codec.decode(codec.encode(parts["value"]))
        except (CodecError, ConfigError):
            parts["value"] = _plain(parts["value"])
    return parts


def _equal(want: Any, have: Any) -> bool:
    """Equality as JSON sees it: 1 equals 1.0, but true is not 1."""
    if isinstance(want, bool) or isinstance(have, bool):
        return type(want) is type(have) and want == have
    if isinstance(want, dict) and isinstance(have, dict):
        return want.keys() == have.keys() and all(_equal(want[k], have[k]) for k in want)
    if isinstance(want, list | tuple) and isinstance(have, list | tuple):
        return len(want) == len(have) and all(_equal(w, h) for w, h in zip(want, have, strict=True))
    return bool(want == have)


def _matches(expected: Mapping[str, Any], actual: Mapping[str, Any]) -> bool:
    for part, want in expected.items():
        if part == "reason":
            if want not in actual.get("reason", ""):
                return False
        elif part == "headers":
            have = actual.get("headers", {})
            if any(have.get(name) != text for name, text in want.items()):
                return False
        elif not _equal(want, actual.get(part)):
            return False
    return True


def _same(expected: Sequence[Mapping[str, Any]], actual: Sequence[Mapping[str, Any]]) -> bool:
    return len(expected) == len(actual) and all(
        _matches(e, a) for e, a in zip(expected, actual, strict=True)
    )


def _render(event: Mapping[str, Any], parts: Sequence[str] | None = None) -> str:
    shown = {k: v for k, v in event.items() if parts is None or k in parts}
    if parts is None:  # an actual event: leave out what is empty
        shown = {k: v for k, v in shown.items() if v not in (None, {}, 0) or k == "value"}
    return orjson.dumps(shown, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _diff(expected: Sequence[Mapping[str, Any]], actual: Sequence[Mapping[str, Any]]) -> list[str]:
    """The longest run of matching events kept in order, the rest marked - or +."""
    n, m = len(expected), len(actual)
    longest = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n - 1, -1, -1):
        for j in range(m - 1, -1, -1):
            longest[i][j] = (
                longest[i + 1][j + 1] + 1
                if _matches(expected[i], actual[j])
                else max(longest[i + 1][j], longest[i][j + 1])
            )
    lines, i, j = [], 0, 0
    while i < n or j < m:
        if i < n and j < m and _matches(expected[i], actual[j]):
            lines.append("  " + _render(expected[i], list(expected[i])))
            i, j = i + 1, j + 1
        elif i < n and (j == m or longest[i + 1][j] >= longest[i][j + 1]):
            lines.append("- " + _render(expected[i], list(expected[i])))
            i += 1
        else:
            lines.append("+ " + _render(actual[j]))
            j += 1
    return lines
