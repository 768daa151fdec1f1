"""``millstream schema``: the JSON Schema of pipeline files, for editor completion."""

from __future__ import annotations

import argparse
from pathlib import Path

import orjson

from millstream.core.cli._args import HelpFormatter, plugins_option
from millstream.core.cli._output import write_stdout
from millstream.core.errors import MillstreamError

from ..spec import pipeline_json_schema
from ._common import registry_of

__all__ = ["register"]


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    schema = commands.add_parser(
        "schema",
        parents=parents,
        help="write the JSON Schema of pipeline files",
        description="Write the JSON Schema of pipeline files, with the settings of every "
        "installed connector and the argument of every step, so that an editor completes and "
        "checks pipeline files. Point the editor at it with a first line such as "
        "`# yaml-language-server: $schema=./pipeline.schema.json`.",
        epilog="examples:\n"
        "  millstream schema -o pipeline.schema.json\n"
        "  millstream schema --plugins plugins.toml > pipeline.schema.json",
        formatter_class=HelpFormatter,
    )
    schema.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the schema to FILE (default: standard output)",
    )
    plugins_option(schema)
    schema.set_defaults(run=_schema)


async def _schema(args: argparse.Namespace) -> int:
    text = orjson.dumps(pipeline_json_schema(registry_of(args)), option=orjson.OPT_INDENT_2)
    text += b"\n"
    if args.output is None:
        write_stdout(text)
        return 0
    try:
        args.output.write_bytes(text)
    except OSError as exc:
        raise MillstreamError(f"cannot write {str(args.output)!r}: {exc.strerror or exc}") from None
    return 0
