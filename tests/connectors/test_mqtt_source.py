"""The mqtt source against a real Mosquitto: wildcards, QoS 0/1/2, persistent sessions, the topic
as header and key, acknowledgements only after ``ack``, undecodable payloads."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from mosquitto_server import MosquittoServer

from millstream.connectors.mqtt import MqttSinkConfig, MqttSource, MqttSourceConfig
from millstream.core import ConnectorContext, ConnectorError, Event, SourceBatch
from millstream.core.testing import SourceConformance


def make_session(server: MosquittoServer, client_id: str, topic: str, qos: int = 1) -> None:
    """Create the persistent session ``client_id`` subscribed to ``topic``, then leave, so that
    messages published from now on are kept for it."""
    source = MqttSource(
        MqttSourceConfig(url=server.url, topics=[topic], client_id=client_id, qos=qos),
        ConnectorContext("p", "s"),
    )

    async def run() -> None:
        await source.open(None)
        await source.close()

    asyncio.run(run())


def publish(server: MosquittoServer, items: list[tuple[str, bytes]], qos: int = 1) -> None:
    """Publish each (topic, payload) with a paho client, waiting for the broker's ack."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.max_inflight_messages_set(20)
    client.connect("127.0.0.1", server.port)
    client.loop_start()
    try:
        infos = [client.publish(topic, payload, qos) for topic, payload in items]
        for info in infos:
            info.wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


async def read_events(
    source: MqttSource, count: int, timeout: float = 10.0, ack: bool = True
) -> tuple[list[Event], list[SourceBatch]]:
    """Read until ``count`` events and rejections came; acknowledge each batch when ``ack``."""
    events: list[Event] = []
    batches: list[SourceBatch] = []
    seen = 0
    while seen < count:
        batch = await asyncio.wait_for(source.read(), timeout)
        batches.append(batch)
        events.extend(batch.events)
        seen += len(batch.events) + len(batch.rejected)
        if ack:
            await source.ack(batch.position)
    return events, batches


async def nothing_more(source: MqttSource, wait: float = 0.5) -> None:
    try:
        batch = await asyncio.wait_for(source.read(), wait)
    except TimeoutError:
        return
    raise AssertionError(f"expected nothing more, got {batch}")


def new_source(server: MosquittoServer, **settings: Any) -> MqttSource:
    settings.setdefault("topics", ["t/#"])
    name = settings.pop("n", "s")
    return MqttSource(MqttSourceConfig(url=server.url, **settings), ConnectorContext("p", name))


class TestMqttSourceConformance(SourceConformance):
    source = MqttSource

    @pytest.fixture(autouse=True)
    def _broker(self, mosquitto: MosquittoServer) -> None:
        self.broker = mosquitto

    def prepare(self, count: int) -> dict[str, Any]:
        client_id, topic = f"c-{uuid.uuid4().hex[:8]}", f"conf/{uuid.uuid4().hex[:8]}"
        make_session(self.broker, client_id, f"{topic}/#")
        self.broker.publish(f"{topic}/x", (b'{"n": %d}' % n for n in range(count)))
        self.prepared = {
            "url": self.broker.url,
            "topics": [f"{topic}/#"],
            "client_id": client_id,
            "batch_size": 7,
        }
        return self.prepared

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        port = self.broker.port + 1 if self.broker.port < 65535 else 1
        bad: list[tuple[dict[str, Any], str]] = [
            ({"url": "http://localhost"}, "url"),
            ({"url": f"mqtt://127.0.0.1:{port}", "connect_timeout": "2s"}, "url"),
            ({"topics": ["a/#/b"]}, "topics"),
            ({"qos": 3}, "qos"),
            ({"format": "xml"}, "format"),
            ({"ca_file": "ca.pem"}, "ca_file"),
        ]
        return [({**self.prepared, **settings}, name) for settings, name in bad]


async def test_wildcards_pick_topics_and_the_topic_is_a_header_and_optionally_the_key(
    mosquitto: MosquittoServer,
) -> None:
    source = new_source(mosquitto, topics=["sensors/+/temp", "alerts/#"], key="topic")
    await source.open(None)
    try:
        items = [
            ("sensors/a/temp", b'{"t": 1}'),
            ("sensors/a/humidity", b'{"t": 2}'),  # not matched
            ("sensors/a/b/temp", b'{"t": 3}'),  # + is one level only
            ("alerts/fire/kitchen", b'{"t": 4}'),
            ("alerts", b'{"t": 5}'),  # # matches the parent level too
            ("other/x", b'{"t": 6}'),
        ]
        await asyncio.to_thread(publish, mosquitto, items)
        events, _ = await read_events(source, 3)
        await nothing_more(source)
    finally:
        await source.close()
    got = {e.header("mqtt.topic"): e for e in events}
    assert set(got) == {b"sensors/a/temp", b"alerts/fire/kitchen", b"alerts"}
    assert got[b"sensors/a/temp"].value == {"t": 1}
    assert got[b"alerts"].key == b"alerts"


async def test_without_key_topic_events_have_no_key(mosquitto: MosquittoServer) -> None:
    source = new_source(mosquitto, format="text")
    await source.open(None)
    try:
        await asyncio.to_thread(publish, mosquitto, [("t/1", "héllo".encode())])
        [event], _ = await read_events(source, 1)
    finally:
        await source.close()
    assert event.key is None and event.value == "héllo"
    assert event.headers == (("mqtt.topic", b"t/1"),)


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_each_qos_delivers(mosquitto: MosquittoServer, qos: int) -> None:
    source = new_source(mosquitto, qos=qos, format="bytes")
    await source.open(None)
    try:
        payloads = [b"m%d" % i for i in range(50)]
        await asyncio.to_thread(publish, mosquitto, [("t/q", p) for p in payloads], 2)
        events, _ = await read_events(source, 50)
        await nothing_more(source, 0.3)
    finally:
        await source.close()
    assert [e.value for e in events] == payloads  # in order, once each


async def test_a_persistent_session_keeps_what_was_published_while_away(
    mosquitto: MosquittoServer,
) -> None:
    await asyncio.to_thread(make_session, mosquitto, "keeper", "t/#")
    await asyncio.to_thread(publish, mosquitto, [("t/a", b'{"n": %d}' % i) for i in range(20)])
    source = new_source(mosquitto, client_id="keeper")
    await source.open(None)
    try:
        events, _ = await read_events(source, 20)
    finally:
        await source.close()
    assert [e.value["n"] for e in events] == list(range(20))


async def test_a_clean_session_forgets_what_was_published_while_away(
    mosquitto: MosquittoServer,
) -> None:
    first = new_source(mosquitto, client_id="forgetful", clean_session=True)
    await first.open(None)
    await first.close()
    await asyncio.to_thread(publish, mosquitto, [("t/a", b"1")])
    again = new_source(mosquitto, client_id="forgetful", clean_session=True)
    await again.open(None)
    try:
        await nothing_more(again)
    finally:
        await again.close()


async def test_the_default_client_id_is_stable_so_the_session_is_found_again(
    mosquitto: MosquittoServer,
) -> None:
    first = new_source(mosquitto, n="readings")
    assert first.client_id == "millstream-p-readings"
    await first.open(None)
    await first.close()
    await asyncio.to_thread(publish, mosquitto, [("t/a", b"7")])
    again = new_source(mosquitto, n="readings")
    await again.open(None)
    try:
        [event], _ = await read_events(again, 1)
    finally:
        await again.close()
    assert event.value == 7


@pytest.mark.parametrize("version", ["5", "3.1.1"])
@pytest.mark.parametrize("qos", [1, 2])
async def test_only_acknowledged_messages_are_forgotten_by_the_broker(
    mosquitto: MosquittoServer, qos: int, version: str
) -> None:
    """Read 10, acknowledge the first batch only, leave: the rest come again, the first not."""
    client_id = f"acker-{qos}"
    settings = {"client_id": client_id, "qos": qos, "batch_size": 4, "version": version}
    await asyncio.to_thread(make_session, mosquitto, client_id, "t/#", qos)
    await asyncio.to_thread(publish, mosquitto, [("t/a", b'{"n": %d}' % i) for i in range(10)], qos)
    first = new_source(mosquitto, **settings)
    await first.open(None)
    try:
        events, batches = await read_events(first, 10, ack=False)
        await first.ack(batches[0].position)
    finally:
        await first.close()
    assert [e.value["n"] for e in events] == list(range(10))
    again = new_source(mosquitto, **settings)
    await again.open(None)
    try:
        events, _ = await read_events(again, 6)
        await nothing_more(again, 0.3)
    finally:
        await again.close()
    assert [e.value["n"] for e in events] == list(range(4, 10))


async def test_a_payload_that_does_not_decode_is_rejected_naming_the_topic(
    mosquitto: MosquittoServer,
) -> None:
    source = new_source(mosquitto, client_id="picky", batch_size=10)
    await source.open(None)
    items = [("t/good", b'{"n": 1}'), ("t/bad", b"{not json"), ("t/good", b'{"n": 2}')]
    try:
        await asyncio.to_thread(publish, mosquitto, items)
        events, batches = await read_events(source, 3)
    finally:
        await source.close()
    assert [e.value for e in events] == [{"n": 1}, {"n": 2}]
    [rejection] = [r for b in batches for r in b.rejected]
    assert rejection.event.value == b"{not json"
    assert rejection.event.header("mqtt.topic") == b"t/bad"
    assert "MQTT topic 't/bad'" in rejection.reason and "not valid JSON" in rejection.reason
    again = new_source(mosquitto, client_id="picky")  # acknowledged with its batch: gone
    await again.open(None)
    try:
        await nothing_more(again, 0.3)
    finally:
        await again.close()


async def test_settings_errors_are_one_line_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="'\\+' must be a whole level"):
        MqttSourceConfig(url="mqtt://h", topics=["a/b+"])
    with pytest.raises(ValueError, match="scheme must be mqtt or mqtts"):
        MqttSourceConfig(url="tcp://h:1883", topics=["a"])
    with pytest.raises(ValueError, match="password needs a username"):
        MqttSourceConfig(url="mqtt://h", topics=["a"], password="x")
    config = MqttSourceConfig(url="mqtts://h", topics="a", version=5)
    assert config.topics == ["a"] and config.version == "5"


def test_times_are_durations_like_every_other_connectors() -> None:
    config = MqttSourceConfig(
        url="mqtt://h", topics="a", keepalive="1m", connect_timeout="500ms", session_expiry="1d"
    )
    assert config.keepalive == timedelta(minutes=1)
    assert config.connect_timeout == timedelta(milliseconds=500)
    assert config.session_expiry == timedelta(days=1)
    assert MqttSinkConfig(url="mqtt://h", topic="a", flush_timeout="2s").flush_timeout == (
        timedelta(seconds=2)
    )
    with pytest.raises(ValueError, match="has no unit"):
        MqttSourceConfig(url="mqtt://h", topics="a", reconnect_max=30)
    with pytest.raises(ValueError, match="keepalive"):
        MqttSourceConfig(url="mqtt://h", topics="a", keepalive="1s")


async def test_an_unreachable_broker_is_a_clear_error_at_open(mosquitto: MosquittoServer) -> None:
    mosquitto.stop()
    source = new_source(mosquitto, connect_timeout="2s")
    with pytest.raises(ConnectorError, match=r"mqtt source 's': url: cannot reach mqtt://"):
        await source.open(None)
    await source.close()


async def test_unread_qos_0_messages_are_held_to_max_inflight(mosquitto: MosquittoServer) -> None:
    """QoS 0 has no window of unacknowledged messages: the client stops reading its socket
    once max_inflight wait unread, and goes on when the pipeline reads."""
    source = new_source(mosquitto, qos=0, max_inflight=100, batch_size=1000, format="bytes")
    await source.open(None)
    try:
        await asyncio.to_thread(mosquitto.publish, "t/z", [b"%d" % i for i in range(2000)], qos=0)
        await asyncio.sleep(0.5)
        first = await source.read()
        assert len(first.events) <= 100
        events, _ = await read_events(source, 2000 - len(first.events))
    finally:
        await source.close()
    got = [int(e.value) for e in first.events + events]
    assert got == sorted(got) and len(got) == len(set(got))
