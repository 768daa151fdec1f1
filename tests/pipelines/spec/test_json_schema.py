"""pipeline_json_schema: files that load are valid under it; its mistakes are caught by it."""

from __future__ import annotations

import copy
from pathlib import Path

import jsonschema
import pytest
import yaml

from millstream.core.plugins import Registry
from millstream.pipelines.spec import load_pipeline, pipeline_json_schema

DATA = Path(__file__).parent / "data"
EXAMPLES = Path(__file__).parents[3] / "examples"
QUICKSTART = yaml.safe_load((DATA / "quickstart.yaml").read_text())


@pytest.fixture
def validator(full_registry: Registry) -> jsonschema.Draft202012Validator:
    schema = pipeline_json_schema(full_registry)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def errors(validator: jsonschema.Draft202012Validator, document: object) -> list[str]:
    return [error.message for error in validator.iter_errors(document)]


def test_the_quickstart_loads_and_is_valid_under_the_schema(validator, full_registry) -> None:
    load_pipeline(DATA / "quickstart.yaml", registry=full_registry, env={})
    assert errors(validator, QUICKSTART) == []


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.glob("**/*.yaml")), ids=lambda p: str(p.relative_to(EXAMPLES))
)
def test_the_examples_that_load_are_valid_under_the_schema(validator, full_registry, path) -> None:
    document = yaml.safe_load(path.read_text())
    if not isinstance(document, dict) or "pipeline" not in document:
        pytest.skip("not a pipeline file")
    load_pipeline(path, registry=full_registry, env={})
    assert errors(validator, document) == []


def changed(edit) -> dict:
    document = copy.deepcopy(QUICKSTART)
    edit(document)
    return document


def test_unknown_keys_are_invalid(validator) -> None:
    document = changed(lambda d: d["topics"]["readings"].update(patitions=2))
    assert any("patitions" in m for m in errors(validator, document))


def test_a_connector_config_is_checked_against_that_connector(validator) -> None:
    document = changed(lambda d: d["sources"]["sensors"]["config"].update(devics=3))
    assert any("devics" in m for m in errors(validator, document))
    document = changed(lambda d: d["sources"]["sensors"]["config"].update(devices="many"))
    assert errors(validator, document)
    document = changed(lambda d: d["sinks"]["archive-file"].update(config={"path": "x"}))
    assert errors(validator, document) == []


def test_connector_names_are_the_installed_ones(validator, full_registry) -> None:
    schema = pipeline_json_schema(full_registry)
    names = schema["$defs"]["SinkSpec"]["properties"]["connector"]["enum"]
    assert names == sorted(full_registry.sinks)
    document = changed(lambda d: d["sinks"]["console"].update(connector="stdot"))
    assert errors(validator, document)


def test_steps_are_checked_against_their_arguments(validator) -> None:
    document = changed(lambda d: d["routes"]["clean"]["steps"].append({"dorp": ["x"]}))
    assert errors(validator, document)
    document = changed(lambda d: d["routes"]["clean"]["steps"].append({"drop": "not-a-list"}))
    assert errors(validator, document)
    document = changed(
        lambda d: d["routes"]["clean"]["steps"].append({"drop": ["a"], "keep": ["b"]})
    )
    assert errors(validator, document)


def test_durations_and_topic_lists(validator) -> None:
    document = changed(lambda d: d["sinks"]["archive-file"]["retry"].update(initial="2 seconds"))
    assert errors(validator, document)
    document = changed(lambda d: d["topics"]["readings"].update(retention="forever"))
    assert errors(validator, document) == []
    document = changed(lambda d: d["sinks"]["console"].update({"from": ["hot", "archive"]}))
    assert errors(validator, document) == []
    document = changed(lambda d: d["routes"]["split"].update(to=["hot", {"topic": "archive"}]))
    assert errors(validator, document) == []
    document = changed(lambda d: d["routes"]["split"].update(to=[{"when": "True"}]))
    assert errors(validator, document)


def test_without_plugins_the_schema_still_describes_the_file() -> None:
    schema = pipeline_json_schema(Registry())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert errors(jsonschema.Draft202012Validator(schema), QUICKSTART) == []
    assert schema["properties"]["pipeline"]["description"].startswith("the pipeline's name")
