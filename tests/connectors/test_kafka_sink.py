"""The kafka sink against a real Apache Kafka and a real millstream broker: the conformance kit,
records read back with the client (keys, headers, timestamps, partitions), topic templates,
missing topics, values that cannot be written, and errors that name the redacted URL."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import orjson
import pytest
from broker_server import BrokerServer
from remote_store import RemoteStore

from millstream.connectors.kafka import KafkaSink, KafkaSinkConfig
from millstream.core import ConfigError, ConnectorContext, ConnectorError, Event, EventsRejected
from millstream.core.client import connect
from millstream.core.client.partitioner import partition_for_key
from millstream.core.codecs import TextCodec
from millstream.core.record import StoredRecord, TopicPartition
from millstream.core.testing import SinkConformance

HOUR_AGO = int(time.time() * 1000) - 3_600_000
"""The events' timestamps: recent, so no store's retention (7 days) deletes their records."""


def unique(prefix: str) -> str:
    """A topic name no other test of the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def make_topic(url: str, topic: str, partitions: int = 1) -> None:
    async with await connect(url) as conn:
        admin = conn.admin()
        await admin.create_topic(topic, partitions)
        await admin.close()


async def read_topic(url: str, topic: str) -> list[StoredRecord]:
    """Every record of ``topic`` on the store at ``url``, partition by partition."""
    async with await connect(url) as conn:
        admin = conn.admin()
        description = await admin.describe_topic(topic)
        await admin.close()
        got: list[StoredRecord] = []
        for part in description.partitions:
            if part.latest_offset == 0:
                continue
            consumer = conn.consumer(auto_offset_reset="earliest")
            consumer.assign([TopicPartition(topic, part.partition)])
            records: list[StoredRecord] = []
            while not records or records[-1].offset + 1 < part.latest_offset:
                batch = await consumer.getmany(timeout_ms=2000)
                assert batch, f"{topic}/{part.partition}: no records within 2s"
                records.extend(r for rs in batch.values() for r in rs)
            await consumer.close()
            got.extend(records)
    return got


def read_topic_now(url: str, topic: str) -> list[StoredRecord]:
    """:func:`read_topic` from a plain function called inside a running event loop."""
    out: list[list[StoredRecord]] = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(read_topic(url, topic))))
    thread.start()
    thread.join(60)
    assert out, "reading the topic back failed"
    return out[0]


def new_sink(url: str, topic: str, **settings: Any) -> KafkaSink:
    return KafkaSink(KafkaSinkConfig(url=url, topic=topic, **settings), ConnectorContext("p", "k"))


def events(count: int, topic: str = "readings") -> list[Event]:
    return [
        Event(
            {"n": n},
            key=f"dev-{n % 3}".encode(),
            headers=(("origin", b"plant-1"),),
            timestamp=HOUR_AGO + n,
            topic=topic,
            partition=0,
            offset=n,
        )
        for n in range(count)
    ]


class TestKafkaSinkConformance(SinkConformance):
    sink = KafkaSink

    @pytest.fixture(autouse=True)
    def _remote(self, remote: RemoteStore) -> None:
        self.remote = remote
        self.topic = unique("conf")
        asyncio.run(make_topic(remote.url, self.topic))

    def settings(self) -> dict[str, Any]:
        return {"url": self.remote.url, "topic": self.topic}

    def read_back(self) -> list[Any]:
        return [orjson.loads(r.value or b"") for r in read_topic_now(self.remote.url, self.topic)]

    def make_events(self, count: int, start: int = 0) -> list[Event]:
        # the kit's timestamps are of 2023: a store's retention (7 days) may delete them
        made = super().make_events(count, start)
        return [replace(e, timestamp=HOUR_AGO + (e.offset or 0)) for e in made]

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        base = self.settings()
        return [
            ({**base, "topic": unique("missing")}, "topic"),
            ({**base, "topic": "a b"}, "topic"),
            ({**base, "topic": "x.{value}"}, "topic"),
            ({**base, "url": "mqtt://example.com"}, "url"),
            ({**base, "url": "kafka://127.0.0.1:1"}, "url"),
            ({**base, "acks": 2}, "acks"),
            ({**base, "compression": "brotli"}, "compression"),
            ({**base, "linger": "soon"}, "linger"),
        ]


async def test_records_keep_key_headers_timestamp_and_land_where_kafka_puts_keys(
    remote: RemoteStore,
) -> None:
    topic = unique("keys")
    await make_topic(remote.url, topic, partitions=3)
    sink = new_sink(remote.url, topic)
    await sink.open()
    try:
        await sink.write(events(12))
        await sink.flush()
        got = await read_topic(remote.url, topic)  # flushed: every record is there now
    finally:
        await sink.close()
    assert sorted(orjson.loads(r.value or b"")["n"] for r in got) == list(range(12))
    for record in got:
        n = orjson.loads(record.value or b"")["n"]
        assert record.key == f"dev-{n % 3}".encode()
        assert record.partition == partition_for_key(record.key or b"", 3)
        assert record.headers == (("origin", b"plant-1"),)
        assert record.timestamp == HOUR_AGO + n
    by_key: dict[bytes | None, list[int]] = {}
    for record in sorted(got, key=lambda r: (r.partition, r.offset)):
        by_key.setdefault(record.key, []).append(orjson.loads(record.value or b"")["n"])
    assert all(ns == sorted(ns) for ns in by_key.values())  # in order per key


async def test_a_template_mirrors_each_source_topic_and_creates_what_is_missing(
    remote: RemoteStore,
) -> None:
    prefix = unique("mirror")
    sink = new_sink(remote.url, prefix + ".{topic}", create_topic=True, partitions=2)
    await sink.open()
    try:
        await sink.write(events(3, "orders") + events(2, "refunds"))
        await sink.flush()
    finally:
        await sink.close()
    orders = await read_topic(remote.url, f"{prefix}.orders")
    refunds = await read_topic(remote.url, f"{prefix}.refunds")
    assert len(orders) == 3 and len(refunds) == 2
    async with await connect(remote.url) as conn:
        admin = conn.admin()
        assert len((await admin.describe_topic(f"{prefix}.orders")).partitions) == 2
        await admin.close()


async def test_a_missing_templated_topic_dead_letters_its_events_and_writes_the_rest(
    remote: RemoteStore,
) -> None:
    prefix = unique("part")
    await make_topic(remote.url, f"{prefix}.orders")
    sink = new_sink(remote.url, prefix + ".{topic}")
    await sink.open()
    try:
        with pytest.raises(EventsRejected) as caught:
            await sink.write(events(2, "orders") + events(1, "refunds"))
        await sink.flush()
    finally:
        await sink.close()
    [rejection] = caught.value.rejections
    assert rejection.event.topic == "refunds"
    assert rejection.reason == (
        f"topic '{prefix}.refunds' does not exist on {remote.url}; create it, or set "
        "create_topic: true"
    )
    assert len(await read_topic(remote.url, f"{prefix}.orders")) == 2


async def test_a_missing_fixed_topic_is_refused_at_open(remote: RemoteStore) -> None:
    topic = unique("absent")
    sink = new_sink(remote.url, topic)
    with pytest.raises(ConfigError, match=f"topic {topic!r} does not exist on {remote.url}"):
        await sink.open()
    await sink.close()


async def test_values_that_cannot_be_written_in_the_format_are_rejected(
    remote: RemoteStore,
) -> None:
    topic = unique("fmt")
    await make_topic(remote.url, topic)
    sink = new_sink(remote.url, topic, format="bytes")
    await sink.open()
    try:
        good = Event(b"raw bytes", topic="t", partition=0, offset=0)
        bad = Event({"a": 1}, topic="t", partition=0, offset=1)
        with pytest.raises(EventsRejected) as caught:
            await sink.write([good, bad])
        await sink.flush()
    finally:
        await sink.close()
    assert [r.event for r in caught.value.rejections] == [bad]
    assert [r.value for r in await read_topic(remote.url, topic)] == [b"raw bytes"]


async def test_by_default_values_are_written_as_their_topic_holds_them(
    remote: RemoteStore,
) -> None:
    topic = unique("codec")
    await make_topic(remote.url, topic)
    context = ConnectorContext("p", "k", codecs={"notes": TextCodec()})
    sink = KafkaSink(KafkaSinkConfig(url=remote.url, topic=topic), context)
    await sink.open()
    try:
        await sink.write([Event("plain text", topic="notes"), Event({"n": 1}, topic="json")])
        await sink.flush()
    finally:
        await sink.close()
    assert [r.value for r in await read_topic(remote.url, topic)] == [b"plain text", b'{"n":1}']


@pytest.mark.parametrize("compression", ["gzip", "lz4", "zstd", "snappy"])
async def test_compressed_batches_are_read_back(remote: RemoteStore, compression: str) -> None:
    topic = unique("zip")
    await make_topic(remote.url, topic)
    sink = new_sink(remote.url, topic, compression=compression, acks=1, linger="20ms")
    await sink.open()
    try:
        await sink.write(events(50))
        await sink.flush()
    finally:
        await sink.close()
    assert len(await read_topic(remote.url, topic)) == 50


async def test_an_unreachable_cluster_is_one_line_with_the_password_masked() -> None:
    sink = new_sink("kafka://alice:s3cr3t@127.0.0.1:1", "t")
    with pytest.raises(ConnectorError) as caught:
        await sink.open()
    await sink.close()
    message = str(caught.value)
    assert message.startswith("kafka sink 'k': url: cannot reach kafka://alice:****@127.0.0.1:1")
    assert "s3cr3t" not in message and "\n" not in message


async def test_a_broker_restart_before_a_flush_is_waited_out_and_loses_nothing(
    broker: BrokerServer,
) -> None:
    url, topic = f"millstream://{broker.bootstrap}", unique("restart")
    await make_topic(url, topic)
    sink = new_sink(url, topic)
    await sink.open()
    try:
        await sink.write(events(20))
        await sink.flush()
        await asyncio.to_thread(broker.stop)
        await sink.write([replace(e, value={"n": e.value["n"] + 20}) for e in events(20)])
        flushing = asyncio.ensure_future(sink.flush())
        await asyncio.sleep(1.5)
        assert not flushing.done(), "flush returned while the broker was down"
        await asyncio.to_thread(broker.start)
        await asyncio.wait_for(flushing, 60)
    finally:
        await sink.close()
    got = sorted(orjson.loads(r.value or b"")["n"] for r in await read_topic(url, topic))
    assert got == list(range(40))


async def test_the_other_side_may_be_an_embedded_store(tmp_path: Path) -> None:
    url = f"file:{tmp_path / 'other'}"
    await make_topic(url, "landing")
    sink = new_sink(url, "landing", create_topic=False)
    await sink.open()
    try:
        await sink.write(events(5))
        await sink.flush()
    finally:
        await sink.close()
    got = await read_topic(url, "landing")
    assert [orjson.loads(r.value or b"")["n"] for r in got] == [0, 1, 2, 3, 4]
    assert got[0].key == b"dev-0" and got[0].timestamp == HOUR_AGO
