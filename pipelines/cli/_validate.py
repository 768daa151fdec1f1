"""``millstream validate``: check pipeline files and show what they would run, with the
delivery guarantee of every part."""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

from millstream.core.cli._args import HelpFormatter, plugins_option
from millstream.core.cli._output import print_json, print_text, render_table
from millstream.core.client import redact_url
from millstream.core.duration import format_duration
from millstream.core.errors import ConfigError

from ..plan import Pipeline, TopicPlan
from ..spec import Guarantee, guarantees, load_pipeline
from ..spec._compile import check_together
from ._common import registry_of

__all__ = ["register"]


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    validate = commands.add_parser(
        "validate",
        parents=parents,
        help="check pipeline files and show their delivery guarantees",
        description="Check pipeline files as `millstream run` would, without running anything: "
        "names, topic references, connector configs, step arguments, expressions and the shape "
        "of the graph. A valid file is summed up (topics, sources, routes, sinks) with the "
        "delivery guarantee each part really has and why. Errors are one line each, "
        "file:line:column first, on stderr. Exit status: 0 valid, 2 invalid.",
        epilog="examples:\n"
        "  millstream validate examples/quickstart.yaml\n"
        "  millstream validate ingest.yaml enrich.yaml --strict\n"
        "  millstream validate pipeline.yaml --format json",
        formatter_class=HelpFormatter,
    )
    validate.add_argument("files", nargs="+", type=Path, metavar="FILE", help="pipeline files")
    validate.add_argument(
        "--strict",
        action="store_true",
        help="also fail when a route or sink is only best-effort",
    )
    validate.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for scripts",
    )
    plugins_option(validate)
    validate.set_defaults(run=_validate)


async def _validate(args: argparse.Namespace) -> int:
    registry = registry_of(args)
    pipelines: list[Pipeline] = []
    errors: list[ConfigError] = []
    for file in args.files:
        try:
            pipelines.append(load_pipeline(file, registry=registry))
        except ConfigError as exc:
            errors.append(exc)
    if not errors and len(pipelines) > 1:
        try:
            check_together(pipelines)
        except ConfigError as exc:
            errors.append(exc)
    levels = {p.name: guarantees(p) for p in pipelines}
    if args.strict and not errors:
        for pipeline in pipelines:
            errors += _best_effort(pipeline, levels[pipeline.name])
    if args.format == "json":
        print_json(
            {
                "valid": not errors,
                "pipelines": [_as_json(p, levels[p.name]) for p in pipelines],
                "errors": [_error_json(e) for e in errors],
            }
        )
    elif not errors:
        for i, pipeline in enumerate(pipelines):
            if i:
                print_text()
            print_text(_summary(pipeline, levels[pipeline.name]))
    for error in errors:
        print(f"millstream: error: {error}", file=sys.stderr)
    return 2 if errors else 0


def _best_effort(pipeline: Pipeline, levels: list[Guarantee]) -> list[ConfigError]:
    found = []
    for level in levels:
        if level.level != "best-effort" or level.kind == "source":
            continue
        path = ("routes" if level.kind == "route" else "sinks", level.name)
        found.append(
            pipeline.positions.error(
                f"best-effort ({level.why}); --strict accepts at-least-once or exactly-once",
                path,
                at_key=True,
            )
        )
    return found


def _summary(pipeline: Pipeline, levels: list[Guarantee]) -> str:
    lines = [f"{pipeline.name}: valid ({pipeline.file})"]
    if pipeline.store:
        lines.append(f"store: {redact_url(pipeline.store)}")
    if pipeline.dead_letter:
        lines.append(f"dead letters: {pipeline.dead_letter}")
    lines.append("")
    topics = [
        (
            name,
            t.partitions,
            _replication(pipeline, t) or "default",
            t.codec,
            _topic_settings(t.config),
        )
        for name, t in pipeline.topics.items()
    ]
    lines.append(render_table(("TOPIC", "PARTITIONS", "REPLICATION", "CODEC", "SETTINGS"), topics))
    lines.append("")
    by_part: dict[tuple[str, str], Guarantee] = {(g.kind, g.name): g for g in levels}
    rows = []
    for name, source in pipeline.sources.items():
        rows.append(("source", name, source.connector.name, "-", ", ".join(source.to)))
    for name, route in pipeline.routes.items():
        outputs = [o.topic + ("?" if o.when is not None else "") for o in route.outputs]
        if route.unmatched:
            outputs.append(f"{route.unmatched} (unmatched)")
        steps = " → ".join(s.step.name for s in route.steps) or "-"
        rows.append(("route", name, steps, ", ".join(route.inputs), ", ".join(outputs)))
    for name, sink in pipeline.sinks.items():
        rows.append(("sink", name, sink.connector.name, ", ".join(sink.inputs), "-"))
    table = [(*row, by_part[row[0], row[1]].level, by_part[row[0], row[1]].why) for row in rows]
    lines.append(
        render_table(("PART", "NAME", "RUNS", "READS", "WRITES", "GUARANTEE", "WHY"), table)
    )
    return "\n".join(lines)


def _topic_settings(config: dict[str, str]) -> str:
    shown = []
    for key, value in config.items():
        if key == "retention.ms":
            shown.append(f"retention {_duration(int(value))}")
        else:
            shown.append(f"{key.split('.')[0]} {value}")
    return ", ".join(shown) or "-"


def _replication(pipeline: Pipeline, topic: TopicPlan) -> int | None:
    """The copies ``topic`` will have: as declared, else one on an embedded store, else the
    cluster's default (None)."""
    if topic.replication is not None:
        return topic.replication
    embedded = not pipeline.store or pipeline.store.startswith("file:")
    return 1 if embedded else None


def _duration(ms: int) -> str:
    """Milliseconds as the file writes them: 604800000 → 7d; -1 → forever."""
    return "forever" if ms < 0 else format_duration(timedelta(milliseconds=ms))


def _as_json(pipeline: Pipeline, levels: list[Guarantee]) -> dict[str, Any]:
    by_part = {(g.kind, g.name): {"guarantee": g.level, "why": g.why} for g in levels}
    return {
        "name": pipeline.name,
        "file": str(pipeline.file),
        "store": None if pipeline.store is None else redact_url(pipeline.store),
        "dead_letter": pipeline.dead_letter,
        "topics": [
            {
                "name": name,
                "partitions": t.partitions,
                "replication": _replication(pipeline, t),
                "codec": t.codec,
                "config": t.config,
            }
            for name, t in pipeline.topics.items()
        ],
        "sources": [
            {
                "name": name,
                "connector": s.connector.name,
                "config": s.config.model_dump(mode="json"),
                "to": list(s.to),
                "key": s.key_text,
                **by_part["source", name],
            }
            for name, s in pipeline.sources.items()
        ],
        "routes": [
            {
                "name": name,
                "group": r.group,
                "from": list(r.inputs),
                "steps": [{"step": s.step.name, "path": s.path} for s in r.steps],
                "to": [{"topic": o.topic, "when": o.when_text} for o in r.outputs],
                "switch": r.switch,
                "unmatched": r.unmatched,
                "dead_letter": r.dead_letter,
                "on_error": r.on_error,
                "workers": r.workers,
                **by_part["route", name],
            }
            for name, r in pipeline.routes.items()
        ],
        "sinks": [
            {
                "name": name,
                "group": s.group,
                "connector": s.connector.name,
                "config": s.config.model_dump(mode="json"),
                "from": list(s.inputs),
                "dead_letter": s.dead_letter,
                "on_error": s.on_error,
                "workers": s.workers,
                **by_part["sink", name],
            }
            for name, s in pipeline.sinks.items()
        ],
    }


def _error_json(error: ConfigError) -> dict[str, Any]:
    return {
        "file": error.file,
        "line": error.line,
        "column": error.column,
        "path": error.path,
        "message": error.message,
    }
