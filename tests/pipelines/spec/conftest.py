"""Small connectors, a registry holding them, and helpers that load pipeline text from a file."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from millstream.core import ConnectorConfig, Event, Sink, Source
from millstream.core.errors import ConfigError
from millstream.core.plugins import Registry, get_registry
from millstream.pipelines.plan import Pipeline
from millstream.pipelines.spec import load_pipeline


class Ticker(Source):
    """A source that cannot resume."""

    name = "ticker"

    class Config(ConnectorConfig):
        rate: float = 1.0
        count: int | None = None

    async def read(self) -> None:
        return None


class Tail(Source):
    """A resumable source with a path and a secret."""

    name = "tail"
    resumable = True

    class Config(ConnectorConfig):
        path: Path
        token: SecretStr | None = None

    async def read(self) -> None:
        return None


class Poller(Source):
    """A source that resumes only when configured with a cursor to remember."""

    name = "poller"

    class Config(ConnectorConfig):
        cursor: str | None = None

    @classmethod
    def resumable_for(cls, config: Any) -> bool:
        return config.cursor is not None

    async def read(self) -> None:
        return None


class Print(Sink):
    name = "print"

    async def write(self, events: Sequence[Event]) -> None:
        pass


class Archive(Sink):
    """An idempotent sink with a path, a list of paths and a secret."""

    name = "archive"
    idempotent = True

    class Config(ConnectorConfig):
        path: Path
        extra: list[Path] = []
        password: SecretStr | None = None
        mode: str = "append"

    async def write(self, events: Sequence[Event]) -> None:
        pass


class FileSink(Sink):
    """Stands in for the file connector in the quickstart example."""

    name = "file"

    class Config(ConnectorConfig):
        path: Path

    async def write(self, events: Sequence[Event]) -> None:
        pass


@pytest.fixture
def registry() -> Registry:
    """The real steps and codecs, and the small connectors above (so that messages listing
    the known connectors stay the same whatever connectors are installed)."""
    real = get_registry()
    return Registry(
        sources={"ticker": Ticker, "tail": Tail, "poller": Poller},
        sinks={"print": Print, "archive": Archive},
        steps=dict(real.steps),
        codecs=dict(real.codecs),
    )


@pytest.fixture
def full_registry() -> Registry:
    """The real registry, with a file sink where none is installed."""
    real = get_registry()
    return Registry(
        sources=dict(real.sources),
        sinks={"file": FileSink, **real.sinks},
        steps=dict(real.steps),
        codecs=dict(real.codecs),
    )


Load = Callable[..., Pipeline]
Fails = Callable[..., ConfigError]


def write_file(folder: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return path


@pytest.fixture
def load(tmp_path: Path, registry: Registry) -> Load:
    """``load(text, env=None, name="pipeline.yaml")``: the text written to a file and loaded."""

    def run(
        text: str, env: Mapping[str, str] | None = None, name: str = "pipeline.yaml", **kw: Any
    ) -> Pipeline:
        path = write_file(tmp_path, text, name)
        return load_pipeline(path, registry=kw.get("registry", registry), env=env or {})

    return run


@pytest.fixture
def fails(load: Load) -> Fails:
    """``fails(text, ...)``: the ConfigError that loading the text raises."""

    def run(text: str, env: Mapping[str, str] | None = None, **kw: Any) -> ConfigError:
        with pytest.raises(ConfigError) as caught:
            load(text, env, **kw)
        return caught.value

    return run
