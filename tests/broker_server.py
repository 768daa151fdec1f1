"""A real ``millstream broker`` for tests: :class:`BrokerServer` and the ``broker`` fixtures.

The broker runs as a subprocess of ``.venv/bin/millstream broker --data-dir DIR --listen
127.0.0.1:PORT`` on a free port, so tests go through the real socket path; ``http=True`` also
serves its REST API (``--http``) on another free port, at :attr:`BrokerServer.http_url`.
:meth:`start` waits until the broker answers an ApiVersions request (and HTTP, with ``http``);
:meth:`stop` sends SIGTERM and waits for the clean exit (returning its status), :meth:`kill`
sends SIGKILL; :meth:`start` again uses the same port and data directory, so a test can check
what survives a restart.

Fixtures:

- ``broker`` (function scope): a broker of its own, for tests that stop, kill or restart it;
- ``broker_session`` (session scope, one per xdist worker): a broker shared by the tests that
  only produce and consume (each uses its own topic names).
"""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

__all__ = ["BrokerServer", "broker", "broker_session", "free_port"]

MILLSTREAM = Path(sys.executable).parent / "millstream"
_START_TIMEOUT_S = 30.0
_API_VERSIONS_V0 = struct.pack(">ihhih", 10, 18, 0, 1, 0)  # size, key, version, correlation, ""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class BrokerServer:
    """One ``millstream broker`` subprocess on a fixed port and data directory."""

    def __init__(
        self, data_dir: Path, port: int | None = None, *extra_args: str, http: bool | int = False
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.extra_args = list(extra_args)
        self.http_port: int | None = None
        """The REST API's port (``http=True``: a free one; ``http=PORT``: that one)."""
        if http:
            self.http_port = free_port() if http is True else int(http)
            self.extra_args += ["--http", f"{self.host}:{self.http_port}"]
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-broker.log"

    @property
    def http_url(self) -> str:
        """``http://HOST:PORT`` of the REST API (started with ``http=``)."""
        assert self.http_port is not None, "start the BrokerServer with http=True"
        return f"http://{self.host}:{self.http_port}"

    @property
    def bootstrap(self) -> str:
        """``HOST:PORT`` for clients."""
        return f"{self.host}:{self.port}"

    def start(self) -> BrokerServer:
        """Start the broker and wait until it answers."""
        if self.process is not None and self.process.poll() is None:
            return self
        log = open(self.log_path, "ab")  # noqa: SIM115 - the subprocess keeps it
        self.process = subprocess.Popen(
            [
                str(MILLSTREAM),
                "broker",
                "--data-dir",
                str(self.data_dir),
                "--listen",
                self.bootstrap,
                *self.extra_args,
            ],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"millstream broker exited with {self.process.returncode}: {self.log()}"
                )
            if self._answers() and (self.http_port is None or self._http_answers()):
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"millstream broker did not answer in {_START_TIMEOUT_S}s: {self.log()}")

    def _answers(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1) as s:
                s.sendall(_API_VERSIONS_V0)
                return len(s.recv(4)) == 4
        except OSError:
            return False

    def _http_answers(self) -> bool:
        assert self.http_port is not None
        try:
            with socket.create_connection((self.host, self.http_port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM, wait for the exit; its status (None if it was not running)."""
        if self.process is None:
            return 0
        process, self.process = self.process, None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise

    def kill(self) -> None:
        """SIGKILL: a crash, nothing synced or closed."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def restart(self) -> BrokerServer:
        self.stop()
        return self.start()

    def log(self) -> str:
        """What the broker printed so far."""
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[BrokerServer]:
    """A broker of the test's own, in ``tmp_path/broker-data``."""
    server = BrokerServer(tmp_path / "broker-data").start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="session")
def broker_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerServer]:
    """A broker shared by the session (per xdist worker); use unique topic names. It forms a
    new group at once (no initial rebalance delay), as the ``kafka`` fixture's Kafka does."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    data = tmp_path_factory.mktemp(f"broker-{worker}") / "data"
    server = BrokerServer(data, None, "--group-initial-rebalance-delay-ms", "0").start()
    try:
        yield server
    finally:
        if server.stop() != 0:
            print(server.log(), file=sys.stderr)
