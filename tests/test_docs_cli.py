"""Every command has help with an example, and docs/cli.md documents every command and flag."""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from millstream.core.cli import build_parser

DOCS = Path(__file__).parent.parent / "docs" / "cli.md"
STORE_OPTIONS = {"--store", "--data-dir", "--bootstrap-server", "--debug"}


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every command that runs something, as ("topics create", parser)."""
    subparsers = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subparsers:
        yield " ".join(path), parser
        return
    for name, child in subparsers[0].choices.items():
        yield from commands(child, (*path, name))


def long_options(parser: argparse.ArgumentParser) -> set[str]:
    return {
        option
        for action in parser._actions
        for option in action.option_strings
        if option.startswith("--") and option != "--help"
    }


def sections() -> dict[str, str]:
    """docs/cli.md split at its ``## millstream ...`` headings."""
    parts = re.split(r"^## ", DOCS.read_text(), flags=re.MULTILINE)
    return {part.splitlines()[0].strip(): part for part in parts[1:]}


ALL = dict(commands(build_parser()))


def test_the_commands_are_the_ones_expected() -> None:
    assert set(ALL) == {
        "topics create",
        "topics list",
        "topics describe",
        "topics alter",
        "topics delete",
        "produce",
        "consume",
        "groups list",
        "groups describe",
        "groups delete",
        "groups reset-offsets",
        "plugins list",
        "connectors list",
        "connectors describe",
        "run",
        "validate",
        "schema",
        "graph",
        "test",
        "offsets",
        "replay",
        "query",
        "broker",
    }


@pytest.mark.parametrize("name", sorted(ALL))
def test_every_command_has_help_and_an_example(name: str) -> None:
    parser = ALL[name]
    assert parser.description, name
    assert re.search(rf"^  millstream {name}\b", parser.epilog or "", re.MULTILINE), name
    for action in parser._actions:
        assert action.help, (name, action.dest)
    assert long_options(parser) >= STORE_OPTIONS, name


@pytest.mark.parametrize("name", sorted(ALL))
def test_docs_document_every_command_and_flag(name: str) -> None:
    section = sections().get(f"millstream {name}")
    assert section is not None, f"docs/cli.md has no '## millstream {name}' section"
    assert f"millstream {name}" in section.split("\n", 1)[1], f"{name}: no example in docs"
    for option in long_options(ALL[name]) - STORE_OPTIONS:
        assert f"`{option}" in section, f"docs/cli.md, millstream {name}: {option} undocumented"


def test_docs_document_the_store_options_and_no_stale_commands() -> None:
    text = DOCS.read_text()
    for option in STORE_OPTIONS | {"MILLSTREAM_STORE", "MILLSTREAM_DATA_DIR", "--version"}:
        assert f"`{option}" in text, option
    documented = {heading.removeprefix("millstream ") for heading in sections()}
    stale = {h for h in documented if h not in ALL and not h[0].isupper()}
    assert not stale, f"docs/cli.md documents commands that do not exist: {stale}"
