"""``millstream plugins list``, ``millstream connectors list`` and ``connectors describe``:
what the loaded plugins provide, and the settings of each connector."""

from __future__ import annotations

import argparse
import difflib
import inspect
from pathlib import Path
from typing import Any

from ..connector import Sink, Source
from ..describe import settings_of, shown_default
from ..errors import ConfigError
from ..plugins import Registry, get_registry
from ._args import HelpFormatter, format_option
from ._output import print_json, print_text, render_table

__all__ = ["register"]


def register(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    plugins = commands.add_parser(
        "plugins",
        help="list the loaded plugins",
        description="Show the plugins millstream loads: built-ins, the modules plugins.toml "
        "names, and installed packages with a 'millstream' entry point.",
        epilog="example:\n  millstream plugins list",
        formatter_class=HelpFormatter,
    )
    actions = plugins.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        parents=parents,
        help="list the plugins, with their origin, version and status",
        description="List every plugin: its name, where it comes from (builtin, local, "
        "entry-point), its version, and whether it loaded (ok), is blocked by plugins.toml, "
        "or failed to load (error, with the reason). A plugin that fails is left out; the "
        "others still load. Give --plugins FILE before the command to read another plugins "
        "file than ./plugins.toml.",
        epilog="examples:\n"
        "  millstream plugins list\n"
        "  millstream plugins list --format json\n"
        "  millstream --plugins ops/plugins.toml plugins list",
        formatter_class=HelpFormatter,
    )
    format_option(listing)
    listing.set_defaults(run=_plugins_list)

    connectors = commands.add_parser(
        "connectors",
        help="list connectors and describe their settings",
        description="List the connectors the loaded plugins provide, and describe the "
        "settings of one.",
        epilog="example:\n  millstream connectors describe generator",
        formatter_class=HelpFormatter,
    )
    actions = connectors.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser(
        "list",
        parents=parents,
        help="list the connectors",
        description="List every connector by name: whether it has a source and a sink, "
        "whether its source is resumable (a restart continues after the acknowledged "
        "position) and its sink idempotent (an event written twice is kept once), and the "
        "plugin that provides it.",
        epilog="examples:\n"
        "  millstream connectors list\n"
        "  millstream connectors list --format json",
        formatter_class=HelpFormatter,
    )
    format_option(listing)
    listing.set_defaults(run=_connectors_list)
    describe = actions.add_parser(
        "describe",
        parents=parents,
        help="show a connector's settings",
        description="Show a connector's settings, as a pipeline file's 'config:' gives them, "
        "for its source and its sink: each setting's type, default, whether it is required "
        "or secret (never printed), and what it means.",
        epilog="examples:\n"
        "  millstream connectors describe generator\n"
        "  millstream connectors describe memory --format json",
        formatter_class=HelpFormatter,
    )
    describe.add_argument("connector", metavar="NAME", help="the connector's name")
    format_option(describe)
    describe.set_defaults(run=_connectors_describe)


def _registry(args: argparse.Namespace) -> Registry:
    plugins_file: Path | None = getattr(args, "plugins", None)
    return get_registry(plugins_file)


async def _plugins_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    if args.format == "json":
        print_json(
            [
                {
                    "name": info.name,
                    "origin": info.origin,
                    "version": info.version,
                    "status": info.status,
                    "error": info.error,
                    "provides": list(info.provides),
                }
                for info in registry.plugins
            ]
        )
        return 0
    rows = [
        (
            info.name,
            info.origin,
            info.version,
            f"error: {info.error}" if info.error else info.status,
        )
        for info in registry.plugins
    ]
    print_text(render_table(("PLUGIN", "ORIGIN", "VERSION", "STATUS"), rows))
    return 0


async def _connectors_list(args: argparse.Namespace) -> int:
    registry = _registry(args)
    entries: list[dict[str, Any]] = []
    for name in registry.connectors:
        source, sink = registry.sources.get(name), registry.sinks.get(name)
        entries.append(
            {
                "name": name,
                "source": source is not None,
                "sink": sink is not None,
                "resumable": source.resumable if source is not None else None,
                "idempotent": sink.idempotent if sink is not None else None,
                "source_plugin": registry.provider("source", name) if source else None,
                "sink_plugin": registry.provider("sink", name) if sink else None,
            }
        )
    if args.format == "json":
        print_json(entries)
        return 0
    rows = [
        (
            e["name"],
            _yes(e["source"]),
            _yes(e["sink"]),
            _yes(e["resumable"]),
            _yes(e["idempotent"]),
            ", ".join(dict.fromkeys(p for p in (e["source_plugin"], e["sink_plugin"]) if p)),
        )
        for e in entries
    ]
    headers = ("CONNECTOR", "SOURCE", "SINK", "RESUMABLE", "IDEMPOTENT", "PLUGIN")
    print_text(render_table(headers, rows))
    return 0


def _yes(flag: bool | None) -> str | None:
    return None if flag is None else "yes" if flag else "no"


async def _connectors_describe(args: argparse.Namespace) -> int:
    registry = _registry(args)
    name = args.connector
    source, sink = registry.sources.get(name), registry.sinks.get(name)
    if source is None and sink is None:
        known = registry.connectors
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(f"unknown connector {name!r}; {hint}known: {', '.join(known) or 'none'}")
    described = {
        "name": name,
        "source": _described(registry, "source", source) if source is not None else None,
        "sink": _described(registry, "sink", sink) if sink is not None else None,
    }
    if args.format == "json":
        print_json(described)
        return 0
    parts = []
    for kind in ("source", "sink"):
        part = described[kind]
        if part is None:
            continue
        flag = "resumable" if kind == "source" else "idempotent"
        heading = (
            f"{name} {kind} ({part['plugin']}): {part['description']}\n{flag}: {_yes(part[flag])}"
        )
        rows = [
            (
                s["name"],
                s["type"],
                "-" if s["required"] else shown_default(s["default"]),
                _yes(s["required"]),
                _yes(s["secret"]),
                s["description"],
            )
            for s in part["settings"]
        ]
        table = (
            render_table(("SETTING", "TYPE", "DEFAULT", "REQUIRED", "SECRET", "DESCRIPTION"), rows)
            if rows
            else "(no settings)"
        )
        parts.append(f"{heading}\n\n{table}")
    print_text("\n\n".join(parts))
    return 0


def _described(registry: Registry, kind: str, cls: type[Source] | type[Sink]) -> dict[str, Any]:
    doc = inspect.getdoc(cls) or ""
    part: dict[str, Any] = {
        "class": f"{cls.__module__}.{cls.__qualname__}",
        "plugin": registry.provider(kind, cls.name),
        "description": doc.split("\n\n", 1)[0].replace("\n", " ").replace("``", ""),
    }
    if kind == "source":
        part["resumable"] = bool(getattr(cls, "resumable", False))
    else:
        part["idempotent"] = bool(getattr(cls, "idempotent", False))
    part["settings"] = settings_of(cls.Config)
    return part
