"""Reading and checking pipeline files.

::

    from millstream.pipelines.spec import load_pipeline

    pipeline = load_pipeline("pipeline.yaml")      # a millstream.pipelines.plan.Pipeline

Everything that can be checked before an event flows is checked here (names, references,
connector configs, step arguments, expressions, the shape of the graph); each error is one
:class:`~millstream.core.errors.ConfigError` naming file:line:column, the YAML path, what was
wrong and what would be valid. docs/pipelines.md is the reference of the file format.

- :func:`load_pipeline`, :func:`load_pipelines`: files to plans.
- :func:`read_yaml`, :class:`Document`, :class:`Positions`: YAML with the position of every
  key and value, ``${VAR}`` substituted.
- :func:`validate_node`: any part of such a document validated against a pydantic type, with
  errors located (``millstream test`` validates its ``tests:`` entries with it).
- :func:`guarantees`: each part's delivery guarantee and why.
- :func:`pipeline_json_schema`: the JSON Schema of pipeline files, for editors.
- :func:`pipeline_mermaid`, :func:`pipeline_dot`: a pipeline drawn as a graph.
- :func:`parse_duration`, :data:`Duration`: durations as files write them (``200ms``, ``7d``).
"""

from millstream.core.duration import Duration, parse_duration

from ._compile import load_pipeline, load_pipelines
from ._document import Document, Position, Positions, YamlPath, format_path, read_yaml
from ._drawing import pipeline_dot, pipeline_mermaid
from ._guarantees import Guarantee, guarantees
from ._schema import pipeline_json_schema
from ._validation import validate_node

__all__ = [
    "Document",
    "Duration",
    "Guarantee",
    "Position",
    "Positions",
    "YamlPath",
    "format_path",
    "guarantees",
    "load_pipeline",
    "load_pipelines",
    "parse_duration",
    "pipeline_dot",
    "pipeline_json_schema",
    "pipeline_mermaid",
    "read_yaml",
    "validate_node",
]
