"""The validate step: JSON Schema files, invalid values rejected with the first error."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from millstream.core.errors import ConfigError
from millstream.pipelines.steps import ValidateStep

SCHEMA = {
    "type": "object",
    "required": ["device", "temp"],
    "properties": {
        "device": {"type": "string"},
        "temp": {"type": "number", "minimum": -50},
        "site": {"type": "object", "properties": {"since": {"format": "date"}}},
    },
}


@pytest.fixture
def schema_file(tmp_path: Path) -> str:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "reading.json").write_bytes(orjson.dumps(SCHEMA))
    return "schemas/reading.json"


async def test_valid_values_pass_invalid_ones_are_rejected(harness, schema_file: str) -> None:
    values = [
        {"device": "d1", "temp": 20},
        {"device": "d1", "temp": "hot"},
        {"device": "d1"},
        {"device": "d1", "temp": -60},
        {"device": "d1", "temp": 1, "site": {"since": "yesterday"}},
        "text",
    ]
    out, rejected = await harness.run((ValidateStep, schema_file), values)
    assert [e.value for e in out] == [values[0]]
    assert [r.reason for r in rejected] == [
        "$.temp: 'hot' is not of type 'number'",
        "$: 'temp' is a required property",
        "$.temp: -60 is less than the minimum of -50",
        "$.site.since: 'yesterday' is not a 'date'",
        "$: 'text' is not of type 'object'",
    ]


@pytest.mark.parametrize(
    ("kind", "good", "bad"),
    [
        (
            "date-time",
            ["2024-05-01T12:00:00Z", "2024-05-01t12:00:00.123456789+02:00",
             "2016-12-31T23:59:60Z", "2024-02-29T00:00:00-23:59"],
            ["not a time", "2024-05-01T12:00:00", "2024-05-01 12:00:00Z", "2024-13-01T00:00:00Z",
             "2023-02-29T00:00:00Z", "2024-05-01T24:00:00Z", "2024-05-01T12:00Z",
             "2024-05-01T12:00:00+24:00", "2024-05-01T12:00:00+0200", "2024-05-01T12:00:00.Z",
             "２０２４-05-01T12:00:00Z", "2024-05-01T12:00:00Z\n"],
        ),
        (
            "time",
            ["12:00:00Z", "23:59:60.5+01:00", "00:00:00-12:30"],
            ["12:00:00", "25:00:00Z", "12:60:00Z", "noon", "12:00:00+01"],
        ),
        ("date", ["2024-02-29"], ["2023-02-29", "yesterday"]),
        ("ipv4", ["10.0.0.1"], ["10.0.0.256"]),
    ],
)  # fmt: skip
async def test_formats_are_checked(harness, tmp_path: Path, kind, good, bad) -> None:
    (tmp_path / "f.json").write_bytes(orjson.dumps({"format": kind}))
    step = harness.build(ValidateStep, "f.json")
    out, rejected = await harness.run(step, [*good, *bad, 5])
    assert [e.value for e in out] == [*good, 5]  # a format says nothing of a non-text value
    assert [r.event.value for r in rejected] == bad
    assert rejected[0].reason == f"$: {bad[0]!r} is not a {kind!r}"


async def test_yaml_schema_and_long_form(harness, tmp_path: Path) -> None:
    (tmp_path / "s.yaml").write_text("type: object\nrequired: [id]\n")
    out, rejected = await harness.run((ValidateStep, {"schema": "s.yaml"}), [{"id": 1}, {}])
    assert len(out) == 1 and rejected[0].reason == "$: 'id' is a required property"


def test_the_file_is_found_beside_the_pipeline_file(harness, schema_file: str) -> None:
    pipeline = harness.pipeline(f"- validate: {schema_file}")
    step_plan = pipeline.routes["r"].steps[0]
    assert step_plan.args.schema_file == schema_file


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "cannot read the schema file"),
        ("{not json", "is not valid JSON"),
        ('{"type": 5}', "is not a valid JSON Schema: $.type: 5 is not valid"),
        ("[1]", "holds no JSON Schema object"),
    ],
)
def test_a_bad_schema_file_is_a_located_config_error(
    harness, tmp_path: Path, content: str | None, message: str
) -> None:
    if content is not None:
        (tmp_path / "bad.json").write_text(content)
    with pytest.raises(ConfigError) as caught:
        harness.pipeline("- validate: bad.json")
    assert caught.value.line == 10
    assert caught.value.path == "routes.r.steps[0].validate"
    assert message in caught.value.message
