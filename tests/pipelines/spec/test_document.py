"""read_yaml: plain values, the position of every key, value and item, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from millstream.core.errors import ConfigError
from millstream.pipelines.spec import Position, format_path, read_yaml

TEXT = """\
pipeline: p
topics:
  readings: {partitions: 4}
list:
  - first
  - {topic: hot, when: "value.x > 1"}
when: 2024-05-01
"""


def read(text: str, env: dict[str, str] | None = None):
    return read_yaml("p.yaml", text=text, env=env or {})


def test_values_are_plain_python() -> None:
    document = read(TEXT)
    assert document.value == {
        "pipeline": "p",
        "topics": {"readings": {"partitions": 4}},
        "list": ["first", {"topic": "hot", "when": "value.x > 1"}],
        "when": "2024-05-01",
    }


def test_every_key_value_and_item_has_its_position() -> None:
    positions = read(TEXT).positions
    assert positions.key(("topics", "readings")) == Position(3, 3)
    assert positions.value(("topics", "readings")) == Position(3, 13)
    assert positions.key(("topics", "readings", "partitions")) == Position(3, 14)
    assert positions.value(("topics", "readings", "partitions")) == Position(3, 26)
    assert positions.value(("list", 0)) == Position(5, 5)
    assert positions.key(("list", 1)) == Position(6, 5)
    assert positions.value(("list", 1, "when")) == Position(6, 24)


def test_a_path_not_in_the_file_points_at_its_nearest_ancestor() -> None:
    positions = read(TEXT).positions
    assert positions.value(("topics", "readings", "codec")) == Position(3, 13)
    assert positions.key(("topics", "readings", "codec")) == Position(3, 3)
    assert positions.value(("nothing", "here")) == Position(1, 1)


def test_format_path() -> None:
    assert format_path(("routes", "clean", "steps", 0, "filter")) == "routes.clean.steps[0].filter"
    assert format_path(()) == ""


def test_duplicate_keys_are_refused_at_the_second() -> None:
    with pytest.raises(ConfigError) as caught:
        read("topics:\n  a: {}\n  b: {}\n  a: {partitions: 2}\n")
    error = caught.value
    assert (error.file, error.line, error.column, error.path) == ("p.yaml", 4, 3, "topics.a")
    assert error.message == "duplicate key 'a' (first given on line 2); give each key once"


def test_yaml_syntax_errors_are_located() -> None:
    with pytest.raises(ConfigError) as caught:
        read("topics:\n  a: {partitions: 2\nsources: {}\n")
    assert caught.value.message.startswith("invalid YAML: ")
    assert (caught.value.line, caught.value.column) == (3, 8)


def test_unknown_tags_are_refused() -> None:
    with pytest.raises(ConfigError) as caught:
        read("a: !!python/object:os.system x\n")
    assert (caught.value.line, caught.value.column, caught.value.path) == (1, 4, "a")
    assert "unsupported YAML tag" in caught.value.message


def test_keys_must_be_text() -> None:
    with pytest.raises(ConfigError) as caught:
        read("? [a, b]\n: 1\n")
    assert "a key must be text" in caught.value.message


def test_anchors_and_merge_keys() -> None:
    document = read(
        "base: &retry {max_attempts: 5, initial: 1s}\n"
        "one:\n  <<: *retry\n  initial: 2s\n"
        "two: *retry\n"
    )
    assert document.value["one"] == {"max_attempts": 5, "initial": "2s"}
    assert document.value["two"] == {"max_attempts": 5, "initial": "1s"}
    assert document.positions.value(("one", "initial")) == Position(4, 12)
    assert document.positions.value(("one", "max_attempts")) == Position(1, 29)


def test_alias_bombs_are_refused() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 8):
        prev = chr(ord("a") + i - 1)
        name = chr(ord("a") + i)
        lines.append(f"{name}: &{name} [{', '.join([f'*{prev}'] * 10)}]")
    with pytest.raises(ConfigError) as caught:
        read("\n".join(lines) + "\n")
    assert "too many values" in caught.value.message


def test_strings_are_substituted_from_env_other_scalars_are_not() -> None:
    document = read("a: ${A}\nb: 'x-${B:-2}'\nc: 5\nd: $${A}\nkey: ${A}\n", {"A": "one"})
    assert document.value == {"a": "one", "b": "x-2", "c": 5, "d": "${A}", "key": "one"}


def test_a_missing_variable_is_located_at_its_dollar() -> None:
    with pytest.raises(ConfigError) as caught:
        read("topics:\n  a:\n    codec: pre-${CODEC}\n")
    error = caught.value
    assert (error.line, error.column, error.path) == (3, 16, "topics.a.codec")
    assert error.message == (
        "environment variable 'CODEC' is not set; set it, or give a default: ${CODEC:-default}"
    )


def test_environment_defaults_to_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MILLSTREAM_TEST_VALUE", "from-env")
    assert read_yaml("p.yaml", text="a: ${MILLSTREAM_TEST_VALUE}\n").value == {"a": "from-env"}


def test_files_that_cannot_be_read(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        read_yaml(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="is a directory"):
        read_yaml(tmp_path)
    (tmp_path / "latin.yaml").write_bytes(b"a: caf\xe9\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_yaml(tmp_path / "latin.yaml")


def test_an_empty_document_is_none() -> None:
    assert read("# only a comment\n").value is None
