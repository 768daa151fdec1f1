"""The plugin manager and the registry of what plugins provide.

Built-in connectors, steps and codecs are plugins too, registered through the same manager
from :data:`DEFAULT_PLUGINS`. Other plugins come from installed packages (entry-point group
``millstream``) and from local modules named in ``plugins.toml``. Everything is loaded lazily,
once per settings file, the first time :func:`get_registry` is called.
"""

from __future__ import annotations

import difflib
import importlib
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from . import hookspecs
from .codecs import Codec
from .connector import Sink, Source
from .errors import ConfigError
from .step import Step

__all__ = ["DEFAULT_PLUGINS", "PluginInfo", "Registry", "get_registry", "plugin_manager"]

DEFAULT_PLUGINS: tuple[str, ...] = (
    "millstream.core.codecs",
    "millstream.connectors",
    "millstream.pipelines.steps",
    "millstream.pipelines.cli",
)
"""The modules that register millstream's own codecs, connectors and steps (by name only:
the engine imports them when it loads plugins, never at import time)."""


@dataclass(frozen=True)
class PluginInfo:
    """One plugin as loaded: ``origin`` is builtin, local or entry point; ``error`` says why it
    could not be loaded (it is then left out, and the others still load)."""

    name: str
    origin: str
    version: str | None = None
    error: str | None = None


@dataclass
class Registry:
    """What the loaded plugins provide, by name."""

    sources: dict[str, type[Source]] = field(default_factory=dict)
    sinks: dict[str, type[Sink]] = field(default_factory=dict)
    steps: dict[str, type[Step]] = field(default_factory=dict)
    codecs: dict[str, Codec] = field(default_factory=dict)
    plugins: list[PluginInfo] = field(default_factory=list)
    manager: pluggy.PluginManager | None = None

    @property
    def connectors(self) -> list[str]:
        """Every connector name, sources' and sinks', sorted."""
        return sorted(set(self.sources) | set(self.sinks))

    def source(self, name: str) -> type[Source]:
        """The source called ``name``; ConfigError (with "did you mean") when there is none."""
        return _lookup(self.sources, name, "source connector")

    def sink(self, name: str) -> type[Sink]:
        """The sink called ``name``; ConfigError (with "did you mean") when there is none."""
        return _lookup(self.sinks, name, "sink connector")

    def step(self, name: str) -> type[Step]:
        """The step called ``name``; ConfigError (with "did you mean") when there is none."""
        return _lookup(self.steps, name, "step")

    def codec(self, name: str) -> Codec:
        """The codec called ``name``; ConfigError (with "did you mean") when there is none."""
        return _lookup(self.codecs, name, "codec")


def _lookup(table: Mapping[str, Any], name: str, what: str) -> Any:
    try:
        return table[name]
    except KeyError:
        pass
    close = difflib.get_close_matches(name, list(table), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    known = ", ".join(sorted(table)) or "none"
    raise ConfigError(f"unknown {what} {name!r}; {hint}known: {known}") from None


def plugin_manager() -> pluggy.PluginManager:
    """A manager with millstream's hook specs and nothing registered."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    return pm


_cache: dict[Path | None, Registry] = {}
_lock = threading.Lock()


def get_registry(plugins_file: Path | None = None) -> Registry:
    """The registry of every plugin that loads, built once per ``plugins_file``."""
    key = plugins_file.resolve() if plugins_file is not None else None
    with _lock:
        registry = _cache.get(key)
        if registry is None:
            registry = _cache[key] = _load(DEFAULT_PLUGINS)
        return registry


def _load(modules: Iterable[str]) -> Registry:
    pm = plugin_manager()
    registry = Registry(manager=pm)
    for name in modules:
        module = importlib.import_module(name)
        pm.register(module, name=name)
        registry.plugins.append(PluginInfo(name, "builtin"))
    for classes in pm.hook.register_connectors():
        for cls in classes:
            if issubclass(cls, Source):
                registry.sources[cls.name] = cls
            if issubclass(cls, Sink):
                registry.sinks[cls.name] = cls
    for classes in pm.hook.register_steps():
        for step in classes:
            registry.steps[step.name] = step
    for classes in pm.hook.register_codecs():
        for codec in classes:
            registry.codecs[codec.name] = codec()
    return registry
