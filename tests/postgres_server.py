"""A real PostgreSQL server for tests (a pytest plugin module) and for benchmarks.

:class:`PostgresServer` runs ``initdb`` and ``postgres`` from the installed binaries
(``pg_config --bindir``, else ``/usr/lib/postgresql/*/bin``) with a data directory in a fresh
temporary folder, on a free TCP port of 127.0.0.1, its unix socket in that folder, and fsync
off (tests need speed, not durability against power loss). The server refuses to run as root,
so when the tests run as root it runs as the ``postgres`` user (the process's user and group
set at its start, as ``runuser -u postgres --`` would) and the folder is given to that user.

Fixtures:

- ``postgres_server`` (session scope, so one per xdist worker): the shared server;
- ``postgres`` (function scope): a :class:`PostgresDatabase`, a database of its own made
  with ``CREATE DATABASE`` on the shared server for each test;
- ``postgres_own_server`` (function scope): a server of its own, for a test that stops or
  restarts it.

Each skips the test when PostgreSQL or psycopg is not installed.
"""

from __future__ import annotations

import contextlib
import glob
import itertools
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = ["PostgresDatabase", "PostgresServer", "find_bindir"]

_USER = "postgres"


def find_bindir() -> Path | None:
    """The folder holding ``initdb`` and ``postgres``, or None when PostgreSQL is missing."""
    candidates: list[str] = []
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        done = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, timeout=10)
        if done.returncode == 0:
            candidates.append(done.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "postgres").exists():
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresServer:
    """One PostgreSQL server in a temporary folder; ``start``, ``stop``, ``restart``, ``close``.

    ``dsn(database)`` is a connection string for user ``postgres`` (trust authentication, so
    any password is taken). The port stays the same across restarts.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise RuntimeError("PostgreSQL is not installed (no initdb/postgres found)")
        self.bindir = found
        self.as_root = os.geteuid() == 0
        self.root = Path(tempfile.mkdtemp(prefix="millstream-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._log = self.root / "server.log"
        self._databases = itertools.count()
        if self.as_root:
            shutil.chown(self.root, _USER, _USER)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            _USER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        )

    def _as_user(self) -> dict[str, Any]:
        """Popen arguments that run a process as the postgres user when we are root (the
        process is then postgres itself, not a wrapper, so signals reach it)."""
        return {"user": _USER, "group": _USER, "extra_groups": []} if self.as_root else {}

    def _run(self, *argv: str) -> None:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=120, cwd=self.root, **self._as_user()
        )
        if done.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed: {done.stderr.strip() or done.stdout.strip()}")

    def dsn(self, database: str = "postgres", password: str | None = None) -> str:
        """A connection string for ``database`` over TCP."""
        secret = f":{password}" if password is not None else ""
        return f"postgresql://{_USER}{secret}@127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> None:
        """Start the server and return once it takes connections."""
        if self.process is not None and self.process.poll() is None:
            return
        options = {
            "listen_addresses": "127.0.0.1",
            "unix_socket_directories": str(self.root),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "100",
            "shared_buffers": "32MB",
        }
        argv = [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port)]
        for name, value in options.items():
            argv += ["-c", f"{name}={value}"]
        log = self._log.open("ab")
        try:
            self.process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.root, **self._as_user()
            )
        finally:
            log.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited at start: {self._tail()}")
            try:
                with psycopg.connect(self.dsn(), connect_timeout=2) as conn:
                    conn.execute("SELECT 1")
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"postgres did not take connections in {timeout}s: {self._tail()}"
                    ) from None
                time.sleep(0.05)

    def _tail(self) -> str:
        with contextlib.suppress(OSError):
            return " | ".join(self._log.read_text(errors="replace").splitlines()[-5:])
        return "(no log)"

    def stop(self, timeout: float = 30.0, *, immediate: bool = False) -> None:
        """Stop the server: a fast shutdown (clients are disconnected at once, the data is
        checkpointed), or with ``immediate`` no checkpoint at all (as a crash would)."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGQUIT if immediate else signal.SIGINT)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def restart(self) -> None:
        """Stop, then start again on the same port with the same data."""
        self.stop()
        self.start()

    def create_database(self, name: str | None = None) -> str:
        """Make a new, empty database and return its name."""
        import psycopg

        name = name or f"test_{os.getpid()}_{next(self._databases)}"
        with psycopg.connect(self.dsn(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def close(self) -> None:
        """Stop the server and delete its folder."""
        self.stop(immediate=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class PostgresDatabase:
    """A database of a test's own: its ``name``, a ``dsn`` to reach it, and its ``server``."""

    server: PostgresServer
    name: str

    @property
    def dsn(self) -> str:
        return self.server.dsn(self.name)

    def query(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        """The rows ``sql`` returns (a fresh connection each call)."""
        import psycopg

        with psycopg.connect(self.dsn) as conn:
            return list(conn.execute(sql, params).fetchall())

    def execute(self, sql: str, params: Any = None) -> None:
        """Run ``sql`` and commit."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(sql, params)


def _available() -> None:
    pytest.importorskip("psycopg", reason="psycopg is not installed (millstream[postgres])")
    if find_bindir() is None:
        pytest.skip("PostgreSQL is not installed")


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """The PostgreSQL server this test process shares (one per xdist worker)."""
    _available()
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.fixture
def postgres(postgres_server: PostgresServer) -> PostgresDatabase:
    """A fresh database on the shared server, for this test alone."""
    return PostgresDatabase(postgres_server, postgres_server.create_database())


@pytest.fixture
def postgres_own_server() -> Iterator[PostgresServer]:
    """A server of this test's own (to stop or restart), started."""
    _available()
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()
