"""``millstream plugins list``, ``connectors list``, ``connectors describe`` and ``--plugins``."""

from __future__ import annotations

import textwrap
from pathlib import Path

from millstream.core.plugins import use_plugins_file

SECRETIVE = """
from pydantic import Field, SecretStr
from millstream.core import ConnectorConfig, Sink, hookimpl


class VaultConfig(ConnectorConfig):
    url: str = Field(description="where the vault is")
    token: SecretStr = Field(SecretStr("s3cr3t-default"), description="the access token")
    tags: list[str] = Field(default_factory=list, description="labels to add")


class VaultSink(Sink):
    '''Stores events in the vault.'''

    name = "vault"
    Config = VaultConfig
    idempotent = True

    async def write(self, events):
        pass


@hookimpl
def register_connectors():
    return [VaultSink]
"""

COMMANDS = """
from millstream.core import hookimpl


async def hello(args):
    print(f"hello {args.who}")
    return 0


@hookimpl
def register_commands(commands, parents):
    parser = commands.add_parser("hello", parents=parents, help="say hello")
    parser.add_argument("who")
    parser.set_defaults(run=hello)
"""

HALF_BROKEN_COMMANDS = """
from millstream.core import hookimpl


@hookimpl
def register_commands(commands, parents):
    commands.add_parser("half", parents=parents, help="never finished")
    raise RuntimeError("cannot add commands today")
"""


def write_plugins(folder: Path, toml: str, **files: str) -> Path:
    for name, source in files.items():
        (folder / name).write_text(textwrap.dedent(source))
    path = folder / "plugins.toml"
    path.write_text(textwrap.dedent(toml))
    return path


def test_plugins_list_shows_each_plugin_with_its_origin_version_and_status(cli, tmp_path) -> None:
    write_plugins(
        tmp_path,
        'modules = ["vault.py", "broken.py"]\n',
        **{"vault.py": SECRETIVE, "broken.py": "import paho_mqtt_not_here\n"},
    )
    result = cli("plugins", "list")
    assert result.status == 0, result.err
    assert result.lines[0].split() == ["PLUGIN", "ORIGIN", "VERSION", "STATUS"]
    rows = {line.split()[0]: line.split(None, 3)[1:] for line in result.lines[1:]}
    assert rows["millstream.connectors"][0] == "builtin"
    assert rows["millstream.connectors"][2] == "ok"
    assert rows["vault.py"] == ["local", "-", "ok"]
    assert rows["broken.py"][:2] == ["local", "-"]
    assert rows["broken.py"][2].startswith("error: cannot import: ModuleNotFoundError")
    assert "warning: plugin 'broken.py' not loaded" in result.err

    listed = {p["name"]: p for p in cli.ok("plugins", "list", "--format", "json").json}
    assert listed["vault.py"] == {
        "name": "vault.py",
        "origin": "local",
        "version": None,
        "status": "ok",
        "error": None,
        "provides": ["sink:vault"],
    }
    assert listed["broken.py"]["status"] == "error"
    assert "paho_mqtt_not_here" in listed["broken.py"]["error"]


def test_connectors_list_shows_sources_sinks_and_their_promises(cli) -> None:
    result = cli.ok("connectors", "list")
    assert result.lines[0].split() == [
        "CONNECTOR",
        "SOURCE",
        "SINK",
        "RESUMABLE",
        "IDEMPOTENT",
        "PLUGIN",
    ]
    rows = {line.split()[0]: line.split()[1:] for line in result.lines[1:]}
    assert rows["generator"] == ["yes", "no", "yes", "-", "millstream.connectors"]
    assert rows["memory"] == ["yes", "yes", "yes", "no", "millstream.connectors"]
    assert rows["stdin"] == ["yes", "no", "no", "-", "millstream.connectors"]
    assert rows["stdout"] == ["no", "yes", "-", "no", "millstream.connectors"]
    [stdout] = [
        c for c in cli.ok("connectors", "list", "--format", "json").json if c["name"] == "stdout"
    ]
    assert stdout == {
        "name": "stdout",
        "source": False,
        "sink": True,
        "resumable": None,
        "idempotent": False,
        "source_plugin": None,
        "sink_plugin": "millstream.connectors",
    }


def test_connectors_describe_prints_the_settings_table(cli) -> None:
    result = cli.ok("connectors", "describe", "generator")
    lines = result.lines
    assert lines[0].startswith("generator source (millstream.connectors): Readings of simulated")
    assert lines[1] == "resumable: yes"
    assert lines[3].split() == ["SETTING", "TYPE", "DEFAULT", "REQUIRED", "SECRET", "DESCRIPTION"]
    rows = {line.split()[0]: line for line in lines[4:]}
    assert set(rows) == {"devices", "rate", "count", "seed", "drift", "faulty", "batch_size"}
    assert rows["count"].split(None, 6) == [
        "count",
        "integer",
        "|",
        "null",
        "null",
        "no",
        "no      how many events to make in all, then end; null: never end",
    ]


def test_connectors_describe_covers_source_and_sink(cli) -> None:
    result = cli.ok("connectors", "describe", "memory")
    assert "memory source (millstream.connectors)" in result.out
    assert "memory sink (millstream.connectors)" in result.out
    assert "idempotent: no" in result.out
    described = cli.ok("connectors", "describe", "memory", "--format", "json").json
    assert described["source"]["resumable"] is True
    assert described["sink"]["idempotent"] is False
    assert described["source"]["settings"][0] == {
        "name": "channel",
        "type": "string",
        "default": None,
        "required": True,
        "secret": False,
        "description": "the name of the channel to read",
    }
    assert described["sink"]["class"] == "millstream.connectors.memory.MemorySink"


def test_a_secret_default_is_never_printed(cli, tmp_path) -> None:
    write_plugins(tmp_path, 'modules = ["vault.py"]\n', **{"vault.py": SECRETIVE})
    table = cli.ok("connectors", "describe", "vault")
    described = cli.ok("connectors", "describe", "vault", "--format", "json").json
    assert "s3cr3t" not in table.out + str(described)
    assert described["source"] is None
    token = described["sink"]["settings"][1]
    assert (token["name"], token["secret"], token["default"]) == ("token", True, "********")
    assert described["sink"]["settings"][2]["type"] == "list of string"
    rows = {line.split()[0]: line.split() for line in table.lines[4:]}
    assert rows["url"][1:5] == ["string", "-", "yes", "no"]


def test_an_unknown_connector_suggests_the_closest(cli) -> None:
    result = cli("connectors", "describe", "generater")
    assert result.status == 1
    assert result.err.startswith(
        "millstream: error: unknown connector 'generater'; did you mean 'generator'? known: "
    )


def test_the_plugins_option_names_another_file(cli, tmp_path) -> None:
    folder = tmp_path / "ops"
    folder.mkdir()
    other = write_plugins(folder, 'modules = ["vault.py"]\n', **{"vault.py": SECRETIVE})
    try:
        names = [c["name"] for c in cli.ok("connectors", "list", "--format", "json").json]
        assert "vault" not in names
        result = cli.ok("--plugins", str(other), "connectors", "list", "--format", "json")
        assert "vault" in [c["name"] for c in result.json]
        relative = cli.ok("--plugins=ops/plugins.toml", "plugins", "list")
        assert "vault.py" in relative.out
    finally:
        use_plugins_file(None)


def test_a_missing_plugins_file_is_a_usage_error(cli) -> None:
    result = cli("--plugins", "nope.toml", "plugins", "list")
    assert result.status == 2
    assert result.err == "millstream: error: --plugins: no such file: 'nope.toml'\n"


def test_a_bad_plugins_file_stops_every_command_with_its_line(cli, tmp_path) -> None:
    (tmp_path / "plugins.toml").write_text('modules = ["a.py"]\nblocked = ["x"]\n')
    result = cli("topics", "list")
    assert result.status == 2
    assert result.err == (
        "millstream: error: plugins.toml:2: blocked: unknown setting 'blocked'; did you mean "
        "'block'? valid: block, entry_points, modules\n"
    )


def test_plugins_add_commands_and_a_failing_one_is_left_out(cli, tmp_path) -> None:
    write_plugins(
        tmp_path,
        'modules = ["hello.py", "half.py"]\n',
        **{"hello.py": COMMANDS, "half.py": HALF_BROKEN_COMMANDS},
    )
    result = cli("hello", "world")
    assert result.status == 0, result.err
    assert result.out == "hello world\n"
    assert "plugin 'half.py' not loaded: register_commands() raised RuntimeError: " in result.err
    assert cli("half").status == 2  # not a command: it was left out whole
    listed = {p["name"]: p for p in cli.ok("plugins", "list", "--format", "json").json}
    assert listed["half.py"]["error"] == (
        "register_commands() raised RuntimeError: cannot add commands today"
    )
    assert listed["hello.py"]["status"] == "ok"
