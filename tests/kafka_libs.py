"""The Java side of the interop tests: Apache Kafka's client and tools from Maven Central (a
pytest plugin module, named in tests/conftest.py).

``kafka_libs`` runs scripts/fetch-kafka.sh once (it fetches org.apache.kafka:kafka-clients,
kafka-tools and their dependencies into .cache/kafka/VERSION/libs, or finds them there; it holds
a lock, so xdist workers wait for one another). ``java`` compiles tests/interop/java/Interop.java
against them, once per version of its source (the classes are kept beside the libs), and runs it
and Kafka's tools with the machine's Java.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

__all__ = [
    "CONSOLE_CONSUMER",
    "CONSOLE_PRODUCER",
    "CONSUMER_GROUPS",
    "Java",
    "decoded",
    "java",
    "kafka_libs",
]

ROOT = Path(__file__).resolve().parents[1]
JAVA_DIR = ROOT / "tests" / "interop" / "java"
FETCH = ROOT / "scripts" / "fetch-kafka.sh"
# A short-lived JVM starts quicker with the client compiler alone and the serial collector.
JVM_OPTIONS = (
    "-XX:TieredStopAtLevel=1",
    "-XX:+UseSerialGC",
    "-Xmx256m",
    f"-Dlog4j2.configurationFile={JAVA_DIR / 'log4j2.properties'}",
)

CONSOLE_PRODUCER = "org.apache.kafka.tools.ConsoleProducer"
CONSOLE_CONSUMER = "org.apache.kafka.tools.consumer.ConsoleConsumer"
CONSUMER_GROUPS = "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand"


@pytest.fixture(scope="session")
def kafka_libs() -> Path:
    """The directory of Kafka's jars (fetched with Maven on first use; the script installs Maven,
    and with it a Java runtime, when it is missing and runs as root)."""
    done = subprocess.run([str(FETCH)], capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0 and not (shutil.which("mvn") and shutil.which("java")):
        pytest.skip(f"Maven and Java are needed to fetch Kafka's jars: {done.stderr.strip()}")
    assert done.returncode == 0, f"scripts/fetch-kafka.sh failed: {done.stderr[-2000:]}"
    return Path(done.stdout.strip())


def _javac() -> str | None:
    """The Java compiler, installed (as root) with the Debian JDK when missing."""
    if not shutil.which("javac"):
        subprocess.run(
            [str(ROOT / "scripts" / "install-system-deps.sh"), "default-jdk-headless"],
            check=False,
            timeout=900,
        )
    return shutil.which("javac")


@dataclass(frozen=True)
class Java:
    """Runs Interop (tests/interop/java/Interop.java) and Kafka's tools."""

    libs: Path
    classes: Path

    def command(self, main: str, *args: str) -> list[str]:
        classpath = f"{self.classes}{os.pathsep}{self.libs}/*"
        return ["java", *JVM_OPTIONS, "-cp", classpath, main, *args]

    def run(self, main: str, *args: str, stdin: str | None = None, timeout: float = 120) -> str:
        """Run ``main`` to its end; its stdout (a non-zero exit fails the test)."""
        done = subprocess.run(
            self.command(main, *args),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        assert done.returncode == 0, f"{main} exited with {done.returncode}: {done.stderr[-3000:]}"
        return done.stdout

    def popen(self, main: str, *args: str, stdout: Any = subprocess.PIPE) -> subprocess.Popen[str]:
        """Start ``main`` with a pipe to its stdin (closing it stops Interop's member)."""
        return subprocess.Popen(
            self.command(main, *args),
            stdin=subprocess.PIPE,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )

    def produce(self, bootstrap: str, records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send ``records`` (dicts of topic, key, value, headers as bytes or None, timestamp,
        partition, compression, idempotence) with the Java producer; their metadata in order."""
        lines = [json.dumps(_encoded(r)) for r in records]
        out = self.run("Interop", "produce", bootstrap, stdin="\n".join(lines) + "\n")
        return [json.loads(line) for line in out.splitlines()]

    def read(self, bootstrap: str, topics: Iterable[str]) -> list[dict[str, Any]]:
        """Every record of ``topics`` as the Java consumer reads it (key, value and header values
        as bytes or None)."""
        out = self.run("Interop", "read", bootstrap, *topics)
        return [decoded(json.loads(line)) for line in out.splitlines()]


def _b64(data: bytes | None) -> str | None:
    return None if data is None else base64.b64encode(data).decode()


def _unb64(text: str | None) -> bytes | None:
    return None if text is None else base64.b64decode(text)


def _encoded(record: dict[str, Any]) -> dict[str, Any]:
    out = dict(record)
    for field in ("key", "value"):
        if field in out:
            out[field] = _b64(out[field])
    out["headers"] = [[name, _b64(value)] for name, value in record.get("headers", ())]
    return out


def decoded(line: dict[str, Any]) -> dict[str, Any]:
    """A record line of Interop with its key, value and header values as bytes."""
    line["key"] = _unb64(line["key"])
    line["value"] = _unb64(line["value"])
    line["headers"] = [(name, _unb64(value)) for name, value in line["headers"]]
    return line


@pytest.fixture(scope="session")
def java(kafka_libs: Path) -> Java:
    """Interop compiled against ``kafka_libs`` (kept between runs, keyed by its source)."""
    source = JAVA_DIR / "Interop.java"
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
    classes = kafka_libs.parent / f"interop-{digest}"
    with open(kafka_libs.parent / ".interop.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (classes / "Interop.class").exists():
            building = classes.with_name(classes.name + ".tmp")
            shutil.rmtree(building, ignore_errors=True)
            javac = _javac()
            if javac is None:
                pytest.skip("javac is missing; as root run: apt-get install default-jdk-headless")
            done = subprocess.run(
                [javac, "-cp", f"{kafka_libs}/*", "-d", str(building), str(source)],
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            assert done.returncode == 0, f"javac failed: {done.stderr[-3000:]}"
            building.rename(classes)
    return Java(kafka_libs, classes)
