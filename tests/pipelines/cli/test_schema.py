"""``millstream schema``: a JSON Schema that the example pipelines satisfy."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from millstream.core.cli import main

EXAMPLES = Path(__file__).parents[3] / "examples"


@pytest.fixture
def run(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return call


def test_schema_on_stdout_and_in_a_file_agree(run, tmp_path: Path) -> None:
    status, out, err = run("schema")
    assert (status, err) == (0, "")
    assert run("schema", "-o", "pipeline.schema.json") == (0, "", "")
    assert json.loads((tmp_path / "pipeline.schema.json").read_text()) == json.loads(out)


def test_the_examples_are_valid_under_it(run) -> None:
    schema = json.loads(run("schema")[1])
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    examples = sorted(EXAMPLES.glob("*.yaml"))
    assert examples, "no example pipelines"
    for path in examples:
        document = yaml.safe_load(path.read_text())
        assert [e.message for e in validator.iter_errors(document)] == [], path
        next(iter(document["topics"].values()))["patitions"] = 2
        assert list(validator.iter_errors(document)), path
        break


def test_it_holds_the_installed_connectors_and_steps(run) -> None:
    schema = json.loads(run("schema")[1])
    sources = schema["$defs"]["SourceSpec"]
    assert "generator" in sources["properties"]["connector"]["enum"]
    generator = next(
        rule["then"]["properties"]["config"]
        for rule in sources["allOf"]
        if rule["if"]["properties"]["connector"]["const"] == "generator"
    )
    assert generator["anyOf"][1] == {"type": "null"}
    steps = schema["$defs"]["RouteSpec"]["properties"]["steps"]["items"]["properties"]
    assert {"filter", "set", "drop"} <= set(steps)


def test_a_local_plugin_adds_its_connector(run, tmp_path: Path) -> None:
    (tmp_path / "echo.py").write_text(
        "from millstream.core import ConnectorConfig, Sink, hookimpl\n"
        "class Echo(Sink):\n"
        "    name = 'echo'\n"
        "    class Config(ConnectorConfig):\n"
        "        prefix: str = '>'\n"
        "    async def write(self, events):\n"
        "        pass\n"
        "@hookimpl\n"
        "def register_connectors():\n"
        "    return (Echo,)\n"
    )
    (tmp_path / "plugins.toml").write_text('modules = ["echo.py"]\n')
    schema = json.loads(run("schema", "--plugins", "plugins.toml")[1])
    assert "echo" in schema["$defs"]["SinkSpec"]["properties"]["connector"]["enum"]


def test_an_unwritable_output(run, tmp_path: Path) -> None:
    status, out, err = run("schema", "-o", str(tmp_path / "missing" / "s.json"))
    assert (status, out) == (1, "")
    assert err.startswith("millstream: error: cannot write ")
