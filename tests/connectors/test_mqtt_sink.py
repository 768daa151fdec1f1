"""The mqtt sink against a real Mosquitto: topic templates, QoS, retain, flush meaning the broker
has the messages, and events it cannot publish."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from mosquitto_server import MosquittoServer

from millstream.connectors.mqtt import MqttSink, MqttSinkConfig, TopicTemplate
from millstream.core import ConnectorContext, ConnectorError, Event, EventsRejected
from millstream.core.testing import SinkConformance


def new_sink(server: MosquittoServer, **settings: Any) -> MqttSink:
    settings.setdefault("topic", "out/{topic}")
    return MqttSink(MqttSinkConfig(url=server.url, **settings), ConnectorContext("p", "k"))


class TestMqttSinkConformance(SinkConformance):
    sink = MqttSink

    @pytest.fixture(autouse=True)
    def _broker(self, mosquitto: MosquittoServer) -> Any:
        self.broker = mosquitto
        self.subscriber = mosquitto.subscribe("conf/#", qos=1)
        yield
        self.subscriber.close()

    def settings(self) -> dict[str, Any]:
        return {"url": self.broker.url, "topic": "conf/{topic}/{key}", "qos": 1}

    def read_back(self) -> list[Any]:
        return [orjson.loads(m.payload) for m in self.subscriber.settled()]

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        port = self.broker.port + 1 if self.broker.port < 65535 else 1
        base = self.settings()
        bad: list[tuple[dict[str, Any], str]] = [
            ({"topic": "a/{nope}"}, "topic"),
            ({"topic": "a/+/b"}, "topic"),
            ({"qos": 5}, "qos"),
            ({"url": f"mqtt://127.0.0.1:{port}", "connect_timeout": "2s"}, "url"),
        ]
        return [({**base, **settings}, name) for settings, name in bad]


async def test_the_topic_template_takes_fields_of_each_event(mosquitto: MosquittoServer) -> None:
    subscriber = mosquitto.subscribe("sensors/#")
    sink = new_sink(mosquitto, topic="sensors/{value.device_id}/temp")
    await sink.open()
    try:
        events = [Event({"device_id": f"d{i % 2}", "temp": 20 + i}) for i in range(4)]
        await sink.write(events)
        await sink.flush()
        got = await asyncio.to_thread(subscriber.wait_for, 4)
    finally:
        await sink.close()
        subscriber.close()
    assert [(m.topic, orjson.loads(m.payload)["temp"]) for m in got] == [
        ("sensors/d0/temp", 20),
        ("sensors/d1/temp", 21),
        ("sensors/d0/temp", 22),
        ("sensors/d1/temp", 23),
    ]


async def test_an_event_without_a_topic_is_refused_and_the_others_are_published(
    mosquitto: MosquittoServer,
) -> None:
    subscriber = mosquitto.subscribe("s/#")
    sink = new_sink(mosquitto, topic="s/{value.id}")
    await sink.open()
    try:
        events = [Event({"id": "a"}), Event({"other": 1}), Event({"id": "c/+"}), Event({"id": 3})]
        with pytest.raises(EventsRejected) as refused:
            await sink.write(events)
        await sink.flush()
        got = await asyncio.to_thread(subscriber.settled)
    finally:
        await sink.close()
        subscriber.close()
    assert [m.topic for m in got] == ["s/a", "s/3"]
    reasons = [r.reason for r in refused.value.rejections]
    assert [r.event.value for r in refused.value.rejections] == [{"other": 1}, {"id": "c/+"}]
    assert "the event has no value.id" in reasons[0]
    assert "cannot hold +, # or NUL" in reasons[1]


@pytest.mark.parametrize("qos", [0, 1, 2])
async def test_messages_go_out_with_the_qos_asked_for(mosquitto: MosquittoServer, qos: int) -> None:
    subscriber = mosquitto.subscribe("q/#", qos=2)
    sink = new_sink(mosquitto, topic="q/x", qos=qos, format="text")
    await sink.open()
    try:
        await sink.write([Event(f"m{i}") for i in range(30)])
        await sink.flush()
        got = await asyncio.to_thread(subscriber.wait_for, 30)
    finally:
        await sink.close()
        subscriber.close()
    assert [m.payload for m in got] == [f"m{i}".encode() for i in range(30)]
    assert {m.qos for m in got} == {qos}


async def test_retained_messages_reach_later_subscribers(mosquitto: MosquittoServer) -> None:
    sink = new_sink(mosquitto, topic="state/{key}", retain=True)
    await sink.open()
    try:
        await sink.write([Event({"on": True}, key=b"lamp"), Event({"on": False}, key=b"lamp")])
        await sink.write([Event({"on": True}, key=b"fan")])
        await sink.flush()
    finally:
        await sink.close()
    later = await asyncio.to_thread(mosquitto.subscribe, "state/#")
    try:
        got = await asyncio.to_thread(later.settled)
    finally:
        later.close()
    assert sorted((m.topic, orjson.loads(m.payload), m.retain) for m in got) == [
        ("state/fan", {"on": True}, True),
        ("state/lamp", {"on": False}, True),  # the last one of the topic
    ]


async def test_without_retain_later_subscribers_get_nothing(mosquitto: MosquittoServer) -> None:
    sink = new_sink(mosquitto, topic="state/x")
    await sink.open()
    try:
        await sink.write([Event(1)])
        await sink.flush()
    finally:
        await sink.close()
    later = await asyncio.to_thread(mosquitto.subscribe, "state/#")
    try:
        assert await asyncio.to_thread(later.settled) == []
    finally:
        later.close()


async def test_flush_waits_for_the_broker_and_fails_after_its_timeout(
    mosquitto: MosquittoServer,
) -> None:
    """With the broker gone a flush cannot be true: it fails; after the broker is back the
    client sends what was waiting, and a flush returns once the broker has it."""
    sink = new_sink(mosquitto, topic="f/x", flush_timeout="1500ms", format="text")
    await sink.open()
    try:
        await asyncio.to_thread(mosquitto.stop)
        await sink.write([Event("while away")])
        with pytest.raises(ConnectorError, match="not acknowledged by mqtt://.* within 1500ms"):
            await sink.flush()
        await asyncio.to_thread(mosquitto.start)
        subscriber = await asyncio.to_thread(mosquitto.subscribe, "f/#")
        try:
            await sink.write([Event("again")])  # the runtime's retry writes the batch again
            await sink.flush()
            got = await asyncio.to_thread(subscriber.settled)
        finally:
            subscriber.close()
    finally:
        await sink.close()
    assert b"again" in [m.payload for m in got]


async def test_failed_flushes_retried_by_the_pipeline_publish_each_event_once(
    mosquitto: MosquittoServer,
) -> None:
    """The pipeline's retry writes a batch again after each failed flush; what paho still
    holds from the earlier tries is not queued a second time, so each event arrives once."""
    sink = new_sink(mosquitto, topic="d/x", flush_timeout="3s", reconnect_max="1s")
    await sink.open()
    events = [Event({"n": i}, topic="t", partition=0, offset=i) for i in range(3)]
    try:
        await asyncio.to_thread(mosquitto.stop)
        for _ in range(3):
            await sink.write(events)
            with pytest.raises(ConnectorError, match="not acknowledged"):
                await sink.flush()
        await asyncio.to_thread(mosquitto.start)
        subscriber = await asyncio.to_thread(mosquitto.subscribe, "d/#", qos=1)
        try:
            await sink.write(events)
            await sink.flush()
            got = await asyncio.to_thread(subscriber.settled, 0.5)
        finally:
            subscriber.close()
    finally:
        await sink.close()
    assert sorted(orjson.loads(m.payload)["n"] for m in got) == [0, 1, 2]


async def test_formats_write_payloads(mosquitto: MosquittoServer) -> None:
    subscriber = mosquitto.subscribe("fmt/#")
    try:
        for fmt, value in (("json", {"a": [1, 2]}), ("text", 42), ("bytes", b"\x00\xff")):
            sink = new_sink(mosquitto, topic=f"fmt/{fmt}", format=fmt)
            await sink.open()
            try:
                await sink.write([Event(value)])
                await sink.flush()
            finally:
                await sink.close()
        got = await asyncio.to_thread(subscriber.wait_for, 3)
    finally:
        subscriber.close()
    assert {m.topic: m.payload for m in got} == {
        "fmt/json": b'{"a":[1,2]}',
        "fmt/text": b"42",
        "fmt/bytes": b"\x00\xff",
    }


def test_topic_templates() -> None:
    event = Event({"a": {"b": "x"}, "l": [5, 6], "f": True}, key=b"k1", topic="t", partition=2)
    render = lambda text: TopicTemplate(text).render(event)  # noqa: E731
    assert render("{topic}/{partition}/{key}") == "t/2/k1"
    assert render("x/{value.a.b}/{value.l.1}/{value.f}") == "x/x/6/true"
    assert render("{{literal}}/{ value.a.b }") == "{literal}/x"
    assert TopicTemplate("fixed/topic").constant == "fixed/topic"
    with pytest.raises(ValueError, match="has no value.a.c"):
        render("{value.a.c}")
    with pytest.raises(ValueError, match="is a dict"):
        render("{value.a}")
    for bad in ("{value", "a/{x}", "a/#", ""):
        with pytest.raises(ValueError):
            TopicTemplate(bad)


@pytest.mark.parametrize("qos", [1, 2])
async def test_mqtt_3_1_1_publishes_too(mosquitto: MosquittoServer, qos: int) -> None:
    subscriber = mosquitto.subscribe("v3/#")
    sink = new_sink(mosquitto, topic="v3/{value.n}", version="3.1.1", qos=qos)
    await sink.open()
    try:
        await sink.write([Event({"n": n}) for n in range(50)])
        await sink.flush()
        got = await asyncio.to_thread(subscriber.wait_for, 50)
    finally:
        await sink.close()
        subscriber.close()
    assert sorted(orjson.loads(m.payload)["n"] for m in got) == list(range(50))
