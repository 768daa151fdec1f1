"""What the command line prints: aligned text tables, JSON, record encodings."""

from __future__ import annotations

import base64
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import orjson

from ..errors import MillstreamError

__all__ = [
    "human_bytes",
    "print_json",
    "print_text",
    "render_table",
    "text_or_base64",
    "write_stdout",
]


def render_table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """An aligned text table: numbers right-aligned, text left-aligned, None shown as ``-``."""
    rows = [tuple(row) for row in rows]
    numeric = [
        any(isinstance(row[i], int | float) for row in rows)
        and all(isinstance(row[i], int | float) or row[i] is None for row in rows)
        for i in range(len(headers))
    ]
    cells = [["-" if value is None else str(value) for value in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, text in enumerate(row):
            widths[i] = max(widths[i], len(text))
    head = [
        h.rjust(w) if numeric[i] else h.ljust(w)
        for i, (h, w) in enumerate(zip(headers, widths, strict=True))
    ]
    lines = ["  ".join(head).rstrip()]
    for row in cells:
        parts = [
            text.rjust(w) if numeric[i] else text.ljust(w)
            for i, (text, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append("  ".join(parts).rstrip())
    return "\n".join(lines)


def print_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    print_text(orjson.dumps(data, option=orjson.OPT_INDENT_2).decode())


def print_text(text: str = "") -> None:
    """Print ``text`` and a newline on stdout, at once."""
    try:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    except BrokenPipeError:
        raise  # the reader went away: the command ends quietly
    except OSError as exc:
        raise _stdout_error(exc) from exc


def write_stdout(data: bytes | bytearray) -> None:
    """Write ``data`` to stdout's bytes and flush them (stdout's text buffer flushed first)."""
    try:
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        raise
    except OSError as exc:
        raise _stdout_error(exc) from exc


def _stdout_error(exc: OSError) -> MillstreamError:
    return MillstreamError(f"cannot write to standard output: {exc.strerror or exc}")


def text_or_base64(data: bytes) -> tuple[str, bool]:
    """``data`` as UTF-8 text when it is valid UTF-8, else as base64; the flag says which."""
    try:
        return data.decode(), False
    except UnicodeDecodeError:
        return base64.b64encode(data).decode("ascii"), True


def human_bytes(size: int) -> str:
    """1536 → ``1.5 KiB``: a size as a person reads it."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
