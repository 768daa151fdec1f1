"""validate_node: any pydantic type over any part of a document, errors located in the file."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field

from millstream.core.errors import ConfigError
from millstream.pipelines.spec import read_yaml, validate_node

TEXT = """\
tests:
  - name: hot readings
    route: clean
    input:
      - {value: {temp: 20}}
      - {value: {temp: 200}, key: k1}
    expect:
      hot: 1
"""


class Case(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    route: str
    input: list[dict[str, object]] = Field(min_length=1)
    expect: dict[str, int] = {}
    mode: Literal["exact", "subset"] = "exact"


def case_error(text: str) -> ConfigError:
    document = read_yaml("t.yaml", text=text, env={})
    with pytest.raises(ConfigError) as caught:
        validate_node(Case, document.value["tests"][0], document.positions, ("tests", 0))
    return caught.value


def test_a_valid_node_gives_the_validated_value() -> None:
    document = read_yaml("t.yaml", text=TEXT, env={})
    case = validate_node(Case, document.value["tests"][0], document.positions, ("tests", 0))
    assert case.name == "hot readings" and len(case.input) == 2
    assert validate_node(list[Case], document.value["tests"], document.positions, ("tests",))


def test_errors_carry_the_full_path_and_position() -> None:
    error = case_error(TEXT.replace("hot: 1", "hot: many"))
    assert (error.file, error.line, error.column) == ("t.yaml", 8, 12)
    assert error.path == "tests[0].expect.hot"
    assert error.message == "expected a whole number, got 'many'"


def test_unknown_key_in_a_list_item() -> None:
    error = case_error(TEXT.replace("    route: clean", "    rout: clean"))
    assert (error.line, error.column, error.path) == (3, 5, "tests[0].rout")
    assert error.message == (
        "unknown key 'rout'; did you mean 'route'? valid keys: name, route, input, expect, mode"
    )


def test_missing_key_points_at_the_entry() -> None:
    error = case_error(TEXT.replace("    route: clean\n", ""))
    assert (error.line, error.column, error.path) == (2, 5, "tests[0]")
    assert error.message == "missing required key 'route'"


def test_an_item_of_the_wrong_kind() -> None:
    error = case_error(TEXT.replace("      - {value: {temp: 20}}", "      - just text"))
    assert (error.line, error.column, error.path) == (5, 9, "tests[0].input[0]")
    assert error.message == "expected a mapping (key: value), got 'just text'"


def test_a_union_says_what_each_side_expects() -> None:
    document = read_yaml("u.yaml", text="to: {a: 1}\n", env={})
    with pytest.raises(ConfigError) as caught:
        validate_node(dict[str, str | list[str]], document.value, document.positions)
    error = caught.value
    assert (error.line, error.column, error.path) == (1, 5, "to")
    assert error.message == "expected text or a list, got a mapping"


def test_a_bad_key_of_a_mapping_points_at_the_key() -> None:
    document = read_yaml("k.yaml", text="counts:\n  one: 1\n  two: x\n", env={})
    with pytest.raises(ConfigError) as caught:
        validate_node(
            dict[str, dict[Literal["one", "three"], int]], document.value, document.positions
        )
    # both the key 'two' and its value are wrong; the first in the file is reported
    assert (caught.value.line, caught.value.column, caught.value.path) == (3, 3, "counts.two")
