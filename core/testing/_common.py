"""What the source and sink conformance suites share: their fixture, the config checks, and
running a coroutine under a deadline."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, ClassVar

import orjson
import pytest
from pydantic import ValidationError

from ..connector import ConnectorConfig, ConnectorContext, Sink, Source
from ..errors import ConfigError, MillstreamError

__all__ = ["ConformanceBase", "canonical", "config_error"]

UNKNOWN_SETTING = "no_such_setting"


def config_error(cls: type[Source] | type[Sink], exc: ValidationError) -> ConfigError:
    """``exc`` as the user sees it: a ConfigError naming the first wrong setting
    (``config.rate: ...``)."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    path = f"config.{where}" if where else "config"
    return ConfigError(f"{first['msg']} (connector {cls.name!r})", path=path)


def canonical(value: Any) -> bytes:
    """A hashable, order-independent form of a value, for comparing what landed."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS, default=repr)


class ConformanceBase:
    """The parts every conformance suite has; see SourceConformance and SinkConformance."""

    timeout: ClassVar[float] = 30.0
    """Seconds one whole check may take before it fails as hung."""

    tmp_path: Path
    monkeypatch: pytest.MonkeyPatch

    @pytest.fixture(autouse=True)
    def _millstream_conformance(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch

    def _connector(self) -> type[Source] | type[Sink]:
        raise NotImplementedError

    def context(self) -> ConnectorContext:
        """The context each instance gets: a pipeline ``conformance``, ``tmp_path`` as the
        pipeline file's folder, the JSON codec for every topic."""
        cls = self._connector()
        return ConnectorContext(pipeline="conformance", name=cls.name, base_dir=self.tmp_path)

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        """Settings that are wrong, each with the name of the setting its error must name.

        The suite always adds an unknown setting and, for each required setting, its
        absence; give more (a negative size, a path that cannot exist…)."""
        return []

    def _run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run(asyncio.wait_for(coro, self.timeout))

    def _config(self, settings: dict[str, Any]) -> ConnectorConfig:
        cls = self._connector()
        try:
            return cls.Config.model_validate(settings)
        except ValidationError as exc:
            raise AssertionError(
                f"the settings the suite was given are not valid: {config_error(cls, exc)}"
            ) from None

    def _check_config_model(self, settings: dict[str, Any]) -> None:
        cls = self._connector()
        name = getattr(cls, "name", None)
        assert isinstance(name, str) and name, f"{cls.__qualname__} has no connector name"
        assert isinstance(cls.Config, type) and issubclass(cls.Config, ConnectorConfig), (
            f"{cls.__qualname__}.Config must subclass ConnectorConfig"
        )
        undescribed = [n for n, f in cls.Config.model_fields.items() if not f.description]
        assert not undescribed, (
            f"{cls.__qualname__}.Config: settings without a description (connectors describe "
            f"shows it): {undescribed}"
        )
        self._config(settings)

    def _check_invalid_settings(self, settings: dict[str, Any], open_with: Any) -> None:
        cls = self._connector()
        cases = [({**settings, UNKNOWN_SETTING: 1}, UNKNOWN_SETTING)]
        for name, info in cls.Config.model_fields.items():
            if info.is_required() and name in settings:
                cases.append(({k: v for k, v in settings.items() if k != name}, name))
        cases.extend(self.invalid_settings())
        for bad, field in cases:
            message = self._error_for(bad, open_with)
            assert message is not None, f"settings {bad!r} were taken without an error"
            assert field in message, (
                f"the error for settings {bad!r} does not name {field!r}: {message}"
            )
            assert "\n" not in message.strip(), f"the error is not one line: {message!r}"

    def _error_for(self, settings: dict[str, Any], open_with: Any) -> str | None:
        """The message a user would see for ``settings``: from the Config model, or else
        from opening an instance (a check that needs the outside world)."""
        cls = self._connector()
        try:
            config = cls.Config.model_validate(settings)
        except ValidationError as exc:
            return str(config_error(cls, exc))

        async def opened() -> str | None:
            instance = cls(config, self.context())
            try:
                await open_with(instance)
            except MillstreamError as exc:
                return str(exc)
            finally:
                await instance.close()
            return None

        return self._run(opened())
