"""A real Mosquitto broker for tests: :class:`MosquittoServer` and the ``mosquitto`` fixtures.

The broker is ``/usr/sbin/mosquitto`` (the Debian package), started on a free port of
127.0.0.1 with a config written into a temporary folder, persistence on (its database in that
folder, saved when it stops), so a persistent session and the messages queued for it survive
:meth:`MosquittoServer.restart` on the same port. Queued messages per client are not capped,
so a test may publish many messages to a session that is offline.

Fixtures:

- ``mosquitto`` (function scope): a broker for one test; it starts in a few milliseconds, so
  every test gets its own and may stop, restart or reconfigure it freely.
- ``mosquitto_binary`` (session scope): the path of the broker, or a skip when it is not
  installed (``make test`` installs it).

A broker with a password file or TLS is made with ``MosquittoServer(folder, users=...,
tls=...)`` in the test itself.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "MosquittoServer",
    "MosquittoTLS",
    "Subscriber",
    "free_port",
    "mosquitto",
    "mosquitto_binary",
]

MOSQUITTO = "/usr/sbin/mosquitto"
PASSWD = "/usr/bin/mosquitto_passwd"


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class MosquittoTLS:
    """The files of a TLS listener: the broker's certificate and key, and the CA that signed
    it (clients check the broker with it). ``require_certificate`` asks clients for theirs."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    require_certificate: bool = False


class MosquittoServer:
    """One Mosquitto broker in ``folder``, on ``port`` (a free one when not given).

    ``users`` (name → password) turns anonymous access off and writes a password file with
    ``mosquitto_passwd``; ``tls`` makes the listener a TLS one. :meth:`stop` ends the broker
    with SIGTERM (it saves its database first); :meth:`start` starts it again on the same port
    with the same database.
    """

    def __init__(
        self,
        folder: Path,
        *,
        port: int | None = None,
        users: Mapping[str, str] | None = None,
        tls: MosquittoTLS | None = None,
        extra: str = "",
    ) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.users = dict(users or {})
        self.tls = tls
        self.extra = extra
        self.process: subprocess.Popen[bytes] | None = None
        self.config_file = folder / "mosquitto.conf"
        self.log_file = folder / "mosquitto.log"
        folder.mkdir(parents=True, exist_ok=True)
        self._write_config()

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:PORT`` (``mqtts://`` with TLS)."""
        scheme = "mqtts" if self.tls else "mqtt"
        return f"{scheme}://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _write_config(self) -> None:
        data = self.folder / "data"
        data.mkdir(exist_ok=True)
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence true",
            f"persistence_location {data}/",
            "autosave_interval 1800",
            "max_queued_messages 0",
            f"log_dest file {self.log_file}",
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:  # else it drops to the mosquitto user, who cannot write here
            lines.append("user root")
        if self.users:
            passwords = self.folder / "passwords"
            passwords.write_text("")
            for user, password in self.users.items():
                subprocess.run(
                    [PASSWD, "-b", str(passwords), user, password], check=True, capture_output=True
                )
            lines += ["allow_anonymous false", f"password_file {passwords}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += [
                f"cafile {self.tls.ca_file}",
                f"certfile {self.tls.cert_file}",
                f"keyfile {self.tls.key_file}",
                f"require_certificate {'true' if self.tls.require_certificate else 'false'}",
            ]
            if self.tls.require_certificate and not self.users:
                lines.append("use_identity_as_username true")
        if self.extra:
            lines.append(self.extra)
        self.config_file.write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> MosquittoServer:
        """Start the broker and wait until it accepts connections."""
        if self.running:
            return self
        self.process = subprocess.Popen(
            [MOSQUITTO, "-c", str(self.config_file)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                log = self.log_file.read_text() if self.log_file.exists() else ""
                raise RuntimeError(f"mosquitto exited at start: {err.strip()} {log.strip()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2),
            ):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on port {self.port} within {timeout}s")

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the broker (SIGTERM: it saves its database) and wait for it to end."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()

    def kill(self) -> None:
        """End the broker with SIGKILL: what it had not saved is gone."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self) -> MosquittoServer:
        """:meth:`stop`, then :meth:`start` on the same port with the same database."""
        self.stop()
        return self.start()

    def publish(
        self,
        topic: str,
        payloads: Iterable[bytes],
        *,
        qos: int = 1,
        retain: bool = False,
        client_id: str = "",
    ) -> int:
        """Publish ``payloads`` to ``topic`` (QoS 0 or 1) over a plain socket, far faster than
        a paho client can; returns once the broker acknowledged every QoS 1 message. Gives the
        number published."""
        if qos not in (0, 1):
            raise ValueError("publish() speaks QoS 0 and 1; use a paho client for QoS 2")
        name = (client_id or f"publisher-{os.getpid()}-{time.monotonic_ns()}").encode()
        connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(name)) + name
        sent = 0
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(_packet(0x10, connect))
            if _read_packet(sock)[1][1] != 0:
                raise RuntimeError("the broker refused the publisher's connection")
            chunk: list[bytes] = []
            for payload in payloads:
                sent += 1
                body = struct.pack("!H", len(topic.encode())) + topic.encode()
                if qos:
                    body += struct.pack("!H", (sent - 1) % 65535 + 1)
                chunk.append(_packet(0x30 | (qos << 1) | int(retain), body + payload))
                if len(chunk) == 10_000:
                    _send_chunk(sock, chunk, qos)
                    chunk = []
            _send_chunk(sock, chunk, qos)
            sock.sendall(b"\xe0\x00")  # DISCONNECT
        return sent

    def subscribe(self, topic: str, *, qos: int = 2) -> Subscriber:
        """A connected :class:`Subscriber` of ``topic`` (a filter), subscribed when returned."""
        return Subscriber(self.port, topic, qos)

    def __enter__(self) -> MosquittoServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Subscriber:
    """A paho client that keeps every message it gets: ``messages`` (paho MQTTMessage)."""

    def __init__(self, port: int, topic: str, qos: int) -> None:
        import paho.mqtt.client as mqtt

        self.messages: list[Any] = []
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        subscribed = threading.Event()
        self.client.on_message = lambda c, u, m: self.messages.append(m)
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self.client.subscribe(topic, qos)
        if not subscribed.wait(10):
            raise RuntimeError(f"no SUBACK for {topic!r}")

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Any]:
        """The messages, once there are ``count`` of them (or the timeout passed)."""
        deadline = time.monotonic() + timeout
        while len(self.messages) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        return list(self.messages)

    def settled(self, quiet: float = 0.2, timeout: float = 10.0) -> list[Any]:
        """The messages, once none came for ``quiet`` seconds."""
        deadline = time.monotonic() + timeout
        seen, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            if len(self.messages) != seen:
                seen, since = len(self.messages), time.monotonic()
            elif time.monotonic() - since >= quiet:
                break
            time.sleep(0.01)
        return list(self.messages)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _packet(header: int, body: bytes) -> bytes:
    size, length = len(body), bytearray()
    while True:
        size, digit = divmod(size, 128)
        length.append(digit | (0x80 if size else 0))
        if not size:
            return bytes([header]) + bytes(length) + body


def _read_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        more = sock.recv(size - len(data))
        if not more:
            raise ConnectionError("the broker closed the connection")
        data += more
    return data


def _read_packet(sock: socket.socket) -> tuple[int, bytes]:
    header = _read_exact(sock, 1)[0]
    size, shift = 0, 0
    while True:
        digit = _read_exact(sock, 1)[0]
        size |= (digit & 0x7F) << shift
        shift += 7
        if not digit & 0x80:
            break
    return header, _read_exact(sock, size)


def _send_chunk(sock: socket.socket, chunk: list[bytes], qos: int) -> None:
    sock.sendall(b"".join(chunk))
    if qos:
        for _ in chunk:
            header, _body = _read_packet(sock)
            if header >> 4 != 4:
                raise RuntimeError(
                    f"expected a PUBACK from the broker, got packet type {header >> 4}"
                )


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    """The Mosquitto broker's path; skips the test when it is not installed."""
    if not os.access(MOSQUITTO, os.X_OK) and shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed (apt-get install mosquitto; make test does)")
    return MOSQUITTO if os.access(MOSQUITTO, os.X_OK) else str(shutil.which("mosquitto"))


@pytest.fixture
def mosquitto(
    tmp_path_factory: pytest.TempPathFactory, mosquitto_binary: str
) -> Iterator[MosquittoServer]:
    """A running Mosquitto broker of this test's own, stopped afterwards."""
    server = MosquittoServer(tmp_path_factory.mktemp("mosquitto"))
    with server:
        yield server
