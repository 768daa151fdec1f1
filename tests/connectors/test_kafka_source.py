"""The kafka source against a real Apache Kafka and a real millstream broker: the conformance
kit, offsets committed on the other cluster only when acknowledged, a restart resuming after
the acknowledged records, values that do not decode, and errors that name the redacted URL."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from broker_server import BrokerServer
from remote_store import RemoteStore

from millstream.connectors.kafka import KafkaSource, KafkaSourceConfig
from millstream.core import (
    ConfigError,
    ConnectorContext,
    ConnectorError,
    SourceBatch,
    StoreError,
)
from millstream.core.client import connect
from millstream.core.record import Record, TopicPartition
from millstream.core.testing import SourceConformance


def unique(prefix: str) -> str:
    """A topic or group name no other test of the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def produce(
    url: str,
    topic: str,
    values: list[bytes],
    *,
    partitions: int = 1,
    keys: list[bytes | None] | None = None,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> None:
    """Create ``topic`` (if needed) on the store at ``url`` and write ``values`` to it,
    acknowledged."""
    async with await connect(url) as conn:
        admin = conn.admin()
        if topic not in await admin.list_topics():
            await admin.create_topic(topic, partitions)
        await admin.close()
        keys = keys or [None] * len(values)
        records = [Record(k, v, headers, 0) for k, v in zip(keys, values, strict=True)]
        async with conn.producer() as producer:
            await producer.send_batch(topic, records).confirmed()


async def joined(url: str, group: str, timeout: float = 20) -> None:
    """Wait until ``group`` on the store at ``url`` has a member holding partitions."""
    deadline = asyncio.get_running_loop().time() + timeout
    async with await connect(url) as conn:
        admin = conn.admin()
        while True:
            try:
                if any(m.assignment for m in (await admin.describe_group(group)).members):
                    break
            except StoreError:  # Kafka: not known yet, or its coordinator still loading
                pass
            assert asyncio.get_running_loop().time() < deadline, f"{group} never formed"
            await asyncio.sleep(0.1)
        await admin.close()


def new_source(url: str, topic: str, **settings: Any) -> KafkaSource:
    settings.setdefault("group", unique("g"))
    config = KafkaSourceConfig(url=url, topics=topic, **settings)
    return KafkaSource(config, ConnectorContext("p", "bridge"))


async def read_events(source: KafkaSource, count: int, timeout: float = 20) -> list[SourceBatch]:
    """Batches until ``count`` events and rejections came."""
    batches: list[SourceBatch] = []
    seen = 0
    while seen < count:
        batch = await asyncio.wait_for(source.read(), timeout)
        assert batch is not None
        batches.append(batch)
        seen += len(batch.events) + len(batch.rejected)
    return batches


class TestKafkaSourceConformance(SourceConformance):
    source = KafkaSource

    @pytest.fixture(autouse=True)
    def _remote(self, remote: RemoteStore) -> None:
        self.remote = remote

    def prepare(self, count: int) -> dict[str, Any]:
        topic = unique("conf")
        values = [orjson.dumps({"n": n}) for n in range(count)]
        keys: list[bytes | None] = [f"k{n}".encode() for n in range(count)]
        asyncio.run(produce(self.remote.url, topic, values, keys=keys, headers=(("h", b"1"),)))
        return {"url": self.remote.url, "topics": topic, "group": unique("g"), "batch_size": 7}

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        base = {"url": self.remote.url, "topics": unique("missing")}
        return [
            (base, "topics"),
            ({**base, "topics": "no spaces"}, "topics"),
            ({**base, "url": "http://example.com"}, "url"),
            ({**base, "url": "kafka://127.0.0.1:1"}, "url"),
            ({**base, "batch_size": 0}, "batch_size"),
            ({**base, "start": "middle"}, "start"),
        ]


async def test_offsets_are_committed_on_the_other_cluster_only_when_acknowledged(
    remote: RemoteStore,
) -> None:
    topic, group = unique("acks"), unique("g")
    await produce(remote.url, topic, [orjson.dumps({"n": n}) for n in range(10)])
    tp = TopicPartition(topic, 0)
    source = new_source(remote.url, topic, group=group, batch_size=4)
    await source.open(None)
    try:
        first = await source.read()
        second = await source.read()
        assert first is not None and second is not None
        assert [e.value for e in first.events] == [{"n": n} for n in range(4)]
        assert first.position == {topic: {"0": 4}} and second.position == {topic: {"0": 8}}
        async with await connect(remote.url) as conn:
            admin = conn.admin()
            before = await admin.describe_group(group)
            assert all(o.committed is None for o in before.offsets if o.partition == 0)
            await source.ack(first.position)
            after = await admin.describe_group(group)
            assert [(o.topic, o.partition, o.committed) for o in after.offsets] == [
                (tp.topic, tp.partition, 4)
            ]
            await admin.close()
    finally:
        await source.close()
    # a new instance of the group (no stored position) goes on after the commit
    again = new_source(remote.url, topic, group=group, batch_size=100)
    await again.open(None)
    try:
        [batch] = await read_events(again, 6)
        assert [e.value["n"] for e in batch.events] == [4, 5, 6, 7, 8, 9]
    finally:
        await again.close()


async def test_the_stored_position_wins_over_an_older_commit(remote: RemoteStore) -> None:
    """The runtime stores a position, then acks: a stop between the two leaves the group's
    commit behind the position, and the restart must still not read acknowledged records."""
    topic, group = unique("ahead"), unique("g")
    await produce(remote.url, topic, [orjson.dumps({"n": n}) for n in range(6)])
    source = new_source(remote.url, topic, group=group, batch_size=3)
    await source.open({topic: {"0": 4}})
    try:
        [batch] = await read_events(source, 2)
        assert [e.value["n"] for e in batch.events] == [4, 5]
        assert batch.position == {topic: {"0": 6}}
    finally:
        await source.close()


async def test_a_value_that_is_not_json_is_rejected_with_its_place(remote: RemoteStore) -> None:
    topic = unique("bad")
    await produce(
        remote.url,
        topic,
        [b'{"n": 0}', b"\xff not json", b'{"n": 2}'],
        keys=[b"a", b"b", b"c"],
        headers=(("origin", b"plant-1"),),
    )
    source = new_source(remote.url, topic)
    await source.open(None)
    try:
        batches = await read_events(source, 3)
    finally:
        await source.close()
    events = [e for b in batches for e in b.events]
    rejected = [r for b in batches for r in b.rejected]
    assert [(e.value, e.key, e.headers) for e in events] == [
        ({"n": 0}, b"a", (("origin", b"plant-1"),)),
        ({"n": 2}, b"c", (("origin", b"plant-1"),)),
    ]
    [rejection] = rejected
    assert rejection.event.value == b"\xff not json" and rejection.event.key == b"b"
    assert rejection.reason.startswith(
        f"kafka topic {topic!r} partition 0 offset 1: the value is not valid JSON"
    )
    assert batches[-1].position == {topic: {"0": 3}}  # the rejected record is covered


@pytest.mark.parametrize(("fmt", "wanted"), [("text", "plain words"), ("bytes", b"plain words")])
async def test_text_and_bytes_formats(remote: RemoteStore, fmt: str, wanted: Any) -> None:
    topic = unique("fmt")
    await produce(remote.url, topic, [b"plain words"])
    source = new_source(remote.url, topic, format=fmt)
    await source.open(None)
    try:
        [batch] = await read_events(source, 1)
    finally:
        await source.close()
    assert [e.value for e in batch.events] == [wanted]


async def test_several_topics_and_partitions_make_one_position(remote: RemoteStore) -> None:
    a, b = unique("a"), unique("b")
    await produce(remote.url, a, [orjson.dumps({"n": n}) for n in range(6)], partitions=2)
    await produce(remote.url, b, [orjson.dumps({"n": n}) for n in range(3)])
    source = KafkaSource(
        KafkaSourceConfig(url=remote.url, topics=[a, b], group=unique("g")),
        ConnectorContext("p", "bridge"),
    )
    await source.open(None)
    try:
        batches = await read_events(source, 9)
    finally:
        await source.close()
    position = batches[-1].position
    assert set(position) == {a, b}
    assert sum(position[a].values()) == 6 and position[b] == {"0": 3}


async def test_start_latest_skips_what_was_there(remote: RemoteStore) -> None:
    topic, group = unique("latest"), unique("g")
    await produce(remote.url, topic, [b'{"old": true}'])
    source = new_source(remote.url, topic, start="latest", group=group)
    await source.open(None)
    try:
        reading = asyncio.ensure_future(source.read())
        await joined(remote.url, group)
        done, _ = await asyncio.wait([reading], timeout=1)
        assert not done, "read gave the record written before the start"
        await produce(remote.url, topic, [b'{"new": true}'])
        batch = await asyncio.wait_for(reading, 20)
    finally:
        await source.close()
    assert batch is not None and [e.value for e in batch.events] == [{"new": True}]


def test_the_default_group_is_named_after_the_pipeline_and_source() -> None:
    config = KafkaSourceConfig(url="kafka://127.0.0.1:9092", topics="t")
    source = KafkaSource(config, ConnectorContext("orders", "from-kafka"))
    assert source.group == "millstream-orders-from-kafka"


async def test_an_unreachable_cluster_is_one_line_with_the_password_masked() -> None:
    config = KafkaSourceConfig(url="kafka://alice:s3cr3t@127.0.0.1:1", topics="t")
    source = KafkaSource(config, ConnectorContext("p", "bridge"))
    with pytest.raises(ConnectorError) as caught:
        await source.open(None)
    await source.close()
    message = str(caught.value)
    assert message.startswith("kafka source 'bridge': url: cannot reach kafka://alice:****@")
    assert "s3cr3t" not in message and "\n" not in message
    assert config.model_dump(mode="json")["url"] == "kafka://alice:****@127.0.0.1:1"


async def test_a_missing_topic_names_the_setting(remote: RemoteStore) -> None:
    topic = unique("nope")
    source = new_source(remote.url, topic)
    with pytest.raises(ConfigError, match=f"topic {topic!r} does not exist on {remote.url}"):
        await source.open(None)
    await source.close()


async def test_a_position_of_another_source_is_refused(remote: RemoteStore) -> None:
    source = new_source(remote.url, "t")
    with pytest.raises(ConnectorError, match="is not a position of this source"):
        await source.open({"file": "a.log", "offset": 3})
    await source.close()


async def test_a_url_the_client_cannot_read_names_the_setting() -> None:
    config = KafkaSourceConfig(url="kafka://alice:s3cr3t@broker-without-port", topics="t")
    source = KafkaSource(config, ConnectorContext("p", "bridge"))
    with pytest.raises(ConfigError) as caught:
        await source.open(None)
    await source.close()
    assert caught.value.path == "config.url"
    assert "s3cr3t" not in str(caught.value) and "alice:****@" in str(caught.value)


async def test_a_broker_restart_while_reading_is_waited_out_and_loses_nothing(
    broker: BrokerServer, caplog: pytest.LogCaptureFixture
) -> None:
    url, topic, group = f"millstream://{broker.bootstrap}", unique("restart"), unique("g")
    await produce(url, topic, [orjson.dumps({"n": n}) for n in range(10)])
    source = new_source(url, topic, group=group, batch_size=10)
    await source.open(None)
    got: list[int] = []
    try:
        [first] = await read_events(source, 10)
        got.extend(e.value["n"] for e in first.events)
        await source.ack(first.position)
        await asyncio.to_thread(broker.stop)
        reading = asyncio.ensure_future(source.read())
        await asyncio.sleep(1.5)
        assert not reading.done(), "read returned while the broker was down"
        await asyncio.to_thread(broker.start)
        await produce(url, topic, [orjson.dumps({"n": n}) for n in range(10, 30)])
        batch = await asyncio.wait_for(reading, 30)
        assert batch is not None
        got.extend(e.value["n"] for e in batch.events)
        while len(set(got)) < 30:
            batch = await asyncio.wait_for(source.read(), 20)
            assert batch is not None
            got.extend(e.value["n"] for e in batch.events)
        await source.ack(batch.position)
    finally:
        await source.close()
    assert got == list(range(30))  # nothing lost, nothing acknowledged read again
    assert f"reading from {url} failed" in caplog.text


async def test_the_other_side_may_be_an_embedded_store(tmp_path: Path) -> None:
    url = f"file:{tmp_path / 'other'}"
    await produce(url, "landing", [orjson.dumps({"n": n}) for n in range(6)])
    source = new_source(url, "landing", group="bridge", batch_size=4)
    await source.open(None)
    try:
        first = await source.read()
        assert first is not None and [e.value["n"] for e in first.events] == [0, 1, 2, 3]
        await source.ack(first.position)
    finally:
        await source.close()
    again = new_source(url, "landing", group="bridge")  # no position: the group's commit
    await again.open(None)
    try:
        [rest] = await read_events(again, 2)
    finally:
        await again.close()
    assert [e.value["n"] for e in rest.events] == [4, 5]
