"""The ``millstream`` command: topics, groups, produce and consume.

``main(argv)`` parses the command line, runs the chosen command on an event loop and returns the
exit status: 0 on success, 2 on bad usage (an invalid plugins file among it), 1 on a runtime
error. A runtime error is printed as
one line, ``millstream: error: <message>``, on stderr; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import traceback
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from ..errors import ConfigError, MillstreamError
from ..plugins import get_registry, use_plugins_file
from . import _broker, _consume, _groups, _plugins, _produce, _query, _topics
from ._args import HelpFormatter, UsageError, plugins_option, store_options

__all__ = ["build_parser", "main"]

_AREAS = (_topics, _produce, _consume, _groups, _plugins, _query, _broker)


def build_parser(plugins_file: Path | None = None) -> argparse.ArgumentParser:
    """The full command-line parser, every command with its help and examples: the core's
    commands, then those the loaded plugins add through the ``register_commands`` hook (the
    pipeline commands among them). ``plugins_file`` is the plugins file to load them from
    (``--plugins``; default ``./plugins.toml``). A plugin whose hook raises is left out (with
    a warning), and the others' commands are still there."""
    registry = get_registry(plugins_file)
    while True:
        parser, commands, parents = _core_parser()
        if registry.manager is None:
            return parser
        try:
            registry.manager.hook.register_commands(commands=commands, parents=parents)
        except Exception as exc:
            if registry.drop_failed_plugin(exc, "register_commands") is None:
                raise
            continue  # again without it, on a new parser: it may have added half its commands
        return parser


def _core_parser() -> tuple[
    argparse.ArgumentParser,
    argparse._SubParsersAction[argparse.ArgumentParser],
    list[argparse.ArgumentParser],
]:
    parents = [store_options()]
    parser = argparse.ArgumentParser(
        prog="millstream",
        parents=parents,
        description="Millstream: an event streaming platform with an embedded Kafka-format log.",
        epilog="examples:\n"
        "  millstream topics create readings --partitions 3\n"
        "  millstream produce readings --key-separator : < readings.txt\n"
        "  millstream consume readings --from-beginning --max-messages 10\n"
        "\n"
        "Every command takes --store URL (or --data-dir DIR); see 'millstream COMMAND --help'.",
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"millstream {_version()}")
    plugins_option(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for area in _AREAS:
        area.register(commands, parents)
    return parser, commands, parents


def _plugins_option(argv: list[str]) -> Path | None:
    """The ``--plugins FILE`` of a command line, found before parsing it: the parser itself
    depends on the plugins that file loads."""
    found = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg == "--plugins" and i + 1 < len(argv):
            found = argv[i + 1]
        elif arg.startswith("--plugins="):
            found = arg.removeprefix("--plugins=")
    return None if found is None else Path(found)


def main(argv: list[str] | None = None) -> int:
    """Run the ``millstream`` command line; returns the exit status."""
    plugins_file = _plugins_option(sys.argv[1:] if argv is None else argv)
    if plugins_file is not None and not plugins_file.is_file():
        print(f"millstream: error: --plugins: no such file: {str(plugins_file)!r}", file=sys.stderr)
        return 2
    use_plugins_file(plugins_file)
    try:
        parser = build_parser(plugins_file)
    except ConfigError as exc:  # a plugins file that says something invalid: fix the file
        print(f"millstream: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except MillstreamError as exc:
        print(f"millstream: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error (status 2)
        return exc.code if isinstance(exc.code, int) else 2
    debug = getattr(args, "debug", False)
    try:
        return asyncio.run(args.run(args))
    except UsageError as exc:
        print(f"millstream: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return int(getattr(args, "interrupt_status", 130))
    except BrokenPipeError:
        _silence_stdout()  # the reader went away (| head): stop quietly
        return 0
    except (MillstreamError, OSError) as exc:
        if debug:
            traceback.print_exc()
        print(f"millstream: error: {_one_line(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:
        if debug:
            traceback.print_exc()
        hint = "" if debug else " (run with --debug for the traceback)"
        print(
            f"millstream: error: unexpected {type(exc).__name__}: {_one_line(exc)}{hint}",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split("\n")) or type(exc).__name__


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the interpreter's last flush cannot fail again."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def _version() -> str:
    try:
        return version("millstream")
    except PackageNotFoundError:
        return "unknown"
