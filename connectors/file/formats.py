"""Line formats of the ``file`` connector: ``lines``, ``jsonl`` and ``csv``, read and written.

Reading: a :class:`LineParser` turns complete lines (bytes, without their ``\\n``) into
events, a batch at a time, and names every line it cannot take in a
:class:`~millstream.core.Rejection` whose reason starts with ``file:line``. The common case
(every line fine) is done in a few C-level calls per batch (one decode and one split for
``lines``); only a batch holding a bad line is gone through line by line.

- ``lines``: the value is the line as text (a trailing ``\\r`` removed).
- ``jsonl``: the value is the line's JSON document; blank lines are skipped.
- ``csv``: the value is a dict of column name to text; the columns are the file's first row
  (``header``) or given; blank lines are skipped; a row with another number of fields is
  rejected.

Writing: :func:`line_writer` gives a function that turns events into the bytes of their lines
(and, for csv, :func:`csv_header` the header row); values it cannot write are returned as
rejections.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from typing import Any, Literal

import orjson

from millstream.core import Codec, Event, Header, Rejection

__all__ = [
    "LineFormat",
    "LineParser",
    "WriteFormat",
    "check_delimiter",
    "csv_header",
    "line_writer",
    "parser_for",
]

LineFormat = Literal["lines", "jsonl", "csv"]
"""The formats the source reads."""
WriteFormat = Literal["jsonl", "csv", "lines"]
"""The formats the sink writes."""

_BOM = b"\xef\xbb\xbf"
_LONG_SAMPLE = 64 * 1024
"""At most this many bytes of an over-long line are kept in its dead letter."""


class _Skip(Exception):
    """The line is not an event and not an error (a blank line, the csv header)."""


class LineParser:
    """Turns a file's lines into events; one instance per file (csv keeps its columns).

    ``parse(lines, first)`` gets complete lines numbered ``first``, ``first + 1``…; a line
    longer than ``max_line_bytes`` is rejected without being parsed.
    """

    def __init__(
        self,
        file: str,
        *,
        encoding: str,
        max_line_bytes: int,
        line_header: bool,
        file_header: bool = True,
    ) -> None:
        self.file = file
        self.encoding = encoding
        self.utf8 = encoding.replace("-", "").replace("_", "").lower() == "utf8"
        self.max_line_bytes = max_line_bytes
        self.line_header = line_header
        self.file_header = file_header
        self.headers: tuple[Header, ...] = (("file", file.encode()),) if file_header else ()

    def parse(self, block: bytes, first: int) -> tuple[list[Event], list[Rejection]]:
        """Events of the good lines of ``block`` (complete lines joined by ``\\n``, the first
        numbered ``first``), in order, and a rejection for each bad one."""
        if first == 1 and self.utf8 and block.startswith(_BOM):
            block = block[len(_BOM) :]  # a byte-order mark is not text
        limit = self.max_line_bytes
        if len(block) > limit:
            lines = block.split(b"\n")
            if max(map(len, lines)) > limit:
                return self._one_by_one(lines, first)
        try:
            values = self._all(block, first)
        except (ValueError, UnicodeDecodeError, csv.Error, _Skip):
            values = None
        if values is None:
            return self._one_by_one(block.split(b"\n"), first)
        headers = self.headers
        if self.line_header:
            return [
                Event(value, None, (*headers, ("line", b"%d" % n)))
                for n, value in enumerate(values, first)
            ], []
        return [Event(value, None, headers) for value in values], []

    def rename(self, file: str) -> None:
        """The file is now called ``file``: its events say so from now on."""
        self.file = file
        if self.file_header:
            self.headers = (("file", file.encode()),)

    def restart(self) -> None:
        """The file starts again from its first line (it was truncated)."""

    def reject(self, raw: bytes, line: int, reason: str) -> Rejection:
        """A rejection of line ``line`` (``raw``: its bytes) with ``reason``."""
        headers = (("file", self.file.encode()), ("line", b"%d" % line))
        return Rejection(Event(raw, None, headers), f"{self.file}:{line}: {reason}")

    def too_long(self, raw: bytes, line: int, length: int | None = None) -> Rejection:
        """The rejection of a line longer than ``max_line_bytes`` (its start kept)."""
        size = f"{length} bytes" if length is not None else "more bytes"
        return self.reject(
            raw[:_LONG_SAMPLE],
            line,
            f"line longer than max_line_bytes ({size} > {self.max_line_bytes}); skipped",
        )

    # -- for each format -------------------------------------------------------------------

    def _all(self, block: bytes, first: int) -> list[Any] | None:
        """The values of all lines of ``block`` when every one is good (raise, or return
        None, if not)."""
        return [self._one(line, n) for n, line in enumerate(block.split(b"\n"), first)]

    def _one(self, line: bytes, number: int) -> Any:
        """The value of one line; ValueError/UnicodeDecodeError when bad, _Skip for none."""
        raise NotImplementedError

    def _text(self, line: bytes) -> str:
        return line.decode(self.encoding)

    def _one_by_one(self, lines: list[bytes], first: int) -> tuple[list[Event], list[Rejection]]:
        events: list[Event] = []
        rejected: list[Rejection] = []
        limit = self.max_line_bytes
        for number, line in enumerate(lines, first):
            if len(line) > limit:
                rejected.append(self.too_long(line, number, len(line)))
                continue
            try:
                value = self._one(line, number)
            except _Skip:
                continue
            except UnicodeDecodeError as exc:
                rejected.append(self.reject(line, number, f"not valid {self.encoding}: {exc}"))
                continue
            except (ValueError, csv.Error) as exc:
                rejected.append(self.reject(line, number, str(exc)))
                continue
            headers = self.headers
            if self.line_header:
                headers = (*headers, ("line", b"%d" % number))
            events.append(Event(value, None, headers))
        return events, rejected


class _TextLines(LineParser):
    def _all(self, block: bytes, first: int) -> list[Any] | None:
        text = block.decode(self.encoding)
        values = text.split("\n")
        if "\r" in text:
            values = [v[:-1] if v.endswith("\r") else v for v in values]
        return values

    def _one(self, line: bytes, number: int) -> Any:
        text = line.decode(self.encoding)
        return text[:-1] if text.endswith("\r") else text


class _JsonLines(LineParser):
    def _all(self, block: bytes, first: int) -> list[Any] | None:
        loads = orjson.loads
        if self.utf8:
            return [loads(line) for line in block.split(b"\n")]
        return [loads(line) for line in block.decode(self.encoding).split("\n")]

    def _one(self, line: bytes, number: int) -> Any:
        if not line.strip():
            raise _Skip
        if not self.utf8:
            return _json(line.decode(self.encoding))
        try:
            line.decode()
        except UnicodeDecodeError as exc:
            raise ValueError(f"not valid utf-8: {exc}") from None
        return _json(line)


def _json(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


class _CsvRows(LineParser):
    def __init__(
        self,
        file: str,
        *,
        encoding: str,
        max_line_bytes: int,
        line_header: bool,
        file_header: bool,
        columns: Sequence[str] | None,
        delimiter: str,
    ) -> None:
        super().__init__(
            file,
            encoding=encoding,
            max_line_bytes=max_line_bytes,
            line_header=line_header,
            file_header=file_header,
        )
        self.columns: tuple[str, ...] | None = tuple(columns) if columns else None
        self.header_row = columns is None
        self.delimiter = delimiter

    @property
    def needs_header(self) -> bool:
        """True while the columns are still to be read from the file's first row."""
        return self.columns is None

    def restart(self) -> None:
        if self.header_row:
            self.columns = None

    def take_header(self, line: bytes) -> None:
        """Take the columns from ``line`` (the file's first row), as on resuming mid-file."""
        row = self._row(line.removeprefix(_BOM) if self.utf8 else line)
        if row:
            self.columns = tuple(row)

    def _all(self, block: bytes, first: int) -> list[Any] | None:
        if first == 1 and self.header_row:
            return None  # the header is the first line: taken one by one
        columns = self.columns
        if columns is None:
            return None
        width = len(columns)
        text = block.decode(self.encoding)
        rows = list(
            csv.reader(io.StringIO(text, newline=""), delimiter=self.delimiter, strict=True)
        )
        if len(rows) != block.count(b"\n") + 1 or any(len(row) != width for row in rows):
            return None
        return [dict(zip(columns, row, strict=True)) for row in rows]

    def _one(self, line: bytes, number: int) -> Any:
        if not line.strip():
            raise _Skip
        row = self._row(line)
        if number == 1 and self.header_row:
            self.columns = tuple(row)
            raise _Skip
        if self.columns is None:
            raise ValueError("no columns known: the file's header row was not read")
        if len(row) != len(self.columns):
            raise ValueError(f"{len(row)} fields where the header has {len(self.columns)} columns")
        return dict(zip(self.columns, row, strict=True))

    def _row(self, line: bytes) -> list[str]:
        text = line.decode(self.encoding)
        rows = list(csv.reader([text], delimiter=self.delimiter, strict=True))
        return rows[0] if rows else []


def parser_for(
    format: LineFormat,
    file: str,
    *,
    encoding: str = "utf-8",
    max_line_bytes: int = 1024 * 1024,
    line_header: bool = False,
    file_header: bool = True,
    columns: Sequence[str] | None = None,
    delimiter: str = ",",
) -> LineParser:
    """A new parser of ``format`` for the file at ``file``."""
    common: dict[str, Any] = {
        "encoding": encoding,
        "max_line_bytes": max_line_bytes,
        "line_header": line_header,
        "file_header": file_header,
    }
    if format == "csv":
        return _CsvRows(file, columns=columns, delimiter=delimiter, **common)
    if format == "jsonl":
        return _JsonLines(file, **common)
    return _TextLines(file, **common)


# -- writing -------------------------------------------------------------------------------

LineWriter = Callable[[Event], bytes]
"""The bytes of one event's line, newline included; ValueError when it cannot be written."""


def line_writer(
    format: WriteFormat,
    codec_of: Callable[[str | None], Codec],
    *,
    columns: Sequence[str] = (),
    delimiter: str = ",",
) -> LineWriter:
    """A function writing one event as a line of ``format``.

    - ``jsonl``: the value as compact JSON (bytes values as text when they are UTF-8).
    - ``lines``: a text value as it is, bytes as they are, anything else in its topic's codec.
    - ``csv``: the fields ``columns`` of an object value; missing ones empty, nested values as
      JSON, others ignored.
    """
    if format == "jsonl":
        dumps, option = orjson.dumps, orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE

        def jsonl(event: Event) -> bytes:
            try:
                return dumps(event.value, default=_jsonable, option=option)
            except TypeError as exc:
                raise ValueError(f"cannot be written as JSON: {exc}") from None

        return jsonl
    if format == "lines":

        def text(event: Event) -> bytes:
            value = event.value
            if type(value) is str:
                return value.encode() + b"\n"
            if type(value) is bytes:
                return value + b"\n"
            return codec_of(event.topic).encode(value) + b"\n"

        return text

    names = tuple(columns)

    def row(event: Event) -> bytes:
        value = event.value
        if not isinstance(value, dict):
            raise ValueError(f"csv needs an object value, not {type(value).__name__}")
        return csv_row([_cell(value.get(name)) for name in names], delimiter)

    return row


def csv_header(columns: Sequence[str], delimiter: str = ",") -> bytes:
    """The header row of a csv file with ``columns``."""
    return csv_row(list(columns), delimiter)


def csv_row(cells: list[str], delimiter: str) -> bytes:
    """One csv row, ``\\n``-terminated."""
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator="\n").writerow(cells)
    return out.getvalue().encode()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return orjson.dumps(value, default=_jsonable).decode()


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    raise TypeError(f"type {type(value).__name__} is not JSON")


def check_delimiter(value: str) -> str:
    """``value`` when it can separate CSV fields: one character, not a quote or a newline;
    ValueError saying so otherwise."""
    if len(value) != 1 or value in '\r\n"':
        raise ValueError(
            f"the delimiter must be one character (not a quote or a newline), not {value!r}"
        )
    return value
