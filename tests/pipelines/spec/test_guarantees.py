"""guarantees: each part's delivery guarantee follows from its sources and its sink."""

from __future__ import annotations

from millstream.pipelines.spec import Guarantee, guarantees

TEXT = """
pipeline: g
dead_letter: dead
topics: {raw: {}, logs: {}, clean: {}, out: {}, merged: {}, dead: {}}
sources:
  tick:
    connector: ticker
    to: raw
  follow:
    connector: tail
    config: {path: app.log}
    to: logs
routes:
  tidy: {from: raw, to: clean}
  relay: {from: clean, to: merged}
  parse: {from: logs, to: out}
sinks:
  plain: {connector: print, from: out}
  exact: {connector: archive, from: out, config: {path: a.jsonl}}
  mixed: {connector: archive, from: [out, merged], config: {path: b.jsonl}}
  dead-letters: {connector: print, from: dead, on_error: stop}
"""


def levels(pipeline) -> dict[tuple[str, str], str]:
    return {(g.kind, g.name): g.level for g in guarantees(pipeline)}


def test_levels_follow_sources_and_sinks(load) -> None:
    assert levels(load(TEXT)) == {
        ("source", "tick"): "best-effort",
        ("source", "follow"): "at-least-once",
        ("route", "tidy"): "best-effort",
        ("route", "relay"): "best-effort",
        ("route", "parse"): "at-least-once",
        ("sink", "plain"): "at-least-once",
        ("sink", "exact"): "exactly-once",
        ("sink", "mixed"): "best-effort",
        ("sink", "dead-letters"): "best-effort",
    }


def test_each_guarantee_says_why(load) -> None:
    found = {(g.kind, g.name): g for g in guarantees(load(TEXT))}
    assert found[("source", "tick")].why.startswith("'ticker' cannot resume")
    assert found[("route", "relay")] == Guarantee(
        "route", "relay", "best-effort", "reads 'clean', and source 'tick' (ticker) cannot resume"
    )
    assert "keeps one copy" in found[("sink", "exact")].why
    assert found[("sink", "mixed")].why == (
        "reads 'merged', and source 'tick' (ticker) cannot resume"
    )
    assert "after flush()" in found[("sink", "plain")].why


def test_order_is_sources_routes_sinks(load) -> None:
    kinds = [g.kind for g in guarantees(load(TEXT))]
    assert kinds == ["source"] * 2 + ["route"] * 3 + ["sink"] * 4


def test_topics_written_outside_the_pipeline_count_as_at_least_once(load) -> None:
    text = "pipeline: r\ntopics: {a: {}, b: {}}\nroutes:\n  r: {from: a, to: b}\n"
    text += "sinks:\n  s: {connector: archive, from: b, config: {path: x}}\n"
    assert levels(load(text)) == {("route", "r"): "at-least-once", ("sink", "s"): "exactly-once"}


def test_a_source_the_other_side_redelivers_is_at_least_once(tmp_path) -> None:
    """Webhook senders retry until they get a 2xx, so the http-server source loses nothing
    although it has no positions; stdin, read once, is best-effort."""
    from millstream.core.plugins import load_registry
    from millstream.pipelines.spec import load_pipeline

    (tmp_path / "p.yaml").write_text(
        "pipeline: hooks\ntopics: {hooks: {}, lines: {}}\nsources:\n"
        "  web: {connector: http-server, config: {port: 0}, to: hooks}\n"
        "  cli: {connector: stdin, to: lines}\n"
    )
    pipeline = load_pipeline(tmp_path / "p.yaml", registry=load_registry(), env={})
    got = {g.name: g for g in guarantees(pipeline)}
    assert got["web"].level == "at-least-once"
    assert "handed out again by the other side" in got["web"].why
    assert got["cli"].level == "best-effort"


def test_a_source_resumes_or_not_as_its_settings_say(load) -> None:
    text = (
        "pipeline: polled\ntopics: {a: {}, b: {}}\nsources:\n"
        "  with-cursor: {connector: poller, config: {cursor: id}, to: a}\n"
        "  without: {connector: poller, to: b}\n"
    )
    assert levels(load(text)) == {
        ("source", "with-cursor"): "at-least-once",
        ("source", "without"): "best-effort",
    }
