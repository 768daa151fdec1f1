"""kcat (librdkafka's command-line client) against ``millstream broker``: produce with -P and
consume with -C -e, with every compression codec; what it writes is read back by kcat, by
kafka-python and by core.log directly."""

from __future__ import annotations

import shutil
import subprocess
import uuid

import pytest

from millstream.core.log import LogStore

KCAT = shutil.which("kcat") or "/usr/bin/kcat"

pytestmark = pytest.mark.skipif(not shutil.which("kcat"), reason="kcat is not installed")

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]


def kcat(*args: str, stdin: str | None = None) -> str:
    done = subprocess.run([KCAT, *args], input=stdin, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def read_log(data_dir, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """What core.log holds in ``topic``, opened read-only beside the running broker."""
    store = LogStore.open(data_dir, read_only=True)
    try:
        out = []
        for partition in store.topic(topic).partitions:
            out.extend((r.key, r.value) for r in partition.iter_records(0))
        return out
    finally:
        import asyncio

        asyncio.run(store.close())


@pytest.mark.parametrize("codec", CODECS)
def test_kcat_produces_and_consumes_with_every_codec(broker_session, codec):
    topic = f"kcat-{codec}-{uuid.uuid4().hex[:8]}"
    lines = [f"key{i}:value {i} {codec} " + "x" * (i % 50) for i in range(200)]
    kcat(
        "-b",
        broker_session.bootstrap,
        "-P",
        "-t",
        topic,
        "-K:",
        "-z",
        codec,
        stdin="\n".join(lines) + "\n",
    )
    out = kcat("-b", broker_session.bootstrap, "-C", "-t", topic, "-e", "-f", "%k:%s\n")
    assert out.splitlines() == lines
    stored = read_log(broker_session.data_dir, topic)
    assert [(k.decode(), v.decode()) for k, v in stored] == [
        tuple(line.split(":", 1)) for line in lines
    ]


def test_kcat_reads_what_kafka_python_wrote(broker_session):
    kafka = pytest.importorskip("kafka")
    topic = f"kcat-from-kp-{uuid.uuid4().hex[:8]}"
    producer = kafka.KafkaProducer(
        bootstrap_servers=broker_session.bootstrap, compression_type="gzip", linger_ms=5
    )
    for i in range(50):
        producer.send(topic, key=b"k%d" % i, value=b"v%d" % i)
    producer.flush()
    producer.close()
    out = kcat("-b", broker_session.bootstrap, "-C", "-t", topic, "-e", "-f", "%k=%s\n")
    assert out.splitlines() == [f"k{i}=v{i}" for i in range(50)]
