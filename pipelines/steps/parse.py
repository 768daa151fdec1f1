"""``parse``: turn text into structure: JSON, CSV, key=value pairs, or a regex's named groups.

::

    - parse: json                                  # the whole value is JSON text
    - parse: {format: json, field: payload}        # a field holds JSON text; parsed in place
    - parse: {format: csv, columns: [device, temp, unit]}
    - parse: {format: kv, field: message, into: fields, pair_separator: ";"}
    - parse: {format: regex, pattern: '(?P<level>\\w+): (?P<text>.*)', into: log}

The text is read from ``field`` (default: the whole value, which must then be text or bytes)
and the result is put at ``into`` (default: where the text came from; ``.`` is the whole
value). Text that does not parse rejects the event with the reason.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Callable
from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from millstream.core.event import Event
from millstream.core.step import Rejection, Step, StepContext

from ._fields import MISSING, FieldPathText, failure, parse_path, read_path, set_path

__all__ = ["ParseArgs", "ParseStep"]

WHOLE_VALUE = "."
"""``into: .``: the result replaces the whole value."""


class ParseArgs(BaseModel):
    """The argument of ``parse`` in its long form."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["json", "csv", "kv", "regex"] = Field(description="what the text holds")
    field: FieldPathText | None = Field(
        None, description="the field holding the text (default: the whole value)"
    )
    into: FieldPathText | Literal["."] | None = Field(
        None,
        description="where the result goes (default: where the text came from; "
        "'.' for the whole value)",
    )
    columns: list[str] | None = Field(
        None, description="csv: the column names; without them a row becomes a list"
    )
    delimiter: str = Field(",", min_length=1, max_length=1, description="csv: between fields")
    pair_separator: str | None = Field(
        None, min_length=1, description="kv: between pairs (default: any whitespace)"
    )
    value_separator: str = Field("=", min_length=1, description="kv: between key and value")
    pattern: str | None = Field(None, description="regex: a pattern with named groups")

    @field_validator("pattern")
    @classmethod
    def _pattern(cls, pattern: str | None) -> str | None:
        if pattern is None:
            return None
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"invalid regular expression: {exc}") from None
        if not compiled.groupindex:
            raise ValueError("the pattern has no named groups; name them: (?P<level>\\w+)")
        return pattern

    @model_validator(mode="after")
    def _fits_format(self) -> ParseArgs:
        if self.format == "regex" and self.pattern is None:
            raise ValueError("format regex needs a pattern with named groups")
        if self.format != "regex" and self.pattern is not None:
            raise ValueError(f"pattern is for format regex, not {self.format}")
        if self.format != "csv" and self.columns is not None:
            raise ValueError(f"columns are for format csv, not {self.format}")
        return self


class ParseStep(Step):
    """Parses text held by the value or one of its fields."""

    name = "parse"
    Args: ClassVar = Annotated[
        ParseArgs,
        BeforeValidator(
            lambda v: {"format": v} if isinstance(v, str) else v,
            json_schema_input_type=Literal["json", "csv", "kv"] | ParseArgs,
        ),
    ]

    def __init__(self, args: ParseArgs, context: StepContext) -> None:
        super().__init__(args, context)
        spec = args
        self.source = parse_path(spec.field) if spec.field is not None else None
        if spec.into == WHOLE_VALUE:
            self.target: tuple[str, ...] | None = None
        elif spec.into is not None:
            self.target = parse_path(spec.into)
        else:
            self.target = self.source
        self.parse = _parser(spec)
        self.what = spec.format

    def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        source, target, parse = self.source, self.target, self.parse
        kept = []
        for event in events:
            value = event.value
            text = value if source is None else read_path(value, source)
            if text is MISSING or text is None:
                where = "the value" if source is None else ".".join(source)
                rejected.append(Rejection(event, f"parse {self.what}: {where} is missing"))
                continue
            try:
                if isinstance(text, bytes | bytearray | memoryview):
                    text = bytes(text).decode()
                elif not isinstance(text, str):
                    where = "the value" if source is None else ".".join(source)
                    raise TypeError(f"{where} is {type(text).__name__}, not text")
                result = parse(text)
                if target is None:
                    event.value = result
                elif isinstance(value, dict):
                    set_path(value, target, result)
                else:
                    event.value = {}
                    set_path(event.value, target, result)
            except Exception as exc:
                rejected.append(Rejection(event, f"parse {self.what}: {failure(exc)}"))
                continue
            kept.append(event)
        return kept


def _parser(spec: ParseArgs) -> Callable[[str], Any]:
    if spec.format == "json":
        return _json
    if spec.format == "csv":
        return _csv(spec.columns, spec.delimiter)
    if spec.format == "kv":
        return _kv(spec.pair_separator, spec.value_separator)
    assert spec.pattern is not None
    return _regex(re.compile(spec.pattern))


def _json(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from None


def _csv(columns: list[str] | None, delimiter: str) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        # The reader splits rows itself, so a quoted field keeps its line breaks, and only
        # \n, \r and \r\n end a row (not \x0c or \u2028); empty lines are no rows.
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
        rows = [row for row in reader if row]
        if len(rows) != 1:
            raise ValueError(f"expected one row, got {len(rows)}")
        row = rows[0]
        if columns is None:
            return row
        if len(row) != len(columns):
            raise ValueError(f"{len(row)} fields for {len(columns)} columns")
        return dict(zip(columns, row, strict=True))

    return parse


_QUOTES = "\"'"


def _kv(pair_separator: str | None, value_separator: str) -> Callable[[str], Any]:
    """Pairs ``name=value`` between separators (whitespace, or ``pair_separator`` with any
    whitespace around it). A value in double or single quotes may hold separators, and
    ``\\"`` (or ``\\'``) and ``\\\\`` within it stand for the quote and the backslash; the
    quotes are removed."""

    def next_separator(text: str, position: int) -> int:
        if pair_separator is None:
            found = _SPACE.search(text, position)
            return len(text) if found is None else found.start()
        found_at = text.find(pair_separator, position)
        return len(text) if found_at < 0 else found_at

    def skip_separators(text: str, position: int) -> int:
        while position < len(text):
            if text[position].isspace():
                position += 1
            elif pair_separator is not None and text.startswith(pair_separator, position):
                position += len(pair_separator)
            else:
                break
        return position

    def parse(text: str) -> Any:
        result: dict[str, str] = {}
        position = skip_separators(text, 0)
        while position < len(text):
            start = position
            end = next_separator(text, position)
            at = text.find(value_separator, position, end)
            name = text[position:at].strip() if at >= 0 else ""
            if not name:
                raise ValueError(
                    f"{text[start:end].strip()[:40]!r} is not name{value_separator}value"
                )
            position = at + len(value_separator)
            if pair_separator is not None:
                while position < len(text) and text[position] in " \t":
                    position += 1
            if position < len(text) and text[position] in _QUOTES:
                value, position = _quoted(text, position)
                after = position
                if pair_separator is not None:
                    while position < len(text) and text[position] in " \t":
                        position += 1
                if position < len(text) and next_separator(text, position) != position:
                    raise ValueError(
                        f"{text[start : after + 10][:40]!r}: text right after the closing quote"
                    )
            else:
                end = next_separator(text, position)
                value, position = text[position:end].strip(), end
            result[name] = value
            position = skip_separators(text, position)
        return result

    return parse


_SPACE = re.compile(r"\s")


def _quoted(text: str, position: int) -> tuple[str, int]:
    """The value quoted at ``text[position]``, unescaped, and the position after its closing
    quote; ValueError when it is not closed."""
    quote = text[position]
    parts: list[str] = []
    i = position + 1
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in (quote, "\\"):
            parts.append(text[i + 1])
            i += 2
        elif char == quote:
            return "".join(parts), i + 1
        else:
            parts.append(char)
            i += 1
    raise ValueError(f"{text[position : position + 40]!r}: the quote is not closed")


def _regex(pattern: re.Pattern[str]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        found = pattern.search(text)
        if found is None:
            raise ValueError(f"no match for {pattern.pattern!r}")
        return found.groupdict()

    return parse
