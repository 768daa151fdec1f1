"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest_plugins: list[str] = [
    "mosquitto_server",
    "postgres_server",
    "broker_server",
    "kafka_libs",
    "kafka_server",
    "remote_store",
]
"""Modules beside this file that hold fixtures for real servers (each starts its server on a free
port in a temporary directory and stops it afterwards)."""


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the commands the tests start, as in a terminal. A test run started in the
    background by a shell without job control inherits SIGINT ignored, its subprocesses would
    too, and a command that finds SIGINT ignored rightly keeps it so; with a handler here, each
    subprocess starts with SIGINT at its default again."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted for the test (needs root; skipped otherwise)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)
