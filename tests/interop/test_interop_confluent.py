"""confluent-kafka (librdkafka) against ``millstream broker``: produce with and without
idempotence and with every compression type, consume with assign() (no groups); the records
are read back by confluent-kafka, kafka-python and core.log."""

from __future__ import annotations

import asyncio
import time
import uuid

import pytest

from millstream.core.log import LogStore

confluent_kafka = pytest.importorskip("confluent_kafka")
admin_module = pytest.importorskip("confluent_kafka.admin")

CODECS = ["none", "gzip", "snappy", "lz4", "zstd"]
COUNT = 300


def produce(bootstrap: str, topic: str, codec: str, idempotent: bool, partitions: int = 1):
    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": bootstrap,
            "compression.type": codec,
            "enable.idempotence": idempotent,
            "linger.ms": 5,
            "acks": "all",
        }
    )
    errors: list[str] = []

    def delivered(err, msg):
        if err is not None:
            errors.append(str(err))

    for i in range(COUNT):
        producer.produce(
            topic,
            key=b"k%d" % i,
            value=(b"value-%d-" % i) * 3,
            partition=i % partitions,
            headers=[("h", b"%d" % i)],
            on_delivery=delivered,
        )
        producer.poll(0)
    assert producer.flush(30) == 0
    assert errors == []


def consume(bootstrap: str, topic: str, partitions: int, expected: int) -> list:
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "unused-with-assign",
            "enable.auto.commit": False,
            "fetch.wait.max.ms": 100,
        }
    )
    consumer.assign(
        [
            confluent_kafka.TopicPartition(topic, p, confluent_kafka.OFFSET_BEGINNING)
            for p in range(partitions)
        ]
    )
    got = []
    deadline = time.monotonic() + 30
    try:
        while len(got) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            got.append(msg)
    finally:
        consumer.close()
    return got


def create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    admin = admin_module.AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([admin_module.NewTopic(topic, partitions, 1)])
    futures[topic].result(15)


@pytest.mark.parametrize("idempotent", [False, True], ids=["plain", "idempotent"])
@pytest.mark.parametrize("codec", CODECS)
def test_confluent_produces_and_consumes(broker_session, codec, idempotent):
    topic = f"ck-{codec}-{idempotent}-{uuid.uuid4().hex[:8]}"
    create_topic(broker_session.bootstrap, topic, 2)
    produce(broker_session.bootstrap, topic, codec, idempotent, partitions=2)
    got = consume(broker_session.bootstrap, topic, 2, COUNT)
    assert len(got) == COUNT
    by_key = {m.key(): m for m in got}
    assert len(by_key) == COUNT
    for i in range(COUNT):
        msg = by_key[b"k%d" % i]
        assert msg.value() == (b"value-%d-" % i) * 3
        assert msg.partition() == i % 2
        assert msg.headers() == [("h", b"%d" % i)]
    for p in (0, 1):  # offsets dense from 0 in each partition, in the order produced
        offsets = [m.offset() for m in got if m.partition() == p]
        assert offsets == list(range(COUNT // 2))
    store = LogStore.open(broker_session.data_dir, read_only=True)
    try:
        stored = [r for part in store.topic(topic).partitions for r in part.iter_records(0)]
    finally:
        asyncio.run(store.close())
    assert sorted(r.key for r in stored) == sorted(by_key)
    assert {r.key: r.value for r in stored} == {k: m.value() for k, m in by_key.items()}


def test_confluent_reads_kafka_python_and_kafka_python_reads_confluent(broker_session):
    kafka = pytest.importorskip("kafka")
    topic = f"ck-cross-{uuid.uuid4().hex[:8]}"
    create_topic(broker_session.bootstrap, topic, 1)
    producer = kafka.KafkaProducer(
        bootstrap_servers=broker_session.bootstrap, compression_type="lz4"
    )
    for i in range(20):
        producer.send(topic, key=b"kp%d" % i, value=b"from kafka-python %d" % i, partition=0)
    producer.flush()
    producer.close()
    produce(broker_session.bootstrap, topic, "snappy", True)
    got = consume(broker_session.bootstrap, topic, 1, 20 + COUNT)
    assert [m.key() for m in got[:20]] == [b"kp%d" % i for i in range(20)]
    assert [m.offset() for m in got] == list(range(20 + COUNT))
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=broker_session.bootstrap,
        consumer_timeout_ms=3000,
        auto_offset_reset="earliest",
    )
    tp = kafka.TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    values = [m.value for m in consumer]
    consumer.close()
    assert len(values) == 20 + COUNT
    assert values[20] == b"value-0-" * 3


async def test_our_network_client_and_confluent_read_each_other(broker_session):
    from millstream.core.client import connect
    from millstream.core.record import TopicPartition

    topic = f"ck-ours-{uuid.uuid4().hex[:8]}"
    create_topic(broker_session.bootstrap, topic, 1)
    connection = await connect(f"millstream://{broker_session.bootstrap}")
    try:
        async with connection.producer(compression="zstd") as producer:
            for i in range(50):
                producer.send(topic, b"ours %d" % i, key=b"o%d" % i, partition=0)
            await producer.flush()
        await asyncio.to_thread(produce, broker_session.bootstrap, topic, "gzip", True)
        got = await asyncio.to_thread(consume, broker_session.bootstrap, topic, 1, 50 + COUNT)
        assert [m.value() for m in got[:50]] == [b"ours %d" % i for i in range(50)]
        consumer = connection.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition(topic, 0)])
        records = []
        deadline = time.monotonic() + 30
        while len(records) < 50 + COUNT and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        await consumer.close()
        assert [r.offset for r in records] == list(range(50 + COUNT))
        assert records[50].key == b"k0" and records[50].value == b"value-0-" * 3
        assert tuple(records[50].headers) == (("h", b"0"),)
    finally:
        await connection.close()
