"""Fixtures for the command-line tests: ``millstream`` run in-process on a temporary store."""

from __future__ import annotations

import io
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from millstream.core.cli import main


@dataclass
class Result:
    """What a user sees: the exit status, stdout and stderr."""

    status: int
    out: str
    err: str

    @property
    def json(self) -> Any:
        return json.loads(self.out)

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


class CLI:
    """Runs ``millstream ARGS`` in-process against one data directory."""

    def __init__(self, data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
        self.data_dir = data_dir
        self._capsys = capsys
        self._monkeypatch = monkeypatch

    def __call__(self, *args: str, stdin: bytes | str | None = None) -> Result:
        if stdin is not None:
            data = stdin.encode() if isinstance(stdin, str) else stdin
            self._monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
        self._capsys.readouterr()
        status = main(["--data-dir", str(self.data_dir), *args])
        captured = self._capsys.readouterr()
        return Result(status, captured.out, captured.err)

    def ok(self, *args: str, stdin: bytes | str | None = None) -> Result:
        """Run and insist on success, showing stderr when it fails."""
        result = self(*args, stdin=stdin)
        assert result.status == 0, result.err
        return result

    def records(self, topic: str, *extra: str) -> list[dict[str, Any]]:
        """Every record of ``topic``, as ``consume --format json`` prints them."""
        result = self.ok(
            "consume", topic, "--from-beginning", "--timeout-ms", "300", "--format", "json", *extra
        )
        return [json.loads(line) for line in result.lines]


@pytest.fixture
def cli(tmp_path: Path, capsys, monkeypatch) -> CLI:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MILLSTREAM_STORE", raising=False)
    monkeypatch.delenv("MILLSTREAM_DATA_DIR", raising=False)
    return CLI(tmp_path / "store", capsys, monkeypatch)
