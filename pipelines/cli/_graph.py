"""``millstream graph``: draw a pipeline (Mermaid or DOT; SVG or PNG through Graphviz)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

from millstream.core.cli._args import HelpFormatter, UsageError, plugins_option
from millstream.core.cli._output import write_stdout
from millstream.core.errors import MillstreamError

from ..spec import pipeline_dot, pipeline_mermaid
from ._common import load_files

__all__ = ["register"]

_INSTALL = (
    "install Graphviz (apt install graphviz, dnf install graphviz, brew install graphviz; "
    "https://graphviz.org/download/) or use --format mermaid or --format dot"
)


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    graph = commands.add_parser(
        "graph",
        parents=parents,
        help="draw a pipeline",
        description="Draw a pipeline: sources, topics, routes and sinks, and how events flow "
        "between them (a route's `when` conditions on its edges, dead letters dashed). Mermaid "
        "(for Markdown and GitHub) and DOT are written as text; SVG and PNG are drawn by "
        "Graphviz's `dot` program, which must be installed.",
        epilog="examples:\n"
        "  millstream graph examples/quickstart.yaml\n"
        "  millstream graph pipeline.yaml --format dot | dot -Tpdf > pipeline.pdf\n"
        "  millstream graph pipeline.yaml --format svg -o pipeline.svg",
        formatter_class=HelpFormatter,
    )
    graph.add_argument("file", type=Path, metavar="FILE", help="the pipeline file")
    graph.add_argument(
        "--format",
        choices=("mermaid", "dot", "svg", "png"),
        default="mermaid",
        help="mermaid (default) or dot as text; svg or png drawn by Graphviz",
    )
    graph.add_argument(
        "-o",
        "--output",
        type=Path,
        metavar="FILE",
        help="write the drawing to FILE (default: standard output)",
    )
    plugins_option(graph)
    graph.set_defaults(run=_graph)


async def _graph(args: argparse.Namespace) -> int:
    (pipeline,) = load_files(args, [args.file])
    if args.format == "mermaid":
        data = pipeline_mermaid(pipeline).encode()
    elif args.format == "dot":
        data = pipeline_dot(pipeline).encode()
    else:
        if args.output is None and args.format == "png" and sys.stdout.isatty():
            raise UsageError("a PNG is binary: give -o FILE, or redirect standard output")
        data = _render(pipeline_dot(pipeline), args.format)
    if args.output is None:
        write_stdout(data)
        return 0
    try:
        args.output.write_bytes(data)
    except OSError as exc:
        raise MillstreamError(f"cannot write {str(args.output)!r}: {exc.strerror or exc}") from None
    return 0


def _render(dot_text: str, image: str) -> bytes:
    """``dot_text`` drawn as ``image`` (svg or png) by Graphviz's ``dot``."""
    program = shutil.which("dot")
    if program is None:
        raise MillstreamError(
            f"--format {image} needs Graphviz's `dot` program, not found: {_INSTALL}"
        )
    done = subprocess.run(
        [program, f"-T{image}"], input=dot_text.encode(), capture_output=True, check=False
    )
    if done.returncode != 0:
        reason = done.stderr.decode(errors="replace").strip().splitlines()
        raise MillstreamError(f"Graphviz's dot failed: {reason[-1] if reason else done.returncode}")
    return done.stdout
