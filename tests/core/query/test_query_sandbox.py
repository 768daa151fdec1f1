"""Queries are read-only: each kind of statement that writes, attaches, installs or configures is
refused, and so is reading a file outside the allowed folders."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from millstream.core.errors import QueryError
from millstream.core.log import LogStore
from millstream.core.query import QueryEngine

REFUSED = {
    "INSERT INTO readings VALUES (1)": "INSERT",
    "UPDATE readings SET key = 'x'": "UPDATE",
    "DELETE FROM readings": "DELETE",
    "CREATE TABLE t AS SELECT * FROM readings": "CREATE",
    "CREATE VIEW v AS SELECT 1": "CREATE",
    "DROP VIEW readings": "DROP",
    "COPY (SELECT * FROM readings) TO 'out.csv'": "COPY",
    "COPY readings FROM 'in.csv'": "COPY",
    "EXPORT DATABASE 'dump'": "EXPORT",
    "ATTACH 'other.db'": "ATTACH",
    "DETACH other": "DETACH",
    "INSTALL httpfs": "INSTALL",
    "LOAD httpfs": "LOAD",
    "SET enable_external_access = true": "SET",
    "RESET allowed_directories": "RESET",
    "PRAGMA enable_profiling": "PRAGMA",
    "CALL pragma_version()": "CALL",
    "CHECKPOINT": "CHECKPOINT",
    "USE memory": "USE",
}


@pytest.mark.parametrize("sql", sorted(REFUSED))
def test_statements_that_change_anything_are_refused(engine, sql: str) -> None:
    with pytest.raises(QueryError) as caught:
        engine.run(sql)
    assert str(caught.value) == (
        f"queries are read-only: {REFUSED[sql]} statements are not allowed; "
        "ask with SELECT (or EXPLAIN SELECT)"
    )


def test_more_than_one_statement_is_refused(engine) -> None:
    with pytest.raises(QueryError, match="one statement at a time"):
        engine.run("SELECT 1; SELECT 2")


@pytest.mark.parametrize(
    "sql",
    [
        "EXPLAIN ANALYZE COPY (SELECT 1) TO 'x.csv'",
        "EXPLAIN (FORMAT json) INSERT INTO t VALUES (1)",
    ],
)
def test_explain_of_anything_but_a_select_is_refused(engine, sql: str) -> None:
    with pytest.raises(QueryError, match="EXPLAIN works on SELECT statements only"):
        engine.run(sql)


@pytest.mark.parametrize(
    "call",
    [
        "read_csv('{secret}')",
        "read_text('/etc/passwd')",
        "read_blob('{secret}')",
        "read_json('{secret}')",
        "read_parquet('{secret}')",
        "glob('/etc/*')",
        "'{secret}'",
        "read_csv('{allowed}/../secret.csv')",
    ],
)
def test_files_outside_the_allowed_folders_cannot_be_read(tmp_path: Path, call: str) -> None:
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "ok.csv").write_text("a\n1\n")
    secret = tmp_path / "secret.csv"
    secret.write_text("password\nhunter2\n")
    store = LogStore.open(tmp_path / "store", create=True)
    try:
        engine = QueryEngine(store, allow=[allowed])
        assert engine.run(f"SELECT * FROM read_csv('{allowed}/ok.csv')").rows == [(1,)]
        sql = "SELECT * FROM " + call.format(secret=secret, allowed=allowed)
        with pytest.raises(QueryError) as caught:
            engine.run(sql)
        assert "Permission Error" in str(caught.value)
        assert "disabled by configuration" in str(caught.value)
    finally:
        asyncio.run(store.close())


def test_without_allowed_folders_no_file_can_be_read(tmp_path: Path) -> None:
    (tmp_path / "data.csv").write_text("a\n1\n")
    store = LogStore.open(tmp_path / "store", create=True)
    try:
        with pytest.raises(QueryError, match="Permission Error"):
            QueryEngine(store).run(f"SELECT * FROM '{tmp_path / 'data.csv'}'")
    finally:
        asyncio.run(store.close())


def test_settings_cannot_be_changed_from_inside_a_select(engine) -> None:
    # set_config-like functions do not exist; the configuration is locked besides
    with pytest.raises(QueryError):
        engine.run("SELECT set_config('enable_external_access', 'true')")
    assert engine.run("SELECT current_setting('enable_external_access')").rows == [(False,)]
    assert engine.run("SELECT current_setting('lock_configuration')").rows == [(True,)]


def test_extensions_are_neither_installed_nor_loaded_on_demand(engine) -> None:
    with pytest.raises(QueryError):
        engine.run("SELECT * FROM read_xlsx('book.xlsx')")
    assert engine.run("SELECT current_setting('autoinstall_known_extensions')").rows == [(False,)]
    assert engine.run("SELECT current_setting('autoload_known_extensions')").rows == [(False,)]


def test_an_allowed_folder_that_does_not_exist_is_named(tmp_path: Path) -> None:
    store = LogStore.open(tmp_path / "store", create=True)
    try:
        with pytest.raises(QueryError, match="--allow '.*nowhere': no such folder"):
            QueryEngine(store, allow=[tmp_path / "nowhere"]).run("SELECT 1")
    finally:
        asyncio.run(store.close())
