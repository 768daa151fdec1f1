"""The plugin manager and the registry of what plugins provide.

Built-in connectors, steps, codecs and commands are plugins too, registered through the same
manager from :data:`DEFAULT_PLUGINS`. Other plugins come from local modules named in
``plugins.toml`` and from installed packages (entry-point group ``millstream``), in that order.
Everything is loaded lazily, once per plugins file, the first time :func:`get_registry` is
called.

``plugins.toml`` (read from the current directory; ``millstream --plugins FILE`` names another)::

    modules = ["my_plugins.sensors", "plugins/csv_source.py"]  # import paths or .py files
    entry_points = true                                       # load installed plugins
    block = ["millstream-mqtt"]                               # never load these, by name

A plugin that cannot be loaded (its import fails, a hook raises, it registers something that is
not a Source, Sink, Step or Codec, or a name another plugin already took) is left out as a
whole: it is listed with its error (:attr:`PluginInfo.error`), a warning is printed on stderr
once, and the other plugins still load.

Entry points are not loaded while the environment says ``MILLSTREAM_ENTRY_POINTS=0``; the
millstream pytest plugin sets it for a test session, so installed plugins never leak into
tests. A test that wants them asks with ``load_registry(entry_points=True)``.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import importlib
import importlib.util
import inspect
import os
import re
import sys
import threading
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .codecs import Codec
from .connector import ConnectorConfig, Sink, Source
from .errors import ConfigError, PluginError
from .step import Step

__all__ = [
    "DEFAULT_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PLUGINS_FILE",
    "PluginInfo",
    "PluginSettings",
    "Registry",
    "get_registry",
    "load_registry",
    "plugin_manager",
    "use_plugins_file",
]

DEFAULT_PLUGINS: tuple[str, ...] = (
    "millstream.core.codecs",
    "millstream.connectors",
    "millstream.pipelines.steps",
    "millstream.pipelines.cli",
)
"""The modules that register millstream's own codecs, connectors, steps and commands (by name
only: the engine imports them when it loads plugins, never at import time)."""

ENTRY_POINT_GROUP = hookspecs.PROJECT
"""The entry-point group installed plugins declare themselves in (``millstream``)."""

PLUGINS_FILE = "plugins.toml"
"""The plugins file looked for in the current directory."""

_ENTRY_POINTS_ENV = "MILLSTREAM_ENTRY_POINTS"
_REGISTRATION_HOOKS = ("register_connectors", "register_steps", "register_codecs")
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*\Z")


@dataclass(frozen=True)
class PluginInfo:
    """One plugin, as loading found it.

    ``origin`` is ``builtin``, ``local`` (plugins.toml ``modules``) or ``entry-point``;
    ``version`` the installed distribution's version when there is one. ``error`` says why it
    could not be loaded (it is then left out as a whole, and the others still load);
    ``blocked`` that plugins.toml blocks it (it was not even imported). ``provides`` lists what
    it registered, as ``source:NAME``, ``sink:NAME``, ``step:NAME`` and ``codec:NAME``.
    """

    name: str
    origin: str
    version: str | None = None
    error: str | None = None
    blocked: bool = False
    provides: tuple[str, ...] = ()

    @property
    def status(self) -> str:
        """``ok``, ``blocked`` or ``error``."""
        return "blocked" if self.blocked else "error" if self.error else "ok"


@dataclass(frozen=True)
class PluginSettings:
    """What a plugins file says; the defaults are what holds without one.

    ``modules`` are import paths (``my_plugins.sensors``) or ``.py`` files, relative paths
    being relative to ``base_dir`` (the plugins file's folder, which is also put on
    ``sys.path`` for the import paths). ``block`` holds plugin names (or, for entry points,
    distribution names) never to load.
    """

    file: Path | None = None
    modules: tuple[str, ...] = ()
    entry_points: bool = True
    block: frozenset[str] = frozenset()

    @property
    def base_dir(self) -> Path:
        return self.file.parent if self.file is not None else Path.cwd()

    @classmethod
    def read(cls, path: Path) -> PluginSettings:
        """The settings of the plugins file at ``path``; ConfigError, with the file and line,
        when it cannot be read or says something that is not a setting."""
        where = str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError("no such plugins file", file=where) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read the plugins file: {exc}", file=where) from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            line, column, message = _toml_position(str(exc))
            raise ConfigError(
                f"not valid TOML: {message}", file=where, line=line, column=column
            ) from None
        known = {"modules": list, "entry_points": bool, "block": list}
        for key, value in data.items():
            line = _line_of(text, key)
            if key not in known:
                hint = difflib.get_close_matches(key, list(known), n=1)
                did = f"did you mean {hint[0]!r}? " if hint else ""
                raise ConfigError(
                    f"unknown setting {key!r}; {did}valid: {', '.join(sorted(known))}",
                    file=where,
                    line=line,
                    path=key,
                )
            if not isinstance(value, known[key]) or (
                isinstance(value, list) and not all(isinstance(v, str) for v in value)
            ):
                wanted = "true or false" if key == "entry_points" else "a list of strings"
                raise ConfigError(f"must be {wanted}", file=where, line=line, path=key)
        return cls(
            file=path.absolute(),
            modules=tuple(data.get("modules", ())),
            entry_points=data.get("entry_points", True),
            block=frozenset(data.get("block", ())),
        )


def _toml_position(message: str) -> tuple[int | None, int | None, str]:
    found = re.search(r"\s*\(at line (\d+), column (\d+)\)$", message)
    if found is None:
        return None, None, message
    return int(found[1]), int(found[2]), message[: found.start()]


def _line_of(text: str, key: str) -> int | None:
    for number, line in enumerate(text.splitlines(), 1):
        if re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
            return number
    return None


@dataclass
class Registry:
    """What the loaded plugins provide, by name, and the manager that holds them."""

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

    def provider(self, kind: str, name: str) -> str | None:
        """The name of the plugin that registered ``kind`` (source, sink, step, codec)
        ``name``, or None."""
        entry = f"{kind}:{name}"
        for info in self.plugins:
            if entry in info.provides:
                return info.name
        return None

    def drop_failed_plugin(self, exc: BaseException, hook: str) -> str | None:
        """After a call of ``hook`` raised ``exc``: find the plugin whose implementation
        raised it, take it out of the manager, record the error and warn. Returns its name,
        or None when no plugin's implementation is on ``exc``'s traceback."""
        if self.manager is None:
            return None
        impls = {
            impl.function.__code__: impl.plugin_name
            for impl in getattr(self.manager.hook, hook).get_hookimpls()
            if hasattr(impl.function, "__code__")
        }
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code not in impls:
            tb = tb.tb_next
        if tb is None:
            return None
        name = impls[tb.tb_frame.f_code]
        self.manager.unregister(name=name)
        error = f"{hook}() raised {_described(exc)}"
        for i, info in enumerate(self.plugins):
            if info.name == name:
                self._forget(info.provides)
                self.plugins[i] = PluginInfo(name, info.origin, info.version, error)
                _warn(self.plugins[i])
        return name

    def _forget(self, provides: Iterable[str]) -> None:
        """Take out of the tables what a plugin provided (``source:NAME``, ``step:NAME``…)."""
        tables: dict[str, dict[str, Any]] = {
            "source": self.sources,
            "sink": self.sinks,
            "step": self.steps,
            "codec": self.codecs,
        }
        for entry in provides:
            kind, _, key = entry.partition(":")
            tables[kind].pop(key, None)

    async def call_startup(self, pipelines: Sequence[str]) -> None:
        """Call every plugin's ``startup`` hook with the names of the pipelines about to start,
        one plugin after another in pluggy's order, awaiting what each returns.

        The first that raises stops it: PluginError "plugin 'NAME' failed in startup: ...".
        The plugins started before it are not shut down here (``call_shutdown`` does that).
        """
        for name, call in self._lifecycle("startup", pipelines):
            try:
                result = call()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                raise PluginError(f"plugin {name!r} failed in startup: {_described(exc)}") from exc

    async def call_shutdown(self, pipelines: Sequence[str]) -> None:
        """Call every plugin's ``shutdown`` hook with the names of the pipelines that stopped,
        in the reverse order of ``call_startup``, awaiting what each returns.

        Every plugin's hook runs even when one raises; afterwards PluginError names each that
        failed ("plugin 'NAME' failed in shutdown: ...", joined by "; ").
        """
        failures: list[tuple[str, Exception]] = []
        for name, call in reversed(self._lifecycle("shutdown", pipelines)):
            try:
                result = call()
                if inspect.isawaitable(result):
                    await result
            except Exception as exc:
                failures.append((name, exc))
        if failures:
            raise PluginError(
                "; ".join(
                    f"plugin {name!r} failed in shutdown: {_described(exc)}"
                    for name, exc in failures
                )
            ) from failures[0][1]

    def _lifecycle(
        self, hook: str, pipelines: Sequence[str]
    ) -> list[tuple[str, Callable[[], Any]]]:
        """Each plugin's implementation of ``hook`` (``startup``, ``shutdown``), by plugin
        name and ready to call with the arguments it takes, in the order pluggy calls them."""
        if self.manager is None:
            return []
        arguments = {"pipelines": list(pipelines)}
        impls = getattr(self.manager.hook, hook).get_hookimpls()
        return [
            (
                impl.plugin_name,
                functools.partial(impl.function, **{a: arguments[a] for a in impl.argnames}),
            )
            for impl in reversed(impls)  # pluggy calls the last registered first
            if not (impl.hookwrapper or impl.wrapper)
        ]


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
_default_file: Path | None = None


def use_plugins_file(path: Path | None) -> None:
    """Make ``path`` the plugins file that ``get_registry()`` reads when it is not given one
    (the command line calls this with ``--plugins FILE``); None: ``./plugins.toml`` again."""
    global _default_file
    _default_file = path


def get_registry(plugins_file: Path | None = None) -> Registry:
    """The registry of every plugin that loads, built once per plugins file.

    Without ``plugins_file``: the file named by :func:`use_plugins_file`, else
    ``plugins.toml`` in the current directory when there is one, else the defaults (built-ins
    and entry points). A named file that does not exist, or that says something invalid, is a
    ConfigError.
    """
    path = _plugins_file(plugins_file)
    key = path.resolve() if path is not None else None
    with _lock:
        registry = _cache.get(key)
        if registry is None:
            registry = _cache[key] = load_registry(path)
        return registry


def _plugins_file(plugins_file: Path | None) -> Path | None:
    if plugins_file is not None:
        return plugins_file
    if _default_file is not None:
        return _default_file
    local = Path(PLUGINS_FILE)
    return local if local.is_file() else None


def load_registry(
    plugins_file: Path | None = None, *, entry_points: bool | None = None
) -> Registry:
    """A new registry (not cached) from ``plugins_file``'s settings, or the defaults.

    ``entry_points`` overrides whether installed plugins load; None: as the plugins file says,
    unless ``MILLSTREAM_ENTRY_POINTS=0`` (as under pytest).
    """
    settings = PluginSettings.read(plugins_file) if plugins_file is not None else PluginSettings()
    if entry_points is None:
        entry_points = settings.entry_points and os.environ.get(_ENTRY_POINTS_ENV) != "0"
    loader = _Loader(settings)
    version = _own_version()
    for module in DEFAULT_PLUGINS:
        loader.add(module, "builtin", functools.partial(importlib.import_module, module), version)
    for entry in settings.modules:
        loader.add(entry, "local", functools.partial(_import_local, entry, settings.base_dir))
    if entry_points:
        for ep in _entry_points():
            dist = ep.dist
            loader.add(
                ep.name,
                "entry-point",
                ep.load,
                dist.version if dist is not None else None,
                aliases=(dist.name,) if dist is not None else (),
            )
    return loader.registry


def _entry_points() -> list[metadata.EntryPoint]:
    seen: set[tuple[str, str]] = set()
    found = []
    for ep in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if (ep.name, ep.value) not in seen:  # one distribution seen twice on sys.path
            seen.add((ep.name, ep.value))
            found.append(ep)
    return found


def _own_version() -> str | None:
    try:
        return metadata.version("millstream")
    except metadata.PackageNotFoundError:
        return None


def _import_local(entry: str, base: Path) -> ModuleType:
    """Import a plugins.toml ``modules`` entry: a ``.py`` file or an import path."""
    if entry.endswith(".py") or "/" in entry or os.sep in entry:
        path = Path(entry).expanduser()
        path = (path if path.is_absolute() else base / path).resolve()
        if not path.is_file():
            raise PluginError(f"no such file: {path}")
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:8]
        stem = re.sub(r"\W", "_", path.stem)
        name = f"_millstream_local_{stem}_{digest}"
        module = sys.modules.get(name)
        if module is not None:
            return module
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise PluginError(f"cannot import {path}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
        return module
    folder = str(base)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    return importlib.import_module(entry)


def _described(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _warn(info: PluginInfo) -> None:
    print(f"millstream: warning: plugin {info.name!r} not loaded: {info.error}", file=sys.stderr)


class _Loader:
    """Loads plugins one by one into a registry; a plugin goes in whole or not at all."""

    def __init__(self, settings: PluginSettings) -> None:
        self.settings = settings
        self.manager = plugin_manager()
        self.registry = Registry(manager=self.manager)

    def add(
        self,
        name: str,
        origin: str,
        load: Callable[[], object],
        version: str | None = None,
        aliases: Iterable[str] = (),
    ) -> None:
        known = {info.name: info for info in self.registry.plugins}
        if name in known:
            error = f"a plugin called {name!r} is already loaded ({known[name].origin})"
            self._record(PluginInfo(name, origin, version, error))
            return
        if self.settings.block & {name, *aliases}:
            self._record(PluginInfo(name, origin, version, blocked=True))
            return
        try:
            plugin = load()
        except (Exception, SystemExit) as exc:
            self._record(PluginInfo(name, origin, version, f"cannot import: {_described(exc)}"))
            return
        try:
            provides = self._register(name, plugin)
        except PluginError as exc:
            if self.manager.has_plugin(name):
                self.manager.unregister(name=name)
            self._record(PluginInfo(name, origin, version, str(exc)))
            return
        self._record(PluginInfo(name, origin, version, provides=provides))

    def _record(self, info: PluginInfo) -> None:
        self.registry.plugins.append(info)
        if info.error is not None:
            _warn(info)

    def _register(self, name: str, plugin: object) -> tuple[str, ...]:
        """Register ``plugin``, collect and check what it provides, then add it all."""
        try:
            self.manager.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            raise PluginError(_described(exc)) from None
        self._check_hook_names(plugin)
        offered = {hook: self._call(hook, plugin) for hook in _REGISTRATION_HOOKS}
        registry = self.registry
        sources: dict[str, type[Source]] = {}
        sinks: dict[str, type[Sink]] = {}
        steps: dict[str, type[Step]] = {}
        codecs: dict[str, Codec] = {}
        for cls in offered["register_connectors"]:
            _check_class(cls, (Source, Sink), "register_connectors", "a Source or Sink class")
            if not (isinstance(cls.Config, type) and issubclass(cls.Config, ConnectorConfig)):
                raise PluginError(f"{cls.__qualname__}.Config is not a ConnectorConfig model")
            if issubclass(cls, Source):
                _claim(sources, registry.sources, "source connector", cls.name, cls, registry)
            if issubclass(cls, Sink):
                _claim(sinks, registry.sinks, "sink connector", cls.name, cls, registry)
        for cls in offered["register_steps"]:
            _check_class(cls, (Step,), "register_steps", "a Step class")
            _claim(steps, registry.steps, "step", cls.name, cls, registry)
        for cls in offered["register_codecs"]:
            _check_class(cls, (Codec,), "register_codecs", "a Codec class")
            try:
                codec = cls()
            except Exception as exc:
                raise PluginError(f"codec {cls.name!r} cannot be made: {_described(exc)}") from None
            _claim(codecs, registry.codecs, "codec", cls.name, codec, registry)
        registry.sources.update(sources)
        registry.sinks.update(sinks)
        registry.steps.update(steps)
        registry.codecs.update(codecs)
        return tuple(
            f"{kind}:{key}"
            for kind, table in (("source", sources), ("sink", sinks), ("step", steps))
            for key in table
        ) + tuple(f"codec:{key}" for key in codecs)

    def _check_hook_names(self, plugin: object) -> None:
        """A hook implementation whose name is no hook (a typo) would silently do nothing."""
        specs = [n for n, f in vars(hookspecs).items() if hasattr(f, f"{hookspecs.PROJECT}_spec")]
        for attr in dir(plugin):
            opts = self.manager.parse_hookimpl_opts(plugin, attr)
            if opts is None or opts.get("optionalhook") or attr in specs:
                continue
            close = difflib.get_close_matches(attr, specs, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise PluginError(f"{attr}() is not a millstream hook; {hint}hooks: {', '.join(specs)}")

    def _call(self, hook: str, plugin: object) -> list[Any]:
        found: list[Any] = []
        for impl in getattr(self.manager.hook, hook).get_hookimpls():
            if impl.plugin is not plugin:
                continue
            try:
                result = impl.function()
            except Exception as exc:
                raise PluginError(f"{hook}() raised {_described(exc)}") from None
            if result is None:
                continue
            if not isinstance(result, Iterable) or isinstance(result, str | bytes):
                raise PluginError(f"{hook}() returned {result!r}, not a list of classes")
            found.extend(result)
        return found


def _check_class(obj: object, bases: tuple[type, ...], hook: str, wanted: str) -> None:
    if not (isinstance(obj, type) and issubclass(obj, bases)):
        raise PluginError(f"{hook}() returned {obj!r}, which is not {wanted}")
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not _NAME.match(name):
        raise PluginError(
            f"{obj.__qualname__}.name must be a name (a letter, then letters, digits, "
            f"'_', '.' or '-'), not {name!r}"
        )
    if inspect.isabstract(obj):
        missing = ", ".join(sorted(getattr(obj, "__abstractmethods__", ())))
        raise PluginError(f"{obj.__qualname__} does not implement {missing}")


def _claim(
    new: dict[str, Any],
    taken: Mapping[str, Any],
    what: str,
    name: str,
    value: Any,
    registry: Registry,
) -> None:
    if name in new:
        raise PluginError(f"registers two {what}s called {name!r}")
    if name in taken:
        kind = what.split()[0]
        owner = registry.provider(kind, name) or "another plugin"
        raise PluginError(f"{what} {name!r} is already registered by plugin {owner!r}")
    new[name] = value
