"""pipeline_mermaid and pipeline_dot: every part and flow, and text that cannot break out."""

from __future__ import annotations

from millstream.pipelines.spec import pipeline_dot, pipeline_mermaid

TEXT = """
pipeline: quotes
topics: {in: {}, out: {}}
routes:
  pick:
    from: in
    to:
      - {topic: out, when: 'value.name == "a<b>" and value.x > 1'}
"""


def test_labels_are_escaped(load) -> None:
    pipeline = load(TEXT)
    mermaid = pipeline_mermaid(pipeline)
    assert '|"value.name == #34;a#60;b#62;#34; and value.x #62; 1"|' in mermaid
    dot = pipeline_dot(pipeline)
    assert '[label="value.name == \\"a<b>\\" and value.x > 1"]' in dot


def test_a_pipeline_without_parts_draws_its_topics(load) -> None:
    pipeline = load("pipeline: empty\ntopics: {a: {}}\n")
    assert pipeline_mermaid(pipeline) == 'flowchart LR\n  %% pipeline empty\n  topic0[("a")]\n'
    assert 'topic0 [label="a", shape=cylinder' in pipeline_dot(pipeline)
