"""``validate``: check each value against a JSON Schema; an invalid one is rejected.

::

    - validate: schemas/reading.json               # relative to the pipeline file's folder
    - validate: {schema: schemas/reading.yaml}

The schema file is JSON or YAML, read once when the pipeline is checked; ``format`` keywords
(``date-time``, ``email``…) are checked too. The reason of a rejection names the first error's
place in the value and what was wrong: ``$.temp: 'hot' is not of type 'number'``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, ClassVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from millstream.core.errors import ConfigError
from millstream.core.event import Event
from millstream.core.step import Rejection, Step, StepContext

__all__ = ["ValidateArgs", "ValidateStep"]


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
        self.validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
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
