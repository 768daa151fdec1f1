"""The SQL of docs/query.md's examples is valid and allowed (their output comes from a real run
of the quickstart pipeline; this guards against the text drifting from the engine)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import duckdb
import pytest

from millstream.core.query.sandbox import check_statement

DOCS = Path(__file__).parents[3] / "docs" / "query.md"
EXAMPLE = re.compile(r"^(?:\$ )?millstream query (.*?)(?: \| .*)?$", re.MULTILINE)


def examples() -> list[str]:
    found = []
    text = DOCS.read_text()
    worked = text[text.index("## Worked examples") : text.index("## Errors")]
    for line in EXAMPLE.findall(worked):
        words = shlex.split(line)
        sql = [w for w in words if " " in w or w.upper().startswith(("SELECT", "DESCRIBE"))]
        found.extend(sql[:1])
    return found


def test_the_page_has_a_dozen_examples() -> None:
    assert len(examples()) >= 12


@pytest.mark.parametrize("sql", examples())
def test_each_example_is_one_allowed_statement_that_parses(sql: str) -> None:
    explain = check_statement(sql)
    body = re.sub(r"^EXPLAIN\s+", "", sql) if explain else sql
    tree = duckdb.execute("SELECT json_serialize_sql($1)", [body]).fetchall()[0][0]
    assert '"error":false' in tree, tree


def test_the_python_example_runs(store_dir: Path, capsys) -> None:
    text = DOCS.read_text()
    code = text[text.index("```python\n") + len("```python\n") :]
    code = code[: code.index("```")]
    code = code.replace("file:./.millstream", f"file:{store_dir}")
    exec(compile(code, "docs/query.md", "exec"), {})
    columns, rows, stats = capsys.readouterr().out.splitlines()
    assert columns == """['key', 'avg("value"."temp")']"""
    assert rows.startswith("[('dev-")
    assert stats.startswith("[ScanStats(topic='readings'")
