"""Argument helpers shared by every command: store options, value parsers, help layout."""

from __future__ import annotations

import argparse
import textwrap
from datetime import datetime

from ..client import Connection, connect, resolve_store_url

__all__ = [
    "HelpFormatter",
    "UsageError",
    "header",
    "iso_datetime_ms",
    "key_value",
    "non_negative_int",
    "open_store",
    "positive_int",
    "store_options",
    "store_url",
]


class UsageError(Exception):
    """A command line that parses but asks for something impossible; exits with status 2."""


class HelpFormatter(argparse.HelpFormatter):
    """Wraps each paragraph of a description; keeps indented lines (examples) as they are."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, max_help_position=32)

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            if line.startswith(" ") or not line:
                lines.append(indent + line)
            else:
                lines.append(
                    textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent)
                )
        return "\n".join(lines)


def store_options() -> argparse.ArgumentParser:
    """The options every command takes, as a parent parser.

    Defaults are suppressed so that an option given before the command (``millstream --store X
    topics list``) is not overwritten by the command's own, absent copy of it.
    """
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("store options")
    group.add_argument(
        "--store",
        metavar="URL",
        default=argparse.SUPPRESS,
        help="the store: file:DIR (embedded), millstream://HOST:PORT or kafka://HOST:PORT "
        "(env MILLSTREAM_STORE; default file:./.millstream)",
    )
    group.add_argument(
        "--data-dir",
        metavar="DIR",
        default=argparse.SUPPRESS,
        help="shorthand for --store file:DIR (env MILLSTREAM_DATA_DIR)",
    )
    group.add_argument(
        "--bootstrap-server",
        metavar="HOST:PORT",
        default=argparse.SUPPRESS,
        help="shorthand for --store millstream://HOST:PORT",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )
    return parent


def store_url(args: argparse.Namespace) -> str:
    """The store URL the command line asked for (flags, then environment, then default)."""
    return resolve_store_url(
        getattr(args, "store", None),
        data_dir=getattr(args, "data_dir", None),
        bootstrap_server=getattr(args, "bootstrap_server", None),
    )


async def open_store(args: argparse.Namespace, *, read_only: bool) -> Connection:
    """Open the store the command line names; read-only for commands that only read."""
    return await connect(store_url(args), read_only=read_only)


def key_value(text: str) -> tuple[str, str]:
    """``key=value`` → ``("key", "value")``; the value may be empty or contain ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def header(text: str) -> tuple[str, bytes]:
    """A record header ``name=value`` → ``("name", b"value")``."""
    name, value = key_value(text)
    return name, value.encode()


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value == 0:
        raise argparse.ArgumentTypeError("must be 1 or more, got 0")
    return value


def iso_datetime_ms(text: str) -> int:
    """An ISO 8601 date-time → milliseconds since the epoch; without a zone it is local time."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date-time such as 2024-05-01T12:00:00Z, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.astimezone()
    return int(moment.timestamp() * 1000)
