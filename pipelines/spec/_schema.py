"""The JSON Schema of pipeline files, for editors (``millstream schema``).

The base is pydantic's schema of :class:`~._models.FileSpec`. To it are added, from the plugin
registry, the connector names each ``connector:`` may take, each connector's ``Config`` schema
for its ``config:`` (chosen by the ``connector`` name with ``if``/``then``), and each step's
``Args`` schema for its entry under ``steps:``. An editor told about the schema (the
``# yaml-language-server: $schema=…`` line) then completes and checks all of it.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from millstream.core.plugins import Registry, get_registry

from ._models import FileSpec, StepEntry

__all__ = ["pipeline_json_schema"]

_DIALECT = "https://json-schema.org/draft/2020-12/schema"


def pipeline_json_schema(registry: Registry | None = None) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a pipeline file, with every connector's and step's
    settings that ``registry`` (default: :func:`get_registry`) knows."""
    registry = registry or get_registry()
    inputs: list[tuple[Any, Any, TypeAdapter[Any]]] = [
        ("file", "validation", TypeAdapter(FileSpec))
    ]
    for kind, table in (("source", registry.sources), ("sink", registry.sinks)):
        for name, cls in sorted(table.items()):
            inputs.append(((kind, name), "validation", TypeAdapter(cls.Config)))
    for name, step in sorted(registry.steps.items()):
        inputs.append((("step", name), "validation", TypeAdapter(step.Args)))
    schemas, definitions = TypeAdapter.json_schemas(inputs, ref_template="#/$defs/{model}")
    defs: dict[str, Any] = dict(definitions.get("$defs", {}))

    if "ConnectorConfig" in defs:  # the base model, used by connectors without settings
        defs["ConnectorConfig"] = {**defs["ConnectorConfig"], "description": "no settings"}
    root = _resolve(schemas[("file", "validation")], defs)
    defs.pop("FileSpec", None)
    for kind, spec in (("source", "SourceSpec"), ("sink", "SinkSpec")):
        table = registry.sources if kind == "source" else registry.sinks
        _connectors(defs[spec], {name: schemas[((kind, name), "validation")] for name in table})
    steps = {name: schemas[(("step", name), "validation")] for name in registry.steps}
    _steps(defs["RouteSpec"], steps)

    schema: dict[str, Any] = {
        "$schema": _DIALECT,
        "title": "millstream pipeline file",
        "description": "A millstream pipeline: topics, sources, routes and sinks "
        "(see docs/pipelines.md).",
    }
    schema.update({k: v for k, v in root.items() if k not in ("title", "description")})
    schema["$defs"] = defs
    return schema


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        return dict(defs[ref.removeprefix("#/$defs/")])
    return dict(schema)


def _connectors(spec: dict[str, Any], configs: dict[str, dict[str, Any]]) -> None:
    """Name the known connectors, and choose each one's ``config`` schema by its name."""
    if not configs:
        return
    properties = spec["properties"]
    properties["connector"] = {**properties["connector"], "enum": sorted(configs)}
    spec["allOf"] = [
        {
            "if": {"properties": {"connector": {"const": name}}, "required": ["connector"]},
            "then": {"properties": {"config": {"anyOf": [config, {"type": "null"}]}}},
        }
        for name, config in sorted(configs.items())
    ]


def _steps(route: dict[str, Any], steps: dict[str, dict[str, Any]]) -> None:
    """Each entry of ``steps`` is one known step, its value that step's argument."""
    if not steps:
        return
    entry = TypeAdapter(StepEntry).json_schema()
    entry.update(
        {
            "properties": dict(sorted(steps.items())),
            "additionalProperties": False,
        }
    )
    route["properties"]["steps"] = {**route["properties"]["steps"], "items": entry}
