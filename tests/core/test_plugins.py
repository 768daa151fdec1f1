"""Loading plugins: built-ins, plugins.toml's local modules, entry points; broken ones left out
by name while the others load."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from pathlib import Path
from typing import Any

import pytest

from millstream.core.errors import ConfigError, PluginError
from millstream.core.plugins import (
    DEFAULT_PLUGINS,
    PluginSettings,
    get_registry,
    load_registry,
    use_plugins_file,
)

GOOD = """
from typing import Any
from millstream.core import Event, Sink, Source, SourceBatch, hookimpl


class Ticks(Source):
    name = "ticks"

    async def read(self) -> SourceBatch | None:
        return None


class Drop(Sink):
    name = "drop"

    async def write(self, events: Any) -> None:
        pass


@hookimpl
def register_connectors():
    return [Ticks, Drop]
"""


@pytest.fixture(autouse=True)
def restore(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "path", list(sys.path))
    use_plugins_file(None)


def project(tmp_path: Path, toml: str, **modules: str) -> Path:
    """A folder with plugins.toml and the given plugin files (name → source)."""
    for name, source in modules.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source))
    settings = tmp_path / "plugins.toml"
    settings.write_text(textwrap.dedent(toml))
    return settings


def status(registry, name: str) -> tuple[str, str | None]:
    [info] = [p for p in registry.plugins if p.name == name]
    return info.status, info.error


def test_builtins_load_through_the_same_manager() -> None:
    registry = load_registry()
    assert [p.name for p in registry.plugins] == list(DEFAULT_PLUGINS)
    assert all(p.origin == "builtin" and p.version for p in registry.plugins)
    assert status(registry, "millstream.core.codecs") == ("ok", None)
    assert status(registry, "millstream.connectors") == ("ok", None)
    assert {"generator", "stdin", "memory"} <= set(registry.sources)
    assert {"stdout", "memory", "null"} <= set(registry.sinks)
    assert {"json", "text", "bytes"} <= set(registry.codecs)
    assert registry.provider("source", "generator") == "millstream.connectors"
    assert registry.manager is not None
    assert registry.manager.get_plugin("millstream.connectors") is not None


def test_lookups_suggest_the_closest_name() -> None:
    registry = load_registry()
    with pytest.raises(
        ConfigError,
        match=r"unknown source connector 'generatr'; did you mean "
        r"'generator'\? known: file, generator, ",
    ):
        registry.source("generatr")
    with pytest.raises(ConfigError, match="unknown codec 'yaml'; known: "):
        registry.codec("yaml")


def test_local_modules_load_from_files_and_import_paths(tmp_path: Path) -> None:
    package = f"pkg_{uuid.uuid4().hex[:8]}"
    settings = project(
        tmp_path,
        f"""
        modules = ["plugins/ticks.py", "{package}.codecs"]
        """,
        **{
            "plugins/ticks.py": GOOD,
            f"{package}/__init__.py": "",
            f"{package}/codecs.py": """
                from millstream.core import Codec, hookimpl

                class Upper(Codec):
                    name = "upper"
                    def decode(self, data): return data.decode().upper()
                    def encode(self, value): return str(value).upper().encode()

                @hookimpl
                def register_codecs():
                    return [Upper]
            """,
        },
    )
    registry = load_registry(settings)
    assert status(registry, "plugins/ticks.py") == ("ok", None)
    assert status(registry, f"{package}.codecs") == ("ok", None)
    assert registry.source("ticks").name == "ticks"
    assert registry.sink("drop").name == "drop"
    assert registry.codec("upper").decode(b"ab") == "AB"
    [info] = [p for p in registry.plugins if p.origin == "local" and "ticks" in p.name]
    assert info.provides == ("source:ticks", "sink:drop")


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("import no_such_module_at_all\n", "cannot import: ModuleNotFoundError: No module named"),
        (
            "from millstream.core import hookimpl\n"
            "@hookimpl\ndef register_connectors():\n    raise RuntimeError('no licence')\n",
            "register_connectors() raised RuntimeError: no licence",
        ),
        (
            "from millstream.core import hookimpl\n"
            "@hookimpl\ndef register_connectors():\n    return [dict]\n",
            "register_connectors() returned <class 'dict'>, which is not a Source or Sink class",
        ),
        (
            "from millstream.core import hookimpl\n"
            "@hookimpl\ndef register_steps():\n    return 5\n",
            "register_steps() returned 5, not a list of classes",
        ),
        (
            "from millstream.core import Source, hookimpl\n"
            "class Gen(Source):\n    name = 'generator'\n"
            "    async def read(self): return None\n"
            "@hookimpl\ndef register_connectors():\n    return [Gen]\n",
            "source connector 'generator' is already registered by plugin 'millstream.connectors'",
        ),
        (
            "from millstream.core import Source, hookimpl\n"
            "class Half(Source):\n    name = 'half'\n"
            "@hookimpl\ndef register_connectors():\n    return [Half]\n",
            "Half does not implement read",
        ),
        (
            "from millstream.core import Source, hookimpl\n"
            "class Nameless(Source):\n"
            "    async def read(self): return None\n"
            "@hookimpl\ndef register_connectors():\n    return [Nameless]\n",
            "Nameless.name must be a name",
        ),
        (
            "from millstream.core import hookimpl\n"
            "@hookimpl\ndef register_conectors():\n    return []\n",
            "register_conectors() is not a millstream hook; did you mean 'register_connectors'?",
        ),
    ],
    ids=[
        "import-error",
        "hook-raises",
        "not-a-connector",
        "not-a-list",
        "duplicate-name",
        "abstract",
        "no-name",
        "misspelt-hook",
    ],
)
def test_a_broken_plugin_is_left_out_by_name_and_the_others_load(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], source: str, error: str
) -> None:
    settings = project(
        tmp_path,
        'modules = ["broken.py", "good.py"]\n',
        **{"broken.py": source, "good.py": GOOD},
    )
    registry = load_registry(settings)
    state, message = status(registry, "broken.py")
    assert state == "error"
    assert message is not None and error in message
    assert status(registry, "good.py") == ("ok", None)
    assert "ticks" in registry.sources and "generator" in registry.sources
    assert registry.manager is not None and not registry.manager.has_plugin("broken.py")
    assert registry.sources["generator"].__module__ == "millstream.connectors.generator"
    err = capsys.readouterr().err
    assert f"millstream: warning: plugin 'broken.py' not loaded: {message}" in err


def test_a_plugin_that_breaks_halfway_leaves_nothing_behind(tmp_path: Path) -> None:
    source = GOOD + "\n@hookimpl\ndef register_steps():\n    return [object]\n"
    registry = load_registry(project(tmp_path, 'modules = ["half.py"]\n', **{"half.py": source}))
    assert status(registry, "half.py")[0] == "error"
    assert "ticks" not in registry.sources and "drop" not in registry.sinks


def test_the_warning_is_printed_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    project(tmp_path, 'modules = ["gone.py"]\n')
    monkeypatch.chdir(tmp_path)
    first = get_registry()
    assert get_registry() is first
    assert get_registry(Path("plugins.toml")) is first
    assert capsys.readouterr().err.count("plugin 'gone.py' not loaded: cannot import") == 1


def test_a_blocked_plugin_is_never_imported(tmp_path: Path) -> None:
    settings = project(
        tmp_path,
        'modules = ["boom.py", "good.py"]\nblock = ["boom.py"]\n',
        **{"boom.py": "raise SystemExit('imported!')\n", "good.py": GOOD},
    )
    registry = load_registry(settings)
    assert status(registry, "boom.py") == ("blocked", None)
    assert "ticks" in registry.sources


def test_built_ins_can_be_blocked(tmp_path: Path) -> None:
    registry = load_registry(project(tmp_path, 'block = ["millstream.connectors"]\n'))
    assert status(registry, "millstream.connectors") == ("blocked", None)
    assert not registry.sources and "json" in registry.codecs


def test_use_plugins_file_names_the_default_file(tmp_path: Path) -> None:
    settings = project(tmp_path, 'modules = ["good.py"]\n', **{"good.py": GOOD})
    use_plugins_file(settings)
    assert "ticks" in get_registry().sources
    use_plugins_file(None)
    assert "ticks" not in get_registry().sources


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "modules = []\nentry_point = false\n",
            "plugins.toml:2: entry_point: unknown setting 'entry_point'; did you mean "
            "'entry_points'? valid: block, entry_points, modules",
        ),
        ("block = 'x'\n", "plugins.toml:1: block: must be a list of strings"),
        ("entry_points = 1\n", "plugins.toml:1: entry_points: must be true or false"),
        ("modules = ['a' 'b']\n", "plugins.toml:1:16: not valid TOML: Unclosed array"),
    ],
)
def test_a_bad_plugins_file_is_an_error_with_its_line(
    tmp_path: Path, text: str, message: str
) -> None:
    path = tmp_path / "plugins.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        PluginSettings.read(path)
    assert str(raised.value).startswith(str(tmp_path) + "/" + message)


def test_a_missing_plugins_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such plugins file"):
        get_registry(tmp_path / "nope.toml")


ENTRY_POINT_MODULE = GOOD.replace('"ticks"', '"ep-ticks"').replace('"drop"', '"ep-drop"')


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A distribution ``fake-dist`` 2.5 with a ``millstream`` entry point, on sys.path."""
    module = f"fake_plugin_{uuid.uuid4().hex[:8]}"
    site = tmp_path / "site"
    site.mkdir()
    (site / f"{module}.py").write_text(ENTRY_POINT_MODULE)
    info = site / "fake_dist-2.5.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-dist\nVersion: 2.5\n")
    (info / "entry_points.txt").write_text(f"[millstream]\nfake = {module}\n")
    monkeypatch.syspath_prepend(str(site))
    return module


def test_entry_points_stay_unloaded_under_pytest_unless_asked(installed: str) -> None:
    assert "fake" not in [p.name for p in load_registry().plugins]
    registry = load_registry(entry_points=True)
    [info] = [p for p in registry.plugins if p.name == "fake"]
    assert (info.origin, info.version, info.status) == ("entry-point", "2.5", "ok")
    assert "ep-ticks" in registry.sources


def test_entry_points_can_be_turned_off_or_blocked_by_distribution(
    installed: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("MILLSTREAM_ENTRY_POINTS")
    assert "ep-ticks" in load_registry().sources
    off = tmp_path / "off.toml"
    off.write_text("entry_points = false\n")
    assert "fake" not in [p.name for p in load_registry(off).plugins]
    blocked = tmp_path / "blocked.toml"
    blocked.write_text('block = ["fake-dist"]\n')
    assert status(load_registry(blocked), "fake") == ("blocked", None)


def test_a_plugin_name_given_twice_is_loaded_once(tmp_path: Path) -> None:
    settings = project(tmp_path, 'modules = ["good.py", "good.py"]\n', **{"good.py": GOOD})
    registry = load_registry(settings)
    first, second = [p for p in registry.plugins if p.name == "good.py"]
    assert first.status == "ok"
    assert second.error == "a plugin called 'good.py' is already loaded (local)"
    assert "ticks" in registry.sources


FULL = (
    GOOD
    + """

from millstream.core.codecs import Codec
from millstream.core.step import Step


class Upper(Step):
    name = "upper"

    def process(self, events, rejected):
        return events


class Rot(Codec):
    name = "rot"

    def decode(self, data):
        return data

    def encode(self, value):
        return value


@hookimpl
def register_steps():
    return [Upper]


@hookimpl
def register_codecs():
    return [Rot]


@hookimpl
def register_commands(commands, parents):
    raise RuntimeError("no commands today")
"""
)


def test_a_plugin_dropped_after_loading_takes_everything_it_provided_with_it(
    tmp_path: Path,
) -> None:
    from millstream.core.cli import build_parser

    settings = project(tmp_path, 'modules = ["full.py"]\n', **{"full.py": FULL})
    registry = get_registry(settings)
    assert {"ticks", "upper", "rot"} <= set(registry.sources) | set(registry.steps) | set(
        registry.codecs
    )
    build_parser(settings)  # its register_commands raises: it is left out
    state, error = status(registry, "full.py")
    assert (
        state == "error" and error == "register_commands() raised RuntimeError: no commands today"
    )
    assert "ticks" not in registry.sources and "drop" not in registry.sinks
    assert "upper" not in registry.steps and "rot" not in registry.codecs
    assert registry.provider("source", "ticks") is None
    assert "generator" in registry.sources and "filter" in registry.steps  # the others stay


LIFECYCLE = """
import asyncio
from millstream.core import hookimpl

CALLS = []


@hookimpl
def startup(pipelines):
    CALLS.append(("{name}", "startup", tuple(pipelines)))
    if "{fail}" == "startup":
        raise RuntimeError("no database")
    return asyncio.sleep(0)


@hookimpl
def shutdown(pipelines):
    async def later():
        await asyncio.sleep(0)
        CALLS.append(("{name}", "shutdown", tuple(pipelines)))
        if "{fail}" == "shutdown":
            raise OSError("disk gone")

    return later()
"""


def lifecycle(tmp_path: Path, **fail: str) -> tuple[Any, list[Any]]:
    modules = {f"{name}.py": LIFECYCLE.format(name=name, fail=fail.get(name, "")) for name in "ab"}
    registry = load_registry(project(tmp_path, 'modules = ["a.py", "b.py"]\n', **modules))
    calls: list[Any] = []
    for name in "ab":
        plugin = registry.manager.get_plugin(f"{name}.py")
        plugin.CALLS = calls
    return registry, calls


async def test_startup_and_shutdown_hooks_are_called_and_awaited(tmp_path: Path) -> None:
    registry, calls = lifecycle(tmp_path)
    await registry.call_startup(["shop"])
    await registry.call_shutdown(["shop"])
    assert sorted(calls) == [
        ("a", "shutdown", ("shop",)),
        ("a", "startup", ("shop",)),
        ("b", "shutdown", ("shop",)),
        ("b", "startup", ("shop",)),
    ]
    assert [c[0] for c in calls if c[1] == "startup"] == [
        c[0] for c in reversed(calls) if c[1] == "shutdown"
    ]  # shut down in the reverse order


async def test_a_failing_startup_names_its_plugin(tmp_path: Path) -> None:
    registry, _ = lifecycle(tmp_path, a="startup")
    with pytest.raises(PluginError) as raised:
        await registry.call_startup(["shop"])
    assert str(raised.value) == "plugin 'a.py' failed in startup: RuntimeError: no database"


async def test_a_failing_shutdown_names_its_plugin_and_the_others_still_run(
    tmp_path: Path,
) -> None:
    registry, calls = lifecycle(tmp_path, a="shutdown", b="shutdown")
    with pytest.raises(PluginError) as raised:
        await registry.call_shutdown(["shop"])
    assert sorted(calls) == [("a", "shutdown", ("shop",)), ("b", "shutdown", ("shop",))]
    message = str(raised.value)
    assert "plugin 'a.py' failed in shutdown: OSError: disk gone" in message
    assert "plugin 'b.py' failed in shutdown: OSError: disk gone" in message


async def test_a_lifecycle_hook_may_take_no_arguments(tmp_path: Path) -> None:
    source = "from millstream.core import hookimpl\nSEEN = []\n\n@hookimpl\ndef startup():\n"
    source += "    SEEN.append('up')\n"
    registry = load_registry(project(tmp_path, 'modules = ["bare.py"]\n', **{"bare.py": source}))
    await registry.call_startup(["shop"])
    assert registry.manager.get_plugin("bare.py").SEEN == ["up"]


@pytest.mark.parametrize("named", [False, True])
def test_an_invalid_plugins_file_exits_2_like_other_configuration_errors(
    tmp_path: Path, named: bool
) -> None:
    (tmp_path / "plugins.toml").write_text("modules = ['a' 'b']\n")
    flags = ["--plugins", "plugins.toml"] if named else []
    done = subprocess.run(
        [Path(sys.executable).parent / "millstream", *flags, "topics", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stderr == "millstream: error: plugins.toml:1:16: not valid TOML: Unclosed array\n"
