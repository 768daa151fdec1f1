"""load_pipeline and the parts that run code: steps, their arguments and expressions."""

from __future__ import annotations

import pytest

from millstream.core import ConfigError, Event, Step
from millstream.core.step import StepContext

TEXT = """
pipeline: steps
topics: {raw: {}, clean: {}, hot: {}, rest: {}}
sources:
  tick:
    connector: ticker
    to: raw
    key: value.device
routes:
  clean:
    from: raw
    steps:
      - filter: value.temp is not None
      - drop: [debug]
    to: clean
  split:
    from: clean
    to:
      - {topic: hot, when: "value.temp > 30"}
      - rest
    switch: first
"""


def test_steps_and_expressions_are_compiled_into_the_plan(load, tmp_path) -> None:
    pipeline = load(TEXT)
    steps = pipeline.routes["clean"].steps
    assert [s.step.name for s in steps] == ["filter", "drop"]
    assert steps[0].args == "value.temp is not None"
    assert steps[1].path == "routes.clean.steps[1].drop"
    assert steps[1].where == f"{tmp_path / 'pipeline.yaml'}:13:9"
    hot, rest = pipeline.routes["split"].outputs
    assert (hot.topic, hot.when_text, rest.topic, rest.when) == (
        "hot",
        "value.temp > 30",
        "rest",
        None,
    )
    assert hot.when is not None
    assert hot.when(Event(value={"temp": 31})) is True
    assert hot.when(Event(value={"temp": 3})) is False
    source = pipeline.sources["tick"]
    assert source.key_text == "value.device" and source.key is not None
    assert source.key(Event(value={"device": "d1"})) == "d1"
    assert pipeline.routes["split"].switch == "first"


def test_unknown_step_says_did_you_mean(fails) -> None:
    error = fails(TEXT.replace("- drop: [debug]", "- dorp: [debug]"))
    assert (error.line, error.column, error.path) == (13, 9, "routes.clean.steps[1].dorp")
    assert error.message.startswith("unknown step 'dorp'; did you mean 'drop'? known: ")


def test_bad_step_argument(fails) -> None:
    error = fails(TEXT.replace("- drop: [debug]", "- drop: {debug: 1}"))
    assert (error.line, error.column, error.path) == (13, 15, "routes.clean.steps[1].drop")
    assert error.message.startswith("expected a list")


def test_a_step_entry_with_two_keys(fails) -> None:
    error = fails(TEXT.replace("- drop: [debug]", "- drop: [debug]\n        keep: [x]"))
    assert (error.line, error.column, error.path) == (13, 9, "routes.clean.steps[1]")
    assert "a step is a mapping with one key" in error.message


def test_bad_expression_in_a_step(fails) -> None:
    error = fails(TEXT.replace("value.temp is not None", "value.temp is not"))
    assert (error.line, error.column, error.path) == (12, 17, "routes.clean.steps[0].filter")
    assert error.message.startswith("invalid expression 'value.temp is not'")


def test_bad_when_expression(fails) -> None:
    error = fails(TEXT.replace('"value.temp > 30"', '"value.temp >> >"'))
    assert (error.line, error.column, error.path) == (18, 28, "routes.split.to[0].when")
    assert error.message.startswith("invalid expression")


def test_bad_key_expression(fails) -> None:
    error = fails(TEXT.replace("key: value.device", "key: value.device("))
    assert (error.line, error.column, error.path) == (7, 10, "sources.tick.key")
    assert error.message.startswith("invalid expression")


@pytest.mark.parametrize(
    "payload",
    [
        "__import__('os').system('id')",
        "value.__class__.__mro__",
        "().__class__.__bases__[0].__subclasses__()",
        "open('/etc/passwd')",
        "eval('1')",
        "[x for x in ().__class__.__base__.__subclasses__()]",
        "lower.__globals__",
    ],
)
def test_sandbox_escapes_are_refused_at_validation(fails, payload: str) -> None:
    quoted = payload.replace("'", "''")
    error = fails(TEXT.replace('"value.temp > 30"', f"'{quoted}'"))
    assert (error.line, error.column, error.path) == (18, 28, "routes.split.to[0].when")
    assert error.message.startswith("invalid expression")


class Pick(Step):
    """Compiles each value of its mapping as an expression, naming the key as the path."""

    name = "pick"
    Args = dict[str, str]

    def __init__(self, args: dict[str, str], context: StepContext) -> None:
        super().__init__(args, context)
        if "fail" in args:
            raise ConfigError(f"cannot pick {args['fail']}", path=args.get("at"))
        if "crash" in args:
            raise RuntimeError("boom")
        self.compiled = {name: context.expression(text, name) for name, text in args.items()}
        self.where = (context.pipeline, context.route, context.base_dir)

    def process(self, events, rejected):
        return events


PICK = TEXT.replace(
    "      - drop: [debug]\n", "      - pick:\n          a: value.a\n          b: value.b\n"
)


def test_a_step_compiling_an_expression_gets_the_place_of_its_text(fails, registry) -> None:
    registry.steps["pick"] = Pick
    error = fails(PICK.replace("b: value.b", "b: value.b +"), registry=registry)
    assert (error.line, error.column, error.path) == (15, 14, "routes.clean.steps[1].pick.b")


def test_a_step_error_without_a_position_is_located(fails, registry) -> None:
    registry.steps["pick"] = Pick
    error = fails(PICK.replace("b: value.b", "fail: it"), registry=registry)
    assert (error.line, error.column, error.path) == (14, 11, "routes.clean.steps[1].pick")
    assert error.message == "cannot pick it"
    error = fails(PICK.replace("b: value.b", "fail: it\n          at: fail"), registry=registry)
    assert (error.line, error.column, error.path) == (15, 17, "routes.clean.steps[1].pick.fail")
    error = fails(PICK.replace("b: value.b", "crash: now"), registry=registry)
    assert (error.line, error.column) == (14, 11)
    assert error.message == "step 'pick' cannot be built: RuntimeError: boom"
