"""``millstream broker --http``: the address it takes, what it says, and a clean stop."""

from __future__ import annotations

import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import requests
from broker_server import MILLSTREAM, BrokerServer, free_port


def _broker(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(MILLSTREAM), "broker", "--data-dir", str(tmp_path / "data"), *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_a_bad_http_address_is_a_usage_error(tmp_path: Path) -> None:
    done = _broker(tmp_path, "--listen", f"127.0.0.1:{free_port()}", "--http", "host:port")
    assert done.returncode == 2
    assert "--http" in done.stderr
    assert "the port must be a number" in done.stderr
    done = _broker(tmp_path, "--listen", f"127.0.0.1:{free_port()}", "--http", "127.0.0.1:70000")
    assert done.returncode == 2
    assert "valid ports are 0 to 65535" in done.stderr


def test_an_http_address_in_use_stops_the_broker_with_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _broker(tmp_path, "--listen", f"127.0.0.1:{free_port()}", "--http", str(port))
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if "error" in line]
    assert len(errors) == 1, done.stderr
    assert f"cannot serve the REST API on 127.0.0.1:{port}" in errors[0]
    assert "Traceback" not in done.stderr
    # the store was closed cleanly: it opens again at once
    reopened = BrokerServer(tmp_path / "data").start()
    assert reopened.stop() == 0


def test_a_bare_port_listens_on_loopback_and_is_announced(tmp_path: Path) -> None:
    port = free_port()
    server = BrokerServer(tmp_path / "data", None, "--http", str(port))
    server.start()
    try:
        deadline = time.monotonic() + 10
        while f"REST API on http://127.0.0.1:{port}" not in server.log():
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {
            "status": "ok"
        }
        assert "warning" not in server.log()
    finally:
        assert server.stop() == 0


def test_a_non_loopback_address_warns(tmp_path: Path) -> None:
    server = BrokerServer(tmp_path / "data", None, "--http", f"0.0.0.0:{free_port()}")
    server.start()
    try:
        assert "warning: the REST API listens on 0.0.0.0" in server.log()
        assert "no authentication" in server.log()
    finally:
        assert server.stop() == 0


def test_sigterm_during_a_long_poll_stops_promptly_and_cleanly(tmp_path: Path) -> None:
    server = BrokerServer(tmp_path / "data", http=True).start()
    try:
        requests.post(server.http_url + "/topics", json={"name": "waiting"}, timeout=10)
        result: dict[str, object] = {}

        def poll() -> None:
            try:
                result["answer"] = requests.get(
                    server.http_url + "/topics/waiting/partitions/0/records",
                    params={"timeout_ms": 60000},
                    timeout=90,
                )
            except requests.RequestException as exc:
                result["error"] = exc

        waiter = threading.Thread(target=poll)
        waiter.start()
        time.sleep(0.5)
        assert server.process is not None
        started = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        status = server.stop(timeout=30)
        assert status == 0, (status, server.log())
        assert time.monotonic() - started < 15
        waiter.join(30)
        assert not waiter.is_alive()
        answer = result["answer"]  # answered, not cut: empty, since nothing arrived
        assert isinstance(answer, requests.Response)
        assert answer.status_code == 200
        assert answer.json()["records"] == []
    finally:
        server.kill()
    assert "stopped" in server.log()
