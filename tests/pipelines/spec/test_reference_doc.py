"""docs/pipelines.md documents every key of every model, in tables written from the models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from millstream.core.plugins import load_registry
from millstream.pipelines.spec import load_pipeline
from millstream.pipelines.spec._reference import MODELS, update_reference

DOC = Path(__file__).parents[3] / "docs" / "pipelines.md"
REGENERATE = "python -m millstream.pipelines.spec._reference docs/pipelines.md"


def test_the_key_tables_are_the_ones_the_models_give() -> None:
    text = DOC.read_text()
    assert update_reference(text) == text, f"the key tables are out of date; run `{REGENERATE}`"


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_key_of_every_model_is_documented(name: str) -> None:
    model = MODELS[name][0]
    match = re.search(rf"<!-- keys: {name} -->\n(.*?)<!-- end keys -->", DOC.read_text(), re.S)
    assert match is not None, f"docs/pipelines.md has no <!-- keys: {name} --> table"
    documented = re.findall(r"^\| `([^`]+)` \|", match.group(1), re.M)
    keys = [field.alias or field_name for field_name, field in model.model_fields.items()]
    assert sorted(documented) == sorted(keys)
    for key in keys:
        row = next(line for line in match.group(1).splitlines() if line.startswith(f"| `{key}` |"))
        assert row.rstrip(" |").split(" | ")[-1], f"{name}.{key} has no meaning in the doc"


def test_the_doc_shows_the_schema_line_and_links_the_steps() -> None:
    text = DOC.read_text()
    assert "# yaml-language-server: $schema=./pipeline.schema.json" in text
    assert "(steps.md)" in text


def test_the_main_example_is_valid_with_the_built_in_connectors(tmp_path: Path) -> None:
    example = re.search(r"```yaml\n(.*?)```", DOC.read_text(), re.S)
    assert example is not None
    (tmp_path / "pipeline.yaml").write_text(example.group(1))
    pipeline = load_pipeline(tmp_path / "pipeline.yaml", registry=load_registry(), env={})
    assert pipeline.sources and pipeline.routes and pipeline.sinks
