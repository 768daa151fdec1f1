"""The parse step: json, csv, kv and regex."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from millstream.pipelines.steps import ParseStep


async def test_json_of_the_whole_value_text_or_bytes(harness) -> None:
    out = await harness.values((ParseStep, "json"), ['{"a": 1}', b"[1, 2]"])
    assert out == [{"a": 1}, [1, 2]]


async def test_json_of_a_field_in_place_or_into_another(harness) -> None:
    values = [{"payload": '{"v": 7}', "n": 1}]
    in_place = await harness.values((ParseStep, {"format": "json", "field": "payload"}), values)
    assert in_place == [{"payload": {"v": 7}, "n": 1}]
    into = {"format": "json", "field": "raw.p", "into": "parsed.body"}
    out = await harness.values((ParseStep, into), [{"raw": {"p": "[1]"}}])
    assert out == [{"raw": {"p": "[1]"}, "parsed": {"body": [1]}}]
    whole = {"format": "json", "field": "payload", "into": "."}
    assert await harness.values((ParseStep, whole), [{"payload": '{"v": 7}'}]) == [{"v": 7}]


async def test_text_into_a_field_makes_an_object(harness) -> None:
    out = await harness.values((ParseStep, {"format": "kv", "into": "fields"}), ["a=1 b=2"])
    assert out == [{"fields": {"a": "1", "b": "2"}}]


async def test_bad_json_is_rejected_with_the_reason(harness) -> None:
    out, rejected = await harness.run((ParseStep, "json"), ['{"a": 1}', "{nope"])
    assert [e.value for e in out] == [{"a": 1}]
    assert rejected[0].event.value == "{nope"
    assert rejected[0].reason.startswith("parse json: ValueError: not valid JSON")


async def test_missing_or_wrong_kind_of_input_is_rejected(harness) -> None:
    step = (ParseStep, {"format": "json", "field": "p"})
    out, rejected = await harness.run(step, [{}, {"p": 5}, None])
    assert out == []
    assert [r.reason for r in rejected] == [
        "parse json: p is missing",
        "parse json: TypeError: p is int, not text",
        "parse json: p is missing",
    ]
    _, rejected = await harness.run((ParseStep, "json"), [None, 5])
    assert rejected[0].reason == "parse json: the value is missing"
    assert rejected[1].reason == "parse json: TypeError: the value is int, not text"


async def test_csv_with_column_names_or_as_a_list(harness) -> None:
    named = (ParseStep, {"format": "csv", "columns": ["device", "temp", "note"]})
    out = await harness.values(named, ['d1,21.5,"a, b"'])
    assert out == [{"device": "d1", "temp": "21.5", "note": "a, b"}]
    assert await harness.values((ParseStep, "csv"), ["a,b,,c"]) == [["a", "b", "", "c"]]
    semicolons = (ParseStep, {"format": "csv", "delimiter": ";"})
    assert await harness.values(semicolons, ["a;b"]) == [["a", "b"]]


async def test_csv_with_the_wrong_shape_is_rejected(harness) -> None:
    named = (ParseStep, {"format": "csv", "columns": ["a", "b"]})
    _, rejected = await harness.run(named, ["1,2,3", "1\n2", 'x,"unclosed'])
    assert rejected[0].reason == "parse csv: ValueError: 3 fields for 2 columns"
    assert rejected[1].reason == "parse csv: ValueError: expected one row, got 2"
    assert rejected[2].reason.startswith("parse csv: Error")


async def test_csv_quoted_fields_keep_their_line_breaks(harness) -> None:
    named = (ParseStep, {"format": "csv", "columns": ["a", "b", "c"]})
    values = ['a,"b\nc",d', 'a,"b\r\nc",d\r\n', "a,b\x0cc,d", "a,b\u2028c,d", "1,2,3\n\n"]
    assert await harness.values(named, values) == [
        {"a": "a", "b": "b\nc", "c": "d"},
        {"a": "a", "b": "b\r\nc", "c": "d"},
        {"a": "a", "b": "b\x0cc", "c": "d"},
        {"a": "a", "b": "b\u2028c", "c": "d"},
        {"a": "1", "b": "2", "c": "3"},
    ]
    _, rejected = await harness.run(named, ["", "a,b,c\rd,e,f"])
    assert [r.reason for r in rejected] == [
        "parse csv: ValueError: expected one row, got 0",
        "parse csv: ValueError: expected one row, got 2",
    ]


async def test_kv_quoted_values(harness) -> None:
    texts = [
        'msg="hello world" level=info',
        "q='it is \\'ok\\'' path=\"C:\\\\tmp\\\\x\" raw=C:\\x",
        'a="" b="x=y"',
    ]
    assert await harness.values((ParseStep, "kv"), texts) == [
        {"msg": "hello world", "level": "info"},
        {"q": "it is 'ok'", "path": "C:\\tmp\\x", "raw": "C:\\x"},
        {"a": "", "b": "x=y"},
    ]
    custom = (ParseStep, {"format": "kv", "pair_separator": ";"})
    assert await harness.values(custom, ['a = "x; y" ; b=2;;']) == [{"a": "x; y", "b": "2"}]
    _, rejected = await harness.run((ParseStep, "kv"), ['msg="open', 'a="x"y b=1'])
    assert rejected[0].reason == "parse kv: ValueError: '\"open': the quote is not closed"
    assert "right after the closing quote" in rejected[1].reason


async def test_kv_pairs(harness) -> None:
    out = await harness.values((ParseStep, "kv"), ['level=info  msg="started" code=200'])
    assert out == [{"level": "info", "msg": "started", "code": "200"}]
    custom = (ParseStep, {"format": "kv", "pair_separator": ";", "value_separator": ":"})
    assert await harness.values(custom, ["a: 1; b :x y;"]) == [{"a": "1", "b": "x y"}]
    _, rejected = await harness.run((ParseStep, "kv"), ["a=1 junk"])
    assert rejected[0].reason == "parse kv: ValueError: 'junk' is not name=value"


async def test_regex_named_groups(harness) -> None:
    step = (
        ParseStep,
        {"format": "regex", "pattern": r"(?P<level>[A-Z]+): (?P<text>.*)", "into": "log"},
    )
    out, rejected = await harness.run(step, ["WARN: disk low", "no level here"])
    assert [e.value for e in out] == [{"log": {"level": "WARN", "text": "disk low"}}]
    assert rejected[0].reason.startswith("parse regex: ValueError: no match for")


@pytest.mark.parametrize(
    ("argument", "message"),
    [
        ("xml", "json"),
        ({"format": "regex"}, "needs a pattern"),
        ({"format": "regex", "pattern": "(a"}, "invalid regular expression"),
        ({"format": "regex", "pattern": "(a)"}, "no named groups"),
        ({"format": "json", "pattern": "(?P<a>x)"}, "pattern is for format regex"),
        ({"format": "kv", "columns": ["a"]}, "columns are for format csv"),
        ({"format": "json", "fields": "x"}, "fields"),
        ({"format": "csv", "delimiter": ";;"}, "delimiter"),
        ({"format": "json", "field": "a..b"}, "not a field path"),
    ],
)
def test_bad_arguments(harness, argument: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        harness.build(ParseStep, argument)


def test_a_bad_argument_in_a_file_is_located(harness) -> None:
    from millstream.core.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        harness.pipeline("- parse: {format: regex, pattern: '(a)'}")
    assert caught.value.line == 10 and "no named groups" in caught.value.message
