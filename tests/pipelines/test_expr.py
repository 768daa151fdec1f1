"""Pipeline expressions: the language, its None rules, and the sandbox."""

from __future__ import annotations

import time

import pytest
from pydantic import TypeAdapter, ValidationError

from millstream.core.errors import ConfigError
from millstream.core.event import Event
from millstream.pipelines.expr import (
    FUNCTIONS,
    NAMES,
    ExpressionText,
    compile_expression,
    compile_expressions,
    compile_update,
)

READING = {
    "device": "d1",
    "temp": 21.5,
    "tags": ["a", "b"],
    "site": {"name": "Mill", "floor": {"n": 2}},
    "items": [{"qty": 1, "sku": "x"}, {"qty": 3, "sku": "y"}],
    "payload": '{"inner": {"v": 7}}',
    "when": "2024-05-01T12:00:00Z",
    "weird key": 1,
}


def ev(value: object = None, **parts: object) -> Event:
    return Event(READING if value is None else value, **parts)  # type: ignore[arg-type]


def run(text: str, event: Event | None = None) -> object:
    return compile_expression(text)(event or ev())


# --- reading the event --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("value.temp", 21.5),
        ('value["temp"]', 21.5),
        ("value.site.name", "Mill"),
        ("value.site.floor.n", 2),
        ('value["site"]["floor"]["n"]', 2),
        ('value["weird key"]', 1),
        ("value.tags[0]", "a"),
        ("value.tags[-1]", "b"),
        ("value.tags[0:1]", ["a"]),
        ("value.items[1].sku", "y"),
        ("value.device[1:]", "1"),
        ("value.site[value.device]", None),
    ],
)
def test_fields_are_read_with_dots_and_brackets(text: str, expected: object) -> None:
    assert run(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "value.missing",
        "value.missing.deeper.still",
        "value.temp.inside",  # a field of a number
        "value.device.x",  # a field of a string
        "value.tags.x",  # a field of a list
        "value.tags[7]",  # past the end
        'value.tags["x"]',
        "value.site[0]",
        "json(value.payload).inner.nope",
        "value[value.tags[0]]",
    ],
)
def test_a_missing_field_reads_as_none(text: str) -> None:
    assert run(text) is None


def test_a_value_that_is_none_or_not_a_dict_has_no_fields() -> None:
    f = compile_expression("value.temp")
    assert f(Event(None)) is None
    assert f(Event("text")) is None
    assert f(Event([1, 2])) is None
    assert f(Event(b"raw")) is None


def test_key_headers_and_position() -> None:
    event = Event(
        {"x": 1},
        key=b"dev-1",
        headers=(("source", b"gw"), ("source", b"gw2"), ("bin", b"\xff")),
        timestamp=1_700_000_000_000,
        topic="readings",
        partition=3,
        offset=42,
    )
    assert run("key", event) == "dev-1"
    assert run("headers.source", event) == "gw2"  # the last of a repeated name
    assert run('headers["bin"]', event) == "\ufffd"
    assert run("headers.absent", event) is None
    assert run("timestamp", event) == 1_700_000_000_000
    assert run("(topic, partition, offset)", event) == ("readings", 3, 42)
    assert run("key", Event(1)) is None
    assert run("headers", Event(1)) == {}


# --- operators and None -------------------------------------------------------------------


def test_the_quickstart_filter() -> None:
    f = compile_expression("value.temp is not None and -50 < value.temp < 150")
    assert f(ev({"temp": 20})) is True
    assert f(ev({"temp": 200})) is False
    assert f(ev({"temp": None})) is False
    assert f(ev({})) is False
    assert f(Event(None)) is False


def test_ordering_with_none_raises_as_python_does() -> None:
    f = compile_expression("value.temp > 5")
    with pytest.raises(TypeError, match="'>' not supported"):
        f(ev({}))


def test_equality_with_none_does_not_raise() -> None:
    assert run("value.missing == None") is True
    assert run("value.missing != 3") is True


def test_arithmetic_conditionals_and_literals() -> None:
    assert run("value.temp * 9 / 5 + 32") == pytest.approx(70.7)
    assert run("value.site.floor.n ** 2 + 7 // 2 - 10 % 4") == 5
    assert run("'hot' if value.temp > 20 else 'cold'") == "hot"
    assert run("{'d': value.device, 'n': [1, *value.tags]}") == {"d": "d1", "n": [1, "a", "b"]}
    assert run("{**value.site, 'extra': True}")["extra"] is True  # type: ignore[index]
    assert run("'a' in value.tags and 'z' not in value.tags") is True
    assert run("f'{value.device}: {value.temp:.0f}°'") == "d1: 22°"
    assert run("value.site.floor.n << 2 | 1") == 9


def test_comprehensions() -> None:
    assert run("[i.sku for i in value.items if i.qty > 1]") == ["y"]
    assert run("sum(i.qty for i in value.items)") == 4
    assert run("any(t == 'b' for t in value.tags)") is True
    assert run("{i.sku: i.qty for i in value.items}") == {"x": 1, "y": 3}
    assert run("[(a, b) for a in value.tags for b in value.tags if a < b]") == [("a", "b")]
    assert run("[k for k in value.site]") == ["name", "floor"]


# --- functions ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("len(value.tags)", 2),
        ("str(value.site.floor.n)", "2"),
        ("int('42')", 42),
        ("float('1.5')", 1.5),
        ("round(value.temp)", 22),
        ("round(2.345, 2)", 2.35),
        ("abs(-3)", 3),
        ("min(3, 1, 2)", 1),
        ("max(value.tags)", "b"),
        ("lower(value.site.name)", "mill"),
        ("upper(value.device)", "D1"),
        ("lower(value.missing)", None),
        ("startswith(value.device, 'd')", True),
        ("endswith(value.device, '1')", True),
        ("startswith(value.missing, 'd')", False),
        ("contains(value.tags, 'a')", True),
        ("contains(value.site.name, 'il')", True),
        ("contains(value.missing, 'a')", False),
        ("match(value.device, '^d[0-9]+$')", True),
        ("match(value.device, 'x')", False),
        ("match(value.missing, 'x')", False),
        ("match(value.device, value.site.name)", False),
        ("parse_time(value.when)", 1_714_564_800_000),
        ("parse_time('2024-05-01T14:00:00+02:00')", 1_714_564_800_000),
        ("parse_time('2024-05-01 12:00:00')", 1_714_564_800_000),
        ("parse_time('01/05/2024', '%d/%m/%Y')", 1_714_521_600_000),
        ("parse_time(value.missing)", None),
        ("json(value.payload).inner.v", 7),
        ("json(value.tags)", '["a","b"]'),
        ("json(value.missing)", "null"),
    ],
)
def test_functions(text: str, expected: object) -> None:
    assert run(text) == expected


def test_backslashes_in_patterns_are_kept_without_warnings() -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        f = compile_expression(r"match(value.code, '^\d+-\w$')")
    assert f(ev({"code": "42-a"})) is True
    assert f(ev({"code": "x-a"})) is False


def test_now_is_the_current_time_in_milliseconds() -> None:
    before = time.time() * 1000
    got = run("now()")
    assert isinstance(got, int)
    assert before - 1 <= got <= time.time() * 1000 + 1


def test_run_time_errors_raise() -> None:
    for text in ("int('x')", "parse_time('yesterday')", "json('{bad')", "value.temp + 'x'"):
        with pytest.raises((ValueError, TypeError)):
            run(text)


def test_unbounded_results_from_data_are_refused_at_run_time() -> None:
    with pytest.raises(OverflowError):
        compile_expression("value.b ** value.e")(Event({"b": 10, "e": 10**7}))
    with pytest.raises(OverflowError):
        compile_expression("value.s * value.n")(Event({"s": "ab", "n": 10**9}))
    with pytest.raises(TypeError, match="formatting"):
        compile_expression("value.s % value.n")(Event({"s": "%s", "n": 1}))
    assert compile_expression("value.a % value.b")(Event({"a": 7, "b": 4})) == 3


@pytest.mark.parametrize(
    ("text", "value", "message"),
    [
        ("value.s * 1000000", {"s": "x" * 100}, "100,000,000, over the limit of 10,000,000"),
        ("1000000 * value.s", {"s": "x" * 100}, "over the limit of 10,000,000"),
        ("value.xs * 20", {"xs": [0] * 1_000_000}, "over the limit of 10,000,000"),
        ("((timestamp ** 1000) ** 1000) > 0", None, "over the limit of 100,000"),
        ("(((timestamp ** 1000) ** 1000) ** 1000) > 0", None, "over the limit of 100,000"),
        ("value.n << 1000 << 1000 << 100000", {"n": 3}, "over the limit of 100,000"),
        ("[c * c for c in [b * b for b in [a * a for a in [value.n ** 10000]]]]", {"n": 3},
         "over the limit of 100,000"),
        ("any(a == -b - 1 for a in value.xs for b in value.xs)", {"xs": list(range(1001))},
         "more than 1,000,000 items"),
        ("[[b for b in value.xs] for a in value.xs]", {"xs": "x" * 1001},
         "more than 1,000,000 items"),
        ("sum(1 for a in 'x' * value.n)", {"n": 2_000_000}, "more than 1,000,000 items"),
    ],
)  # fmt: skip
def test_data_cannot_make_an_expression_run_away(text: str, value: object, message: str) -> None:
    f = compile_expression(text)
    started = time.perf_counter()
    with pytest.raises(OverflowError, match=message):
        f(Event(value, timestamp=1_700_000_000_000))
    assert time.perf_counter() - started < 1


def test_percent_formatting_of_text_from_the_data_is_refused() -> None:
    f = compile_expression("value.fmt % 1")
    with pytest.raises(TypeError, match="'%' formatting of text is not available"):
        f(Event({"fmt": "%0300000000d"}))
    assert f(Event({"fmt": 7})) == 0
    assert compile_expression("value.fmt % value.n")(Event({"fmt": 7.5, "n": 2})) == 1.5
    with pytest.raises(TypeError, match="formatting"):
        compile_expression("value.fmt % value.n")(Event({"fmt": b"%d", "n": 2}))


def test_bounded_arithmetic_still_computes_ordinary_values() -> None:
    event = Event({"n": 3, "f": 1.5, "s": "ab", "xs": [1, 2], "flag": True}, timestamp=10)
    cases = {
        "value.n * 9 / 5 + 32": 37.4,
        "2 * value.f * 3": 9.0,
        "value.s * 3": "ababab",
        "3 * value.xs": [1, 2, 1, 2, 1, 2],
        "value.flag * 4": 4,
        "value.n * value.f": 4.5,
        "value.n ** 2": 9,
        "value.f ** 2": 2.25,
        "2 ** value.n": 8,
        "value.n ** -1": pytest.approx(1 / 3),
        "value.n << 4": 48,
        "value.n % 2": 1,
        "timestamp % 3": 1,
        "2 ** 99999 > 0": True,
        "value.n ** 1000 > 0": True,
        "sum(a * b for a in value.xs for b in value.xs)": 9,
        "[x * 2 for x in value.xs * 2]": [2, 4, 2, 4],
    }
    for text, expected in cases.items():
        assert compile_expression(text)(event) == expected, text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[0] * 1000000 * 20", "20,000,000, over the limit of 10,000,000"),
        ("('ab' * 1000000 + 'c') * 10", "over the limit of 10,000,000"),
        ("'ab' * 6000000 + 'c'", "over the limit of 10,000,000"),
        ("value.x + 2 ** 200000", "over the limit of 100,000"),
        ("(10 ** 1000) ** 1000", "over the limit of 100,000"),
        ("1 << 1000 << 1000 << 100000", "over the limit of 100,000"),
        ('any(x == y for x in "x" * 10000000 for y in "y" * 10000000)', "over the limit of 1,0"),
        ('[x for x in "x" * 1000001]', "1,000,001 items, over the limit of 1,000,000"),
        ("[(a, b) for a in 'x' * 1001 for b in 'y' * 1000]", "1,001,000 items"),
        ("[[b for b in 'y' * 1000] for a in 'x' * 1001]", "1,001,000 items"),
    ],
)
def test_constants_over_the_bounds_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        compile_expression(text)


def test_constant_arithmetic_is_computed_once_when_compiling() -> None:
    f = compile_expression("'ab' * 3 + 'c'")
    assert f(ev()) == "abababc"
    assert "abababc" in f.__code__.co_consts
    assert compile_expression("[1, 2] * 2")(ev()) == [1, 2, 1, 2]
    first, second = compile_expression("[0] * 2")(ev()), compile_expression("[0] * 2")(ev())
    assert first == second and first is not second  # a fresh list each time
    with pytest.raises(ZeroDivisionError):
        run("1 / 0")


# --- compiling ----------------------------------------------------------------------------


def test_compiling_twice_gives_the_same_function() -> None:
    assert compile_expression("value.temp > 1") is compile_expression("value.temp > 1")


def test_compile_expressions_gives_a_tuple() -> None:
    f = compile_expressions(["value.temp", "value.site.name", "value.temp + 1"])
    assert f(ev()) == (21.5, "Mill", 22.5)
    assert compile_expressions(["value.device"])(ev()) == ("d1",)
    assert compile_expressions([])(ev()) == ()
    with pytest.raises(ConfigError, match="'nope'"):
        compile_expressions(["value.x", "nope"])


def test_compile_update_sets_fields_after_computing_them_all() -> None:
    update = compile_update({"n": "value.n + 1", "old": "value.n", "f": "value.temp * 2"})
    event = ev({"n": 1, "temp": 2})
    assert update(event) is None
    assert event.value == {"n": 2, "temp": 2, "old": 1, "f": 4}
    failing = ev({"n": 1})
    with pytest.raises(TypeError):
        update(failing)
    assert failing.value == {"n": 1}  # nothing set when one expression raised
    with pytest.raises(ConfigError, match="'nope'"):
        compile_update({"a": "nope"})


def test_expression_text_validates_in_pydantic() -> None:
    adapter = TypeAdapter(ExpressionText)
    assert adapter.validate_python("value.x > 1") == "value.x > 1"
    with pytest.raises(ValidationError, match="unknown name 'valeu'; did you mean 'value'"):
        adapter.validate_python("valeu.x > 1")
    assert adapter.json_schema()["type"] == "string"


def test_the_names_and_functions_are_the_documented_ones() -> None:
    assert NAMES == ("value", "key", "headers", "timestamp", "topic", "partition", "offset")
    assert set(FUNCTIONS) >= {
        "len", "str", "int", "float", "round", "abs", "min", "max", "lower", "upper",
        "startswith", "endswith", "contains", "match", "now", "parse_time", "json",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "must not be empty"),
        ("   ", "must not be empty"),
        ("value.temp >", "invalid syntax"),
        ("valeu.temp", "did you mean 'value'"),
        ("temp > 5", "unknown name 'temp'"),
        ("hello", "text needs quotes"),
        ("lenn(value)", "did you mean 'len'"),
        ("len", "can only be called"),
        ("len(value, 1)", "takes 1 argument"),
        ("now(1)", "takes 0 argument"),
        ("min(value, key=len)", "no keyword arguments"),
        ("match(value, '(')", "invalid regular expression"),
        ("match(value, 3)", "needs a text pattern"),
        ("value.x(1)", "method calls"),
        ("value @ value", "'@'"),
        ("(i for i in value.tags)", "generator"),
        ("[value for value in value.tags]", "would shadow"),
        ("[len for len in value.tags]", "would shadow"),
        ("[x for x in value.a for x in value.b]", "would shadow"),
        ("[value.x for value.x in value.a]", "plain name"),
        ("1j", "constant"),
        ("x" * 10_001, "longer than"),
    ],
)
def test_invalid_expressions_are_config_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        compile_expression(text)
    assert caught.value.file is None and caught.value.line is None
    assert "\n" not in str(caught.value)


# --- the sandbox --------------------------------------------------------------------------

ESCAPES = [
    "().__class__.__bases__[0].__subclasses__()",
    "().__class__",
    "__import__('os')",
    "__import__('os').system('true')",
    "value.__class__",
    "value.__class__.__mro__",
    "value._private",
    "getattr(value, '__class__')",
    "eval('1')",
    "exec('1')",
    "open('/etc/passwd')",
    "globals()",
    "locals()",
    "vars()",
    "dir()",
    "type(value)",
    "__builtins__",
    "__builtins__['eval']",
    "_e",
    "_dict",
    "_field(value, 'x')",
    "[c for c in ().__class__.__mro__]",
    "[c for c in value.__class__.__mro__[1].__subclasses__()]",
    "[x.__class__ for x in value.tags]",
    "[_ for _ in value.tags]",
    "(lambda: 1)()",
    "(lambda: 1)",
    "'{0.__class__}'.format(value)",
    "'{0.__class__.__init__.__globals__}'.format(value)",
    "str.format('{0.__class__}', value)",
    "'{x.__class__}'.format_map({'x': value})",
    "f'{value.__class__}'",
    "f'{value:{value.spec}}'",
    "f'{1:99999999}'",
    "'%(a)99999999s' % value",
    "(x := value)",
    "[y := 1 for x in value.tags]",
    "9**9**9",
    "10 ** 10 ** 10",
    "2 ** (3 ** 50)",
    "'a' * 10**10",
    "[0] * 10**10",
    "1 << 10**10",
    "str.__dict__",
    "len.__self__",
    "min.__call__(1)",
    "value.get('x')",
    "value.keys()",
    "lower.__globals__",
    "await value",
    "(yield value)",
    "import os",
    "value; import os",
    "value\nimport os",
    "[x async for x in value]",
    "\x00",
]


@pytest.mark.parametrize("text", ESCAPES)
def test_sandbox_escapes_are_rejected_when_compiling(text: str) -> None:
    with pytest.raises(ConfigError, match="^invalid expression") as caught:
        compile_expression(text)
    assert "\n" not in str(caught.value)


def test_a_dunder_key_in_brackets_is_only_a_dict_lookup() -> None:
    assert run('value["__class__"]') is None
    assert run('value["__class__"]', ev({"__class__": 1})) == 1


def test_an_expression_has_no_builtins() -> None:
    f = compile_expression("value")
    assert f.__globals__["__builtins__"] == {}
    assert not any(name in f.__globals__ for name in ("eval", "open", "getattr", "type"))
