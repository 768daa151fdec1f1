"""``millstream test``: run the ``tests:`` of pipeline files; no store, no connectors."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from millstream.core.cli._args import HelpFormatter, UsageError, plugins_option
from millstream.core.cli._output import print_json, print_text
from millstream.core.errors import ConfigError

from ._common import registry_of

if TYPE_CHECKING:
    from ..testcases import Outcome, Suite

__all__ = ["register"]


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: list[argparse.ArgumentParser],
) -> None:
    """Add ``millstream test``."""
    test = commands.add_parser(
        "test",
        parents=parents,
        help="run the tests written in pipeline files",
        description="Run the tests: list of pipeline files (or of test files that name their "
        "pipeline file): each test feeds events into one route and compares what comes out "
        "on each output topic and on the dead-letter topic with what it expects. Nothing is "
        "read from or written to a store, and no connector runs. A failed test shows the "
        "expected and actual events of each topic that differs. Exit status: 0 every test "
        "passed, 1 a test failed, 2 a file is invalid.",
        epilog="examples:\n"
        "  millstream test examples/quickstart.yaml\n"
        "  millstream test tests/clean.tests.yaml --format json",
        formatter_class=HelpFormatter,
    )
    test.add_argument(
        "files", nargs="+", type=Path, metavar="FILE", help="pipeline files or test files"
    )
    plugins_option(test)
    test.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text for people (default), json for scripts",
    )
    test.set_defaults(run=_run)


async def _run(args: argparse.Namespace) -> int:
    from ..testcases import load_suite, run_suite

    registry = registry_of(args)
    suites: list[Suite] = []
    for file in args.files:
        try:
            suites.append(load_suite(file, registry=registry))
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    results = [(suite, await run_suite(suite, registry)) for suite in suites]
    failed = sum(not o.passed for _, outcomes in results for o in outcomes)
    total = sum(len(outcomes) for _, outcomes in results)
    if args.format == "json":
        print_json(
            {
                "passed": total - failed,
                "failed": failed,
                "tests": [
                    _as_json(suite, outcome) for suite, outcomes in results for outcome in outcomes
                ],
            }
        )
    else:
        for suite, outcomes in results:
            _print_text(suite, outcomes)
        verdict = "all passed" if not failed else f"{total - failed} passed, {failed} failed"
        print_text(f"{total} test{'s' if total != 1 else ''}: {verdict}")
    return 1 if failed else 0


def _print_text(suite: Suite, outcomes: list[Outcome]) -> None:
    print_text(str(suite.file))
    for outcome in outcomes:
        mark = "PASS" if outcome.passed else "FAIL"
        print_text(f"  {mark}  {outcome.name} (route {outcome.route})")
        if outcome.error:
            print_text(f"        error: {outcome.error}")
        for difference in outcome.differences:
            counts = f"expected {len(difference.expected)}, got {len(difference.actual)}"
            print_text(f"        {difference.topic}: {counts}")
            for line in difference.diff:
                print_text(f"          {line}")


def _as_json(suite: Suite, outcome: Outcome) -> dict[str, Any]:
    return {
        "file": str(suite.file),
        "name": outcome.name,
        "route": outcome.route,
        "passed": outcome.passed,
        "error": outcome.error,
        "differences": [
            {
                "topic": d.topic,
                "expected": d.expected,
                "actual": d.actual,
                "diff": d.diff,
            }
            for d in outcome.differences
        ],
    }
