"""Apache Kafka itself for tests, benchmarks and people: :class:`KafkaCluster` and its fixtures.

Kafka (``kafka_2.13`` with its tools, fetched from Maven Central by scripts/fetch-kafka.sh into
.cache/kafka) runs in KRaft mode, each node a combined broker and controller in a JVM of its
own, on free ports of 127.0.0.1 in a folder of the cluster's: one node (a standalone controller
quorum, ``controller.quorum.bootstrap.servers`` and ``StorageTool format --standalone``), or
several (a static quorum of them all, ``controller.quorum.voters``, every node formatted with
the same cluster id). :meth:`KafkaCluster.start` returns once every node answers and the
metadata lists them all; :meth:`KafkaCluster.stop` ends them; :meth:`KafkaCluster.kill` sends
one node SIGKILL and :meth:`KafkaCluster.start_node` brings it back on its ports and data.

Besides the plain listener every node has, ``security=True`` adds SASL_PLAINTEXT, SSL and
SASL_SSL listeners (PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 for :data:`USERS`; a self-signed
certificate for ``localhost`` and 127.0.0.1 whose PEM file is :attr:`KafkaCluster.ca_file`).

Fixtures: ``kafka`` (session scope, one per xdist worker: a single node shared by tests that
use their own topic names), ``kafka_secure`` (session: one node with every security listener),
``fresh_kafka`` (function scope: one node of the test's own), ``kafka_cluster`` (function scope:
three nodes of the test's own).

Run by hand (``make kafka``): ``python tests/kafka_server.py [--port 9092] [--nodes 3]``
starts one in the foreground until Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from broker_server import free_port

from millstream.core.errors import ProtocolError
from millstream.core.protocol import (
    ApiKey,
    RequestHeader,
    decode_response,
    encode_request,
    request_class,
)

__all__ = [
    "USERS",
    "KafkaCluster",
    "KafkaNode",
    "fetch_kafka",
    "fresh_kafka",
    "kafka",
    "kafka_cluster",
    "kafka_secure",
]

ROOT = Path(__file__).resolve().parents[1]
FETCH = ROOT / "scripts" / "fetch-kafka.sh"
START_TIMEOUT_S = 90.0

USERS: Mapping[str, str] = {"alice": "alice-secret", "bob": "b0b-p@ss/w:rd"}
"""The SASL users of a ``security=True`` cluster and their passwords (PLAIN and both SCRAMs)."""

TEST_JVM = ("-Xms128m", "-Xmx512m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1")
"""A small, quick-starting JVM (for tests: the broker is far from its limits there)."""
BENCH_JVM = ("-Xms1g", "-Xmx1g", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20")
"""Kafka's own defaults of kafka-server-start.sh (for measurements)."""

_API_VERSIONS_V0 = struct.pack(">ihhih", 10, 18, 0, 1, 0)  # size, key, version, correlation, ""
_LOG4J = """\
status = error
appender.file.type = File
appender.file.name = file
appender.file.fileName = {log}
appender.file.layout.type = PatternLayout
appender.file.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.file.ref = file
"""


def fetch_kafka() -> Path:
    """The folder of Kafka's jars (scripts/fetch-kafka.sh: fetched once, then cached)."""
    done = subprocess.run([str(FETCH)], capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"scripts/fetch-kafka.sh failed: {done.stderr[-2000:]}")
    return Path(done.stdout.strip())


@dataclass
class KafkaNode:
    """One broker+controller JVM: its id, ports (by listener name) and folder."""

    node_id: int
    folder: Path
    ports: dict[str, int]
    process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.ports['PLAINTEXT']}"

    @property
    def log_path(self) -> Path:
        return self.folder / "server.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self, tail: int = 6000) -> str:
        """The end of what the node logged (and printed)."""
        text = ""
        for path in (self.folder / "stdout.log", self.log_path):
            with contextlib.suppress(OSError):
                text += path.read_text(errors="replace")[-tail:]
        return text

    def answers(self) -> bool:
        """Whether the plain listener answers an ApiVersions request."""
        try:
            with socket.create_connection(("127.0.0.1", self.ports["PLAINTEXT"]), timeout=1) as s:
                s.sendall(_API_VERSIONS_V0)
                return len(s.recv(4)) == 4
        except OSError:
            return False


@dataclass
class KafkaCluster:
    """``nodes`` Kafka brokers (each also a controller) in ``folder``.

    ``configs`` are added to every node's server.properties (Kafka's names and values).
    """

    folder: Path
    nodes: int = 1
    libs: Path | None = None
    security: bool = False
    configs: Mapping[str, str] = field(default_factory=dict)
    jvm: Sequence[str] = TEST_JVM
    log_level: str = "WARN"
    members: list[KafkaNode] = field(default_factory=list)
    cluster_id: str = ""

    # --- addresses ------------------------------------------------------------------------

    @property
    def bootstrap(self) -> str:
        """``HOST:PORT[,HOST:PORT]`` of the plain listeners."""
        return ",".join(node.bootstrap for node in self.members)

    @property
    def url(self) -> str:
        """The store URL of the cluster (``kafka://…``)."""
        return f"kafka://{self.bootstrap}"

    def address(self, listener: str, node: int = 0) -> str:
        """``HOST:PORT`` of a listener (``SASL_PLAINTEXT``, ``SSL``, ``SASL_SSL``)."""
        host = "localhost" if "SSL" in listener else "127.0.0.1"
        return f"{host}:{self.members[node].ports[listener]}"

    @property
    def ca_file(self) -> Path:
        """The PEM certificate the TLS listeners present (self-signed: it is its own CA)."""
        return self.folder / "tls" / "cert.pem"

    def node(self, node_id: int) -> KafkaNode:
        return next(n for n in self.members if n.node_id == node_id)

    # --- life -----------------------------------------------------------------------------

    def start(self) -> KafkaCluster:
        """Format (first time) and start every node; wait until the cluster is whole."""
        self.libs = self.libs or fetch_kafka()
        self.folder.mkdir(parents=True, exist_ok=True)
        if not self.members:
            self._plan()
        formatting = [self._format(node) for node in self.members if not self._formatted(node)]
        for node, process in formatting:
            out, _ = process.communicate(timeout=120)
            if process.returncode != 0:
                raise RuntimeError(f"formatting Kafka node {node.node_id} failed: {out[-3000:]}")
        for node in self.members:
            self._launch(node)
        self.wait_ready()
        return self

    def start_node(self, node_id: int) -> None:
        """Start one (killed or stopped) node again on its ports and data."""
        node = self.node(node_id)
        self._launch(node)
        self.wait_ready()

    def wait_ready(self, timeout_s: float = START_TIMEOUT_S) -> None:
        """Until every running node answers and the metadata lists every running node."""
        deadline = time.monotonic() + timeout_s
        running = [n for n in self.members if n.process is not None]
        while time.monotonic() < deadline:
            for node in running:
                if node.process is not None and node.process.poll() is not None:
                    raise RuntimeError(
                        f"Kafka node {node.node_id} exited with {node.process.returncode}: "
                        f"{node.log()}"
                    )
            if all(n.answers() for n in running) and self._registered() >= len(running):
                return
            time.sleep(0.2)
        logs = "\n".join(f"node {n.node_id}: {n.log()}" for n in running)
        self.stop()
        raise RuntimeError(f"Kafka did not come up within {timeout_s:g} s:\n{logs}")

    def kill(self, node_id: int) -> None:
        """SIGKILL one node: a crash, nothing flushed."""
        node = self.node(node_id)
        if node.process is not None:
            node.process.kill()
            node.process.wait()
            node.process = None

    def stop(self, timeout_s: float = 30.0) -> None:
        """SIGTERM every node at once and wait (SIGKILL what outlives ``timeout_s``)."""
        for node in self.members:
            if node.running:
                assert node.process is not None
                node.process.send_signal(signal.SIGTERM)
        for node in self.members:
            if node.process is None:
                continue
            try:
                node.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait()
            node.process = None

    def remove(self) -> None:
        """Stop and delete the cluster's folder."""
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> KafkaCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the parts --------------------------------------------------------------------------

    def _plan(self) -> None:
        self.cluster_id = self._java("kafka.tools.StorageTool", "random-uuid").strip()
        listeners = ["PLAINTEXT", "CONTROLLER"]
        if self.security:
            listeners += ["SASL_PLAINTEXT", "SSL", "SASL_SSL"]
            self._make_certificate()
        for index in range(self.nodes):
            ports = {name: free_port() for name in listeners}
            folder = self.folder / f"node-{index + 1}"
            folder.mkdir(parents=True, exist_ok=True)
            node = KafkaNode(index + 1, folder, ports)
            self.members.append(node)
        for node in self.members:
            self._write_properties(node)

    def _write_properties(self, node: KafkaNode) -> None:
        replication = str(min(3, self.nodes))
        names = [n for n in node.ports if n != "CONTROLLER"]
        props: dict[str, str] = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "listeners": ",".join(f"{n}://127.0.0.1:{p}" for n, p in node.ports.items()),
            "advertised.listeners": ",".join(
                f"{n}://{self.address(n, self.members.index(node))}" for n in names
            ),
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": ",".join(
                f"{n}:{'PLAINTEXT' if n == 'CONTROLLER' else n}" for n in node.ports
            ),
            "log.dirs": str(node.folder / "data"),
            "num.partitions": "1",
            "default.replication.factor": replication,
            "offsets.topic.replication.factor": replication,
            "offsets.topic.num.partitions": "5",
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
        }
        if self.nodes == 1:
            props["controller.quorum.bootstrap.servers"] = f"127.0.0.1:{node.ports['CONTROLLER']}"
        else:
            props["controller.quorum.voters"] = ",".join(
                f"{n.node_id}@127.0.0.1:{n.ports['CONTROLLER']}" for n in self.members
            )
        if self.security:
            props.update(self._security_properties())
        props.update(self.configs)
        text = "".join(f"{key}={value}\n" for key, value in props.items())
        (node.folder / "server.properties").write_text(text)
        (node.folder / "log4j2.properties").write_text(
            _LOG4J.format(log=node.log_path, level=self.log_level)
        )

    def _security_properties(self) -> dict[str, str]:
        plain_users = " ".join(f'user_{u}="{_jaas(p)}"' for u, p in USERS.items())
        plain = f"org.apache.kafka.common.security.plain.PlainLoginModule required {plain_users};"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        props = {
            "sasl.enabled.mechanisms": "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.folder / "tls" / "keystore.pem"),
            "ssl.client.auth": "none",
        }
        for listener in ("sasl_plaintext", "sasl_ssl"):
            props[f"listener.name.{listener}.plain.sasl.jaas.config"] = plain
            props[f"listener.name.{listener}.scram-sha-256.sasl.jaas.config"] = scram
            props[f"listener.name.{listener}.scram-sha-512.sasl.jaas.config"] = scram
        return props

    def _make_certificate(self) -> None:
        tls = self.folder / "tls"
        tls.mkdir(parents=True, exist_ok=True)
        key, cert = tls / "key.pem", tls / "cert.pem"
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                "-keyout", str(key), "-out", str(cert),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        (tls / "keystore.pem").write_text(key.read_text() + cert.read_text())

    def _formatted(self, node: KafkaNode) -> bool:
        return (node.folder / "data" / "meta.properties").exists()

    def _format(self, node: KafkaNode) -> tuple[KafkaNode, subprocess.Popen[str]]:
        args = ["format", "-t", self.cluster_id, "-c", str(node.folder / "server.properties")]
        if self.nodes == 1:
            args.append("--standalone")
        if self.security:
            for user, password in USERS.items():
                for mechanism in ("SCRAM-SHA-256", "SCRAM-SHA-512"):
                    args += ["--add-scram", f"{mechanism}=[name={user},password={password}]"]
        process = subprocess.Popen(
            self._command("kafka.tools.StorageTool", *args),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        return node, process

    def _launch(self, node: KafkaNode) -> None:
        if node.running:
            return
        out = open(node.folder / "stdout.log", "ab")  # noqa: SIM115 - the JVM keeps it
        node.process = subprocess.Popen(
            self._command(
                "kafka.Kafka",
                str(node.folder / "server.properties"),
                log4j=node.folder / "log4j2.properties",
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        out.close()

    def _command(self, main: str, *args: str, log4j: Path | None = None) -> list[str]:
        assert self.libs is not None
        logging = f"-Dlog4j2.configurationFile={log4j}" if log4j else "-Dlog4j2.level=error"
        return ["java", *self.jvm, logging, "-cp", f"{self.libs}/*", main, *args]

    def _java(self, main: str, *args: str) -> str:
        done = subprocess.run(
            self._command(main, *args), capture_output=True, text=True, timeout=120, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{main} failed: {done.stderr[-3000:]}")
        return done.stdout

    def _registered(self) -> int:
        """How many brokers the metadata of the first running node lists (0 if none answers)."""
        for node in self.members:
            if node.running:
                return _metadata_brokers(node.bootstrap)
        return 0


def _jaas(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _metadata_brokers(bootstrap: str) -> int:
    """The number of brokers a Metadata request for no topics lists (0 on any failure)."""
    host, _, port = bootstrap.rpartition(":")
    request = request_class(ApiKey.METADATA)(topics=[], allow_auto_topic_creation=False)
    frame = encode_request(RequestHeader(ApiKey.METADATA, 1, 7, "kafka-fixture"), request)
    try:
        with socket.create_connection((host, int(port)), timeout=2) as s:
            s.sendall(frame)
            with s.makefile("rb") as answers:  # read(n) waits for all n bytes, or the end
                size = struct.unpack(">i", answers.read(4))[0]
                _, answer = decode_response(ApiKey.METADATA, 1, answers.read(size))
    except (OSError, struct.error, ProtocolError):  # unreachable, or closed mid-answer
        return 0
    return len(answer.brokers)


# --- fixtures ---------------------------------------------------------------------------------


def _libs_or_skip() -> Path:
    try:
        return fetch_kafka()
    except RuntimeError as exc:
        if shutil.which("mvn") and shutil.which("java"):
            raise
        pytest.skip(f"Maven and Java are needed to run Apache Kafka: {exc}")


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One Kafka node shared by the session (per xdist worker); use unique names."""
    cluster = KafkaCluster(tmp_path_factory.mktemp("kafka"), libs=_libs_or_skip()).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def kafka_secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    """One Kafka node with SASL_PLAINTEXT, SSL and SASL_SSL listeners besides the plain one."""
    cluster = KafkaCluster(
        tmp_path_factory.mktemp("kafka-secure"), libs=_libs_or_skip(), security=True
    ).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def fresh_kafka(tmp_path: Path) -> Iterator[KafkaCluster]:
    """One Kafka node of the test's own (for tests that use fixed names or stop it)."""
    cluster = KafkaCluster(tmp_path / "kafka", libs=_libs_or_skip()).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def kafka_cluster(tmp_path: Path) -> Iterator[KafkaCluster]:
    """Three Kafka nodes of the test's own (replication factor 3 by default)."""
    cluster = KafkaCluster(tmp_path / "kafka", nodes=3, libs=_libs_or_skip()).start()
    try:
        yield cluster
    finally:
        cluster.stop()


def main(argv: list[str] | None = None) -> int:
    """``make kafka``: one Kafka (or a cluster) in the foreground until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=1)
    parser.add_argument("--port", type=int, default=9092, help="the first node's plain port")
    parser.add_argument("--security", action="store_true", help="add SASL and TLS listeners")
    parser.add_argument("--folder", type=Path, help="keep the data here (default: a temp dir)")
    args = parser.parse_args(argv)
    folder = args.folder or Path(tempfile.mkdtemp(prefix="kafka-"))
    cluster = KafkaCluster(folder, nodes=args.nodes, security=args.security)
    cluster.libs = fetch_kafka()
    if not (folder / "node-1" / "server.properties").exists():
        cluster._plan()
        cluster.members[0].ports["PLAINTEXT"] = args.port
        for node in cluster.members:
            cluster._write_properties(node)
    else:
        sys.exit(f"{folder} holds a cluster already; remove it or name another --folder")
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    cluster.start()
    print(f"Kafka is up: store URL {cluster.url}  (data in {folder}; Ctrl-C stops it)")
    try:
        signal.sigwait({signal.SIGINT, signal.SIGTERM})
    finally:
        cluster.stop()
        if args.folder is None:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    raise SystemExit(main())
