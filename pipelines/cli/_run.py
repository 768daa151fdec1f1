"""``millstream run``: run pipelines until drained (bounded) or stopped (SIGINT/SIGTERM)."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path

from millstream.core.cli._args import HelpFormatter, plugins_option
from millstream.core.client import connect
from millstream.core.errors import MillstreamError

from ..runtime import Runtime, Stats, StatsReporter, tune_gc
from ._common import load_files, pipeline_store, registry_of

__all__ = ["register"]


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    run = commands.add_parser(
        "run",
        parents=parents,
        help="run pipelines",
        description="Run one or many pipelines in this process. A pipeline whose sources all "
        "end (a generator with count, stdin, a file read once) exits 0 once everything is "
        "drained downstream; any other runs until SIGINT or SIGTERM, then stops its sources, "
        "finishes the batches in hand, commits and exits 0. A second signal exits at once. "
        "Statistics go to stderr (a live table on a terminal); stdout belongs to the stdout "
        "sink alone. Exit status: 0 drained or stopped, 2 invalid pipeline, 1 failure.",
        epilog="examples:\n"
        "  millstream run examples/quickstart.yaml\n"
        "  millstream run ingest.yaml enrich.yaml --store file:/var/lib/millstream\n"
        "  millstream run pipeline.yaml --quiet > events.jsonl",
        formatter_class=HelpFormatter,
    )
    run.add_argument("files", nargs="+", type=Path, metavar="FILE", help="pipeline files")
    plugins_option(run)
    shown = run.add_mutually_exclusive_group()
    shown.add_argument(
        "--quiet", "-q", action="store_true", help="no statistics while running or at exit"
    )
    shown.add_argument(
        "--stats",
        choices=("table", "lines"),
        help="how to show statistics: a live table (default on a terminal) or plain lines",
    )
    run.add_argument(
        "--stats-interval",
        type=float,
        metavar="SECONDS",
        help="seconds between statistics reports (default 1 for the table, 10 for lines)",
    )
    run.add_argument(
        "--log-level",
        choices=("debug", "info", "warning", "error"),
        default="warning",
        help="the least severe log messages shown on stderr (default warning)",
    )
    run.set_defaults(run=_run)


async def _run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        stream=sys.stderr,
        level=args.log_level.upper(),
        format="millstream: %(levelname)s: %(name)s: %(message)s",
    )
    pipelines = load_files(args, args.files)
    registry = registry_of(args)
    url = pipeline_store(args, pipelines)
    stop = asyncio.Event()
    _on_signals(stop)
    names = [p.name for p in pipelines]
    async with await connect(url) as connection:
        runtime = Runtime(pipelines, connection, registry, Stats())
        await runtime.prepare()
        tune_gc()
        mode = "quiet" if args.quiet else args.stats
        reporter = StatsReporter(
            runtime.stats, mode=mode, interval=args.stats_interval, refresh=runtime.refresh_lag
        )
        reporting = asyncio.create_task(reporter.run(), name="statistics")
        status = "failed"
        try:
            await registry.call_startup(names)
            status = await runtime.run(stop)
        finally:
            reporting.cancel()
            with contextlib.suppress(MillstreamError):
                await runtime.refresh_lag()
            reporter.summary(status)
            await registry.call_shutdown(names)
    return 0


def _on_signals(stop: asyncio.Event) -> None:
    """First SIGINT/SIGTERM: stop gracefully. Second: exit at once."""
    loop = asyncio.get_running_loop()

    def received(signum: int) -> None:
        if stop.is_set():
            sys.stderr.write("millstream: second signal, exiting at once\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        sys.stderr.write(
            f"millstream: {signal.Signals(signum).name}: stopping (finishing the batches in "
            "hand); signal again to exit at once\n"
        )
        sys.stderr.flush()
        stop.set()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, received, signum)
