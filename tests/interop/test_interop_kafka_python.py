"""kafka-python against ``millstream broker``: KafkaProducer with every compression type it
supports, KafkaConsumer with assign() (no groups), offsets by time; read back by kcat and
core.log too."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
import uuid

import pytest

from millstream.core.log import LogStore

kafka = pytest.importorskip("kafka")

CODECS = [None, "gzip", "snappy", "lz4", "zstd"]
COUNT = 200


def consume(bootstrap: str, topic: str, partitions: int) -> list:
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap, consumer_timeout_ms=1500, fetch_max_wait_ms=100
    )
    tps = [kafka.TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    got = list(consumer)
    consumer.close()
    return got


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c or "none")
def test_kafka_python_produces_and_consumes(broker_session, codec):
    topic = f"kp-{codec}-{uuid.uuid4().hex[:8]}"
    admin = kafka.KafkaAdminClient(bootstrap_servers=broker_session.bootstrap)
    admin.create_topics([kafka.admin.NewTopic(topic, 3, 1)])
    admin.close()
    producer = kafka.KafkaProducer(
        bootstrap_servers=broker_session.bootstrap, compression_type=codec, linger_ms=5, acks="all"
    )
    futures = [
        producer.send(
            topic,
            key=b"k%d" % i,
            value=b"kafka-python %d" % i,
            partition=i % 3,
            headers=[("n", b"%d" % i)],
        )
        for i in range(COUNT)
    ]
    producer.flush()
    metadata = [f.get(10) for f in futures]
    producer.close()
    assert [m.offset for m in metadata if m.partition == 0] == list(range(len(range(0, COUNT, 3))))
    got = consume(broker_session.bootstrap, topic, 3)
    assert sorted((m.key, m.value, m.partition) for m in got) == sorted(
        (b"k%d" % i, b"kafka-python %d" % i, i % 3) for i in range(COUNT)
    )
    assert all(m.headers == [("n", m.key[1:])] for m in got)
    store = LogStore.open(broker_session.data_dir, read_only=True)
    try:
        stored = {r.key: r.value for p in store.topic(topic).partitions for r in p.iter_records(0)}
    finally:
        asyncio.run(store.close())
    assert stored == {m.key: m.value for m in got}
    if shutil.which("kcat"):
        out = subprocess.run(
            ["kcat", "-b", broker_session.bootstrap, "-C", "-t", topic, "-e", "-f", "%k\n"],
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout
        assert sorted(out.split()) == sorted(f"k{i}" for i in range(COUNT))


def test_kafka_python_offsets_for_times_and_end_offsets(broker_session):
    topic = f"kp-times-{uuid.uuid4().hex[:8]}"
    producer = kafka.KafkaProducer(bootstrap_servers=broker_session.bootstrap)
    now = int(time.time() * 1000)
    for i in range(10):
        producer.send(topic, value=b"%d" % i, partition=0, timestamp_ms=now - 10_000 + i * 1000)
    producer.flush()
    producer.close()
    consumer = kafka.KafkaConsumer(bootstrap_servers=broker_session.bootstrap)
    tp = kafka.TopicPartition(topic, 0)
    assert consumer.end_offsets([tp]) == {tp: 10}
    assert consumer.beginning_offsets([tp]) == {tp: 0}
    found = consumer.offsets_for_times({tp: now - 5500})[tp]
    assert (found.offset, found.timestamp) == (5, now - 5000)
    consumer.close()
