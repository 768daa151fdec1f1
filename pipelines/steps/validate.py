"""``validate``: check each value against a JSON Schema; an invalid one is rejected.

::

    - validate: schemas/reading.json               # relative to the pipeline file's folder
    - validate: {schema: schemas/reading.yaml}

The schema file is JSON or YAML, read once when the pipeline is checked. The ``format`` keywords
in :data:`CHECKED_FORMATS` are checked too (``date-time`` and ``time`` as RFC 3339 says); any
other format accepts any text. The reason of a rejection names the first error's
place in the value and what was wrong: ``$.temp: 'hot' is not of type 'number'``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from millstream.core.errors import ConfigError
from millstream.core.event import Event
from millstream.core.step import Rejection, Step, StepContext

__all__ = [
    "CHECKED_FORMATS",
    "ValidateArgs",
    "ValidateStep",
    "is_rfc3339_date_time",
    "is_rfc3339_time",
]

CHECKED_FORMATS = (
    "date-time",
    "date",
    "time",
    "email",
    "idn-email",
    "ipv4",
    "ipv6",
    "uuid",
    "regex",
)
"""The ``format`` values a schema's texts are checked against; the same whatever else is
installed."""

_TIME = r"([0-9]{2}):([0-9]{2}):([0-9]{2})(\.[0-9]+)?([Zz]|[+-]([0-9]{2}):([0-9]{2}))"
_DATE_TIME = re.compile(r"([0-9]{4}-[0-9]{2}-[0-9]{2})[Tt]" + _TIME, re.ASCII)
_FULL_TIME = re.compile(_TIME, re.ASCII)


def is_rfc3339_date_time(text: str) -> bool:
    """Whether ``text`` is an RFC 3339 date-time: ``2024-05-01T12:00:00.5+02:00``, with its
    zone (``Z`` or an offset), seconds, and a real date and time (a leap second ``:60`` too)."""
    found = _DATE_TIME.fullmatch(text)
    return found is not None and _real_time(found.group(1), *found.groups()[1:])


def is_rfc3339_time(text: str) -> bool:
    """Whether ``text`` is an RFC 3339 full-time: ``12:00:00Z``, ``23:59:60.5+01:00``."""
    found = _FULL_TIME.fullmatch(text)
    return found is not None and _real_time("2000-01-01", *found.groups())


def _real_time(
    date: str,
    hour: str,
    minute: str,
    second: str,
    fraction: str | None,
    zone: str,
    zone_hours: str | None,
    zone_minutes: str | None,
) -> bool:
    if second == "60":  # a leap second: datetime knows none, so check the second before it
        second = "59"
    if zone_hours is not None and (int(zone_hours) > 23 or int(zone_minutes or 0) > 59):
        return False
    try:
        datetime.fromisoformat(f"{date}T{hour}:{minute}:{second}")
    except ValueError:
        return False
    return True


def _format_checker(validator: Any) -> Any:
    """A format checker for :data:`CHECKED_FORMATS`: jsonschema's own checks, with RFC 3339
    ``date-time`` and ``time`` (which jsonschema checks only with an extra package)."""
    import jsonschema

    known = validator.FORMAT_CHECKER.checkers
    checker = jsonschema.FormatChecker(formats=())
    for name in CHECKED_FORMATS:
        if name in known:
            checker.checkers[name] = known[name]
    checker.checks("date-time")(_text_check(is_rfc3339_date_time))
    checker.checks("time")(_text_check(is_rfc3339_time))
    return checker


def _text_check(check: Callable[[str], bool]) -> Callable[[object], bool]:
    def checked(instance: object) -> bool:
        return not isinstance(instance, str) or check(instance)

    return checked


class ValidateArgs(BaseModel):
    """The argument of ``validate`` in its long form."""

    model_config = ConfigDict(extra="forbid")

    schema_file: str = Field(
        alias="schema",
        min_length=1,
        description="the JSON Schema file (JSON or YAML), relative to the pipeline file",
    )


def _load(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read the schema file {str(path)!r}: {exc.strerror or exc}"
        ) from None
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            return yaml.safe_load(text)
        import orjson

        return orjson.loads(text)
    except Exception as exc:
        what = "YAML" if path.suffix in (".yaml", ".yml") else "JSON"
        detail = " ".join(str(exc).split())
        raise ConfigError(f"the schema file {str(path)!r} is not valid {what}: {detail}") from None


class ValidateStep(Step):
    """Rejects every event whose value the schema does not accept."""

    name = "validate"
    Args: ClassVar = Annotated[
        ValidateArgs,
        BeforeValidator(
            lambda v: {"schema": v} if isinstance(v, str) else v,
            json_schema_input_type=str | ValidateArgs,
        ),
    ]

    def __init__(self, args: ValidateArgs, context: StepContext) -> None:
        super().__init__(args, context)
        import jsonschema

        name = args.schema_file
        path = Path(name).expanduser()
        if not path.is_absolute():
            path = Path(context.base_dir) / path
        schema = _load(path)
        if not isinstance(schema, dict | bool):
            raise ConfigError(f"the schema file {str(path)!r} holds no JSON Schema object")
        cls = jsonschema.validators.validator_for(schema)
        try:
            cls.check_schema(schema)
        except jsonschema.SchemaError as exc:
            raise ConfigError(
                f"the schema file {str(path)!r} is not a valid JSON Schema: "
                f"{_where(exc.json_path)}{exc.message}"
            ) from None
        self.validator = cls(schema, format_checker=_format_checker(cls))
        self.schema_path = path

    def process(self, events: list[Event], rejected: list[Rejection]) -> list[Event]:
        from jsonschema.exceptions import best_match

        is_valid = self.validator.is_valid
        errors = self.validator.iter_errors
        kept = []
        for event in events:
            value = event.value
            if is_valid(value):
                kept.append(event)
                continue
            first = best_match(errors(value))
            reason = (
                "does not match the schema"
                if first is None
                else f"{first.json_path}: {first.message}"
            )
            rejected.append(Rejection(event, " ".join(reason.split())[:500]))
        return kept


def _where(json_path: str) -> str:
    return "" if json_path == "$" else f"{json_path}: "
