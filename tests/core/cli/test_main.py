"""The ``millstream`` command as a whole: store options, exit statuses, error lines."""

from __future__ import annotations

import pytest

from millstream.core.cli import main


def test_store_options_work_before_and_after_the_command(cli, tmp_path, capsys) -> None:
    other = tmp_path / "other"
    assert main(["topics", "create", "a", "--data-dir", str(other)]) == 0
    assert main(["--store", f"file:{other}", "topics", "list", "--format", "json"]) == 0
    capsys.readouterr()
    assert main(["topics", "list", "--store", f"file:{other}", "--format", "json"]) == 0
    assert '"a"' in capsys.readouterr().out


def test_environment_names_the_store(cli, tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.setenv("MILLSTREAM_DATA_DIR", str(tmp_path / "env-store"))
    assert main(["topics", "create", "from-env"]) == 0
    monkeypatch.delenv("MILLSTREAM_DATA_DIR")
    monkeypatch.setenv("MILLSTREAM_STORE", f"file:{tmp_path / 'env-store'}")
    capsys.readouterr()
    assert main(["topics", "list"]) == 0
    assert "from-env" in capsys.readouterr().out


def test_default_store_is_dot_millstream(cli, tmp_path) -> None:
    assert main(["topics", "create", "here"]) == 0
    assert (tmp_path / ".millstream").is_dir()


def test_bootstrap_server_names_the_broker_it_cannot_reach(cli, capsys) -> None:
    assert main(["topics", "list", "--bootstrap-server", "127.0.0.1:1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("millstream: error: ") and "millstream://127.0.0.1:1" in err
    assert "millstream broker" in err and err.count("\n") == 1


def test_unknown_scheme_is_a_runtime_error(cli) -> None:
    result = cli("topics", "list", "--store", "ftp://x")
    assert result.status == 1 and "ftp://x" in result.err


def test_debug_shows_the_traceback(cli) -> None:
    cli.ok("topics", "create", "x")
    plain = cli("topics", "describe", "nope")
    assert "Traceback" not in plain.err
    debug = cli("topics", "describe", "nope", "--debug")
    assert debug.status == 1
    assert "Traceback" in debug.err and debug.err.rstrip().splitlines()[-1].startswith(
        "millstream: error: "
    )


def test_usage_errors_exit_2_and_help_exits_0(cli, capsys) -> None:
    assert main([]) == 2
    assert main(["nonsense"]) == 2
    assert main(["consume"]) == 2
    capsys.readouterr()
    assert main(["--help"]) == 0
    assert "topics" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert "millstream" in capsys.readouterr().out


NOT_UTF8 = b"\xff".decode("utf-8", "surrogateescape")  # how Python passes a non-UTF-8 argv byte

BAD_INPUT = [
    # (arguments, exit status, what the one line must name)
    (("topics", "create", "t2", "--config", "retention.ms=abc"), 1, "retention.ms"),
    (("topics", "alter", "t", "--config", "codec=text", "--delete-config", "codec"), 2, "codec"),
    (("produce", "t", "--header", f"h{NOT_UTF8}=v"), 2, "header name 'h\\xff'"),
    (("produce", "t", "--header", "=v"), 2, "key=value"),
    (("produce", "t", "--property", "parse.key=yes"), 2, "parse.key='yes'"),
    (("consume", "t", "--property", "print.key=yes"), 2, "print.key='yes'"),
    (("consume", "t", "--property", "print.keys=true"), 2, "print.key"),
    (("consume", "t", "--group", ""), 2, "group name"),
    (("consume", "t", "--group", f"g{NOT_UTF8}"), 2, "group name 'g\\xff'"),
    (("consume", "t", "--partition", "0", "--offset", "next"), 2, "'earliest' or 'latest'"),
    (("consume", "t", "--timeout-ms", "1e3"), 2, "--timeout-ms"),
    (("groups", "describe", ""), 2, "group name"),
    (
        ("groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "yesterday"),
        2,
        "ISO 8601",
    ),
    (
        ("groups", "reset-offsets", "g", "--topic", "t", "--to-datetime", "2024-05-01T25:00"),
        2,
        "hour must be in 0..23",
    ),
]


@pytest.mark.parametrize(("args", "status", "named"), BAD_INPUT, ids=lambda v: repr(v)[:40])
def test_bad_input_is_one_clear_line(cli, args: tuple[str, ...], status: int, named: str) -> None:
    cli.ok("topics", "create", "t")
    result = cli(*args, stdin="x\n")
    assert result.status == status, result.err
    assert result.out == ""
    # argparse shows the usage before its one error line; everything else is the line alone
    last = result.err.rstrip("\n").splitlines()[-1]
    assert last.startswith("millstream"), result.err
    assert ": error: " in last and named in last, result.err
    if status == 1:
        assert result.err.count("\n") == 1, result.err
    for python_speak in ("Traceback", "unexpected", "invalid literal", "codec can't", "invalid "):
        assert python_speak not in result.err, result.err


COMMANDS_ON_A_STORE = [
    ("produce", "t"),
    ("consume", "t", "--group", "g", "--timeout-ms", "100"),
    ("consume", "t", "--timeout-ms", "100"),
    ("groups", "reset-offsets", "g", "--topic", "t", "--to-earliest", "--execute"),
    ("groups", "reset-offsets", "g", "--topic", "t", "--to-earliest"),
    ("topics", "delete", "t"),
    ("topics", "alter", "t", "--partitions", "2"),
    ("topics", "alter", "t", "--config", "codec=text"),
    ("topics", "describe", "t"),
    ("topics", "list"),
    ("groups", "list"),
    ("groups", "describe", "g"),
]


@pytest.mark.parametrize("exists", [False, True], ids=["missing", "empty"])
@pytest.mark.parametrize("args", COMMANDS_ON_A_STORE, ids=" ".join)
def test_only_topics_create_makes_a_store(
    cli, tmp_path, args: tuple[str, ...], exists: bool
) -> None:
    typo = tmp_path / "stroe"  # a mistyped --data-dir
    if exists:
        typo.mkdir()
    cli.data_dir = typo
    result = cli(*args, stdin="x\n")
    assert result.status == 1 and result.out == ""
    assert result.err == (
        f"millstream: error: no millstream store at {str(typo)!r}: the directory does not "
        "exist or holds no millstream.json; create one with `millstream topics create`\n"
    )
    if exists:
        assert list(typo.iterdir()) == []  # no .lock, no millstream.json, no offsets topic
    else:
        assert not typo.exists()
    cli.ok("topics", "create", "t")
    assert (typo / "millstream.json").is_file()
