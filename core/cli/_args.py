"""Argument helpers shared by every command: store options, value parsers, help layout."""

from __future__ import annotations

import argparse
import textwrap
from datetime import UTC, datetime
from pathlib import Path

from ..client import Connection, connect, resolve_store_url

__all__ = [
    "HelpFormatter",
    "UsageError",
    "as_bytes",
    "boolean_property",
    "format_option",
    "group_name",
    "header",
    "iso_datetime_ms",
    "key_value",
    "non_negative_int",
    "open_store",
    "plugins_option",
    "positive_int",
    "reset_target",
    "reset_targets",
    "shown",
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


def format_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--format table|json`` (tables for people, JSON for scripts) to ``parser``."""
    parser.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="table for people (default), json for scripts",
    )


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
        help="shorthand for --store millstream://HOST:PORT (a millstream broker)",
    )
    group.add_argument(
        "--debug",
        action="store_true",
        default=argparse.SUPPRESS,
        help="show the full traceback of an error",
    )
    return parent


def plugins_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--plugins FILE`` (``main`` reads it before parsing: the parser depends on it)."""
    parser.add_argument(
        "--plugins",
        metavar="FILE",
        type=Path,
        default=argparse.SUPPRESS,
        help="the plugins file to read (default: ./plugins.toml when it exists)",
    )


def reset_targets(group: argparse._MutuallyExclusiveGroup) -> None:
    """Add ``--to-earliest``, ``--to-latest`` and ``--to-datetime ISO``, where a reset of a
    group's offsets may go, to ``group``; :func:`reset_target` reads them back."""
    group.add_argument("--to-earliest", action="store_true", help="to each partition's start")
    group.add_argument("--to-latest", action="store_true", help="to each partition's end")
    group.add_argument(
        "--to-datetime",
        type=iso_datetime_ms,
        metavar="ISO",
        help="to the first record at or after this time (ISO 8601; no zone means local time)",
    )


def reset_target(args: argparse.Namespace) -> str | int | None:
    """Where :func:`reset_targets`' options say to go: ``"earliest"``, ``"latest"``, a
    timestamp in ms (``args.to_datetime`` is then set), ``args.to_offset`` where a command has
    it, else None."""
    if args.to_earliest:
        return "earliest"
    if args.to_latest:
        return "latest"
    if args.to_datetime is not None:
        return int(args.to_datetime)
    offset = getattr(args, "to_offset", None)
    return None if offset is None else int(offset)


def store_url(args: argparse.Namespace) -> str:
    """The store URL the command line asked for (flags, then environment, then default).

    ``--bootstrap-server`` names a store as ``--store`` and ``--data-dir`` do, so giving it
    with either is a usage error rather than one silently winning."""
    bootstrap = getattr(args, "bootstrap_server", None)
    if bootstrap is not None:
        given = [
            f
            for f, k in (("--store", "store"), ("--data-dir", "data_dir"))
            if getattr(args, k, None)
        ]
        if given:
            raise UsageError(
                f"--bootstrap-server and {given[0]} both name a store; give one of them"
            )
        host, colon, port = bootstrap.rpartition(":")
        if not colon or not host or not port.isdigit():
            raise UsageError(
                f"--bootstrap-server {shown(bootstrap)} is not HOST:PORT; e.g. localhost:9092"
            )
    return resolve_store_url(
        getattr(args, "store", None),
        data_dir=getattr(args, "data_dir", None),
        bootstrap_server=bootstrap,
    )


async def open_store(
    args: argparse.Namespace, *, read_only: bool, create: bool = False
) -> Connection:
    """Open the store the command line names; read-only for commands that only read.

    Only ``topics create`` makes a new store (``create``): any other command given a path that
    holds none (a typo, most likely) fails with "no millstream store at ..." and leaves nothing
    on disk there.
    """
    return await connect(store_url(args), read_only=read_only, create=create)


def key_value(text: str) -> tuple[str, str]:
    """``key=value`` → ``("key", "value")``; the value may be empty or contain ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected key=value, got {text!r}")
    return key, value


def header(text: str) -> tuple[str, bytes]:
    """A record header ``name=value`` → ``("name", b"value")``; the value's bytes are the
    command line's, UTF-8 or not, while the name must be text."""
    name, value = key_value(text)
    if not _is_text(name):
        raise argparse.ArgumentTypeError(f"header name {shown(name)} is not valid UTF-8")
    return name, as_bytes(value)


def as_bytes(text: str) -> bytes:
    """The bytes of a command-line argument as they were given, UTF-8 or not.

    Python decodes arguments as UTF-8 and keeps invalid bytes as lone surrogates
    (``surrogateescape``); this gives those bytes back.
    """
    return text.encode("utf-8", "surrogateescape")


def shown(text: str) -> str:
    """``text`` quoted for a message, bytes that are not UTF-8 shown as ``\\xff``."""
    return "'" + as_bytes(text).decode("utf-8", "backslashreplace") + "'"


def _is_text(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def group_name(text: str) -> str:
    """A consumer group name: any text but the empty one."""
    if not text:
        raise argparse.ArgumentTypeError("a group name must not be empty")
    if not _is_text(text):
        raise argparse.ArgumentTypeError(f"group name {shown(text)} is not valid UTF-8")
    return text


def boolean_property(option: str, key: str, value: str) -> bool:
    """A ``true``/``false`` property (any case, as Kafka's tools read them); anything else is
    a usage error rather than a silent false."""
    word = value.strip().lower()
    if word not in ("true", "false"):
        raise UsageError(f"{option} {key}={shown(value)} is not valid; give true or false")
    return word == "true"


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
    """An ISO 8601 date-time → milliseconds since the epoch; without a zone it is local time.

    A moment before the epoch gives 0: no record is older, so "at or after it" means the same.
    """
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        reason = str(exc)
        detail = "" if reason.startswith("Invalid isoformat") else f" ({reason})"
        raise argparse.ArgumentTypeError(
            f"expected an ISO 8601 date-time such as 2024-05-01T12:00:00Z, got {text!r}{detail}"
        ) from None
    if moment.tzinfo is None:
        try:
            moment = moment.astimezone()
        except (OverflowError, ValueError):  # year 1 or 9999: a zone is nothing beside that
            moment = moment.replace(tzinfo=UTC)
    return max(0, int(moment.timestamp() * 1000))
