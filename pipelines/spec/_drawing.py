"""A pipeline drawn as a graph: Mermaid (for Markdown, GitHub, editors) or Graphviz DOT.

Sources, topics, routes and sinks are the nodes; events flow left to right along the edges.
A route's conditional outputs carry their ``when`` as the edge label, ``unmatched`` is labelled
so, and dead-letter topics are reached by dashed edges.
"""

from __future__ import annotations

from collections.abc import Iterator

from ..plan import Pipeline

__all__ = ["pipeline_dot", "pipeline_mermaid"]


class _Ids:
    """Stable node ids, one per (kind, name), safe in both languages."""

    def __init__(self) -> None:
        self.ids: dict[tuple[str, str], str] = {}

    def __call__(self, kind: str, name: str) -> str:
        key = (kind, name)
        if key not in self.ids:
            self.ids[key] = f"{kind}{len(self.ids)}"
        return self.ids[key]


def _edges(pipeline: Pipeline) -> Iterator[tuple[tuple[str, str], tuple[str, str], str, bool]]:
    """Every edge: (from node, to node, label, dashed)."""
    for name, source in pipeline.sources.items():
        for topic in source.to:
            yield ("source", name), ("topic", topic), "", False
    for name, route in pipeline.routes.items():
        for topic in route.inputs:
            yield ("topic", topic), ("route", name), "", False
        for output in route.outputs:
            yield ("route", name), ("topic", output.topic), output.when_text or "", False
        if route.unmatched is not None:
            yield ("route", name), ("topic", route.unmatched), "unmatched", False
        if route.dead_letter is not None:
            yield ("route", name), ("topic", route.dead_letter), "dead letter", True
    for name, sink in pipeline.sinks.items():
        for topic in sink.inputs:
            yield ("topic", topic), ("sink", name), "", False
        if sink.dead_letter is not None:
            yield ("sink", name), ("topic", sink.dead_letter), "dead letter", True


def _labels(pipeline: Pipeline) -> Iterator[tuple[tuple[str, str], list[str]]]:
    """Every node and the lines of its label."""
    for name, source in pipeline.sources.items():
        yield ("source", name), [name, f"source: {source.connector.name}"]
    for name in pipeline.topics:
        yield ("topic", name), [name]
    for name, route in pipeline.routes.items():
        steps = " → ".join(step.step.name for step in route.steps)
        yield ("route", name), [name, f"route: {steps}" if steps else "route"]
    for name, sink in pipeline.sinks.items():
        yield ("sink", name), [name, f"sink: {sink.connector.name}"]


_MERMAID_SHAPES = {
    "source": ("([", "])"),
    "topic": ("[(", ")]"),
    "route": ("[", "]"),
    "sink": ("[/", "/]"),
}


def pipeline_mermaid(pipeline: Pipeline) -> str:
    """The pipeline as a Mermaid flowchart (``flowchart LR``), ending with a newline."""
    ids = _Ids()
    lines = ["flowchart LR", f"  %% pipeline {_mermaid_text(pipeline.name)}"]
    for node, parts in _labels(pipeline):
        opening, closing = _MERMAID_SHAPES[node[0]]
        text = "<br/>".join(_mermaid_text(line) for line in parts)
        lines.append(f'  {ids(*node)}{opening}"{text}"{closing}')
    for start, end, label, dashed in _edges(pipeline):
        arrow = "-.->" if dashed else "-->"
        shown = f'|"{_mermaid_text(label)}"|' if label else ""
        lines.append(f"  {ids(*start)} {arrow}{shown} {ids(*end)}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Text safe inside a quoted Mermaid label (entity codes for what Mermaid would read)."""
    for char in '#&"<>':
        text = text.replace(char, f"#{ord(char)};")
    return text


_DOT_SHAPES = {
    "source": 'shape=box, style="rounded,filled", fillcolor="#e8f0fe"',
    "topic": 'shape=cylinder, style=filled, fillcolor="#fef7e0"',
    "route": 'shape=box, style=filled, fillcolor="#e6f4ea"',
    "sink": 'shape=box, style="rounded,filled", fillcolor="#fce8e6", peripheries=2',
}


def pipeline_dot(pipeline: Pipeline) -> str:
    """The pipeline as a Graphviz ``digraph`` (render with ``dot -Tsvg``), ending with a
    newline."""
    ids = _Ids()
    lines = [
        f"digraph {_dot_string(pipeline.name)} {{",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [fontname="Helvetica", fontsize=9];',
    ]
    for node, text in _labels(pipeline):
        lines.append(
            f"  {ids(*node)} [label={_dot_string(chr(10).join(text))}, {_DOT_SHAPES[node[0]]}];"
        )
    for start, end, label, dashed in _edges(pipeline):
        attributes = []
        if label:
            attributes.append(f"label={_dot_string(label)}")
        if dashed:
            attributes.append("style=dashed")
        shown = f" [{', '.join(attributes)}]" if attributes else ""
        lines.append(f"  {ids(*start)} -> {ids(*end)}{shown};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _dot_string(text: str) -> str:
    """A double-quoted DOT string; newlines become centred line breaks."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'
