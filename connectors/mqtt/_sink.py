"""The ``mqtt`` sink: each event published to an MQTT topic made from a template.

:meth:`MqttSink.write` hands each message to paho (which sends it from its network thread, at
most ``max_inflight`` unacknowledged at a time, and keeps the rest queued); :meth:`MqttSink.flush`
returns once the broker has acknowledged every QoS 1/2 message written so far (PUBACK, or
PUBCOMP for QoS 2) and every QoS 0 message has been sent, so a flush means the broker has them.
A message the connection lost is sent again by paho after reconnection. A flush that fails
keeps what paho still holds: when the pipeline's retry writes the batch again, events already
queued (known by topic, partition and offset) are not published a second time, and the next
flush waits for the copies already queued. One the broker refuses
(an MQTT 5 PUBACK with an error code, e.g. not authorised) is refused for good and goes to the
dead-letter topic, as does an event whose topic cannot be made or whose value cannot be written
in ``format``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections import deque
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from millstream.core import (
    CodecError,
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    EventsRejected,
    Rejection,
    Sink,
)
from millstream.core.duration import Duration, format_duration

from ._broker import BrokerConfig, connect, new_client, paho, stop
from ._formats import FORMATS
from ._template import TopicTemplate

__all__ = ["MqttSink", "MqttSinkConfig"]


class MqttSinkConfig(BrokerConfig):
    topic: str = Field(
        description="the MQTT topic to publish to; placeholders take parts of each event: "
        "{topic}, {partition}, {key}, {value}, {value.FIELD} (sensors/{value.device_id}/temp)",
    )
    qos: Literal[0, 1, 2] = Field(
        1, description="the QoS to publish with; with 1 and 2, flush waits for the broker's ack"
    )
    retain: bool = Field(
        False, description="publish retained messages: the broker keeps the last one per topic"
    )
    format: Literal["json", "text", "bytes"] = Field(
        "json",
        description="how values become payloads: json (compact JSON; bytes as they are), "
        "text (a string as UTF-8, anything else its text) or bytes (bytes or strings only)",
    )
    max_inflight: int | None = Field(
        None,
        ge=1,
        le=65535,
        description="the most QoS 1/2 messages sent and not yet acknowledged (the rest wait); "
        "by default MQTT 5's Receive Maximum of the broker (at most 1000), or 20 with 3.1.1, "
        "where brokers may drop a client that sends more than their limit (Mosquitto: "
        "max_inflight_messages, 20)",
    )
    flush_timeout: Duration = Field(
        "30s",  # validated into a timedelta
        gt=timedelta(0),
        le=timedelta(hours=1),
        validate_default=True,
        description="how long a flush waits for the broker's acks before it fails (and the "
        "pipeline's retry writes the batch again)",
    )

    @field_validator("topic")
    @classmethod
    def _template(cls, value: str) -> str:
        TopicTemplate(value)
        return value


class MqttSink(Sink):
    """Events published to MQTT topics made from a template (QoS 0/1/2, retain); flush waits
    for the broker's acknowledgements."""

    name = "mqtt"
    Config: ClassVar[type[ConnectorConfig]] = MqttSinkConfig
    idempotent = False

    def __init__(self, config: MqttSinkConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: MqttSinkConfig = config
        self.client_id = (
            config.client_id
            or f"millstream-{context.pipeline}-{context.name}-{secrets.token_hex(3)}"
        )
        self._what = f"mqtt sink {context.name!r}"
        self._template = TopicTemplate(config.topic)
        self._codec = FORMATS[config.format]
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: deque[tuple[Any, Event]] = deque()
        self._queued: set[tuple[str, int, int]] = set()
        """Where the events in ``_pending`` were read from: a retry's write skips them."""
        self._refused: dict[int, str] = {}  # mid -> the broker's reason, from on_publish
        self._acked = asyncio.Event()
        self._waiting = False

    async def open(self) -> None:
        config = self.config
        paho()
        self._loop = loop = asyncio.get_running_loop()
        connected: asyncio.Future[Any] = loop.create_future()
        client = new_client(config, self.context, self.client_id, clean=True, manual_ack=False)
        inflight = config.max_inflight or (1000 if config.version == "5" else 20)
        client.max_inflight_messages_set(inflight)
        client.max_queued_messages_set(0)

        def on_connect(client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
            # MQTT 5: never more in flight than the broker says it takes (it may disconnect)
            most = getattr(props, "ReceiveMaximum", None) if props is not None else None
            if most:
                client._max_inflight_messages = min(inflight, most)

            def settle() -> None:
                if not connected.done():
                    connected.set_result(reason)

            loop.call_soon_threadsafe(settle)

        client.on_connect = on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        self._client = client
        await connect(client, config, self._what, clean=True, connected=connected)

    async def write(self, events: Sequence[Event]) -> None:
        client = self._client
        if client is None:
            raise ConnectorError(f"{self._what}: write before open")
        config = self.config
        qos, retain = config.qos, config.retain
        render, encode = self._template.render, self._codec.encode
        pending, queued = self._pending, self._queued
        rejected: list[Rejection] = []
        for event in events:
            place = _place(event)
            if place is not None and place in queued:
                continue  # still in paho's queue from a flush that failed
            try:
                topic = render(event)
                payload = encode(event.value)
            except (ValueError, CodecError) as exc:
                rejected.append(Rejection(event, str(exc)))
                continue
            pending.append((client.publish(topic, payload, qos, retain), event))
            if place is not None:
                queued.add(place)
        if rejected:
            raise EventsRejected(rejected)

    async def flush(self) -> None:
        if not self._pending:
            return
        mqtt = paho()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.flush_timeout.total_seconds()
        pending, queued = self._pending, self._queued
        lost = 0
        rejected: list[Rejection] = []
        try:
            while pending:
                info, event = pending[0]
                if not _sent(info):
                    if info.rc != mqtt.MQTT_ERR_SUCCESS and self.config.qos == 0:
                        lost += 1  # a QoS 0 message with no connection to go to
                        queued.discard(_place(event))
                        pending.popleft()
                        continue
                    left = deadline - loop.time()
                    if left <= 0:
                        raise ConnectorError(
                            f"{self._what}: {len(pending)} message(s) not acknowledged by "
                            f"{self.config.url} within {format_duration(self.config.flush_timeout)}"
                        )
                    self._acked.clear()
                    self._waiting = True
                    if not _sent(info):
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(self._acked.wait(), min(left, 0.25))
                    continue
                pending.popleft()
                queued.discard(_place(event))
                refused = self._refused.pop(info.mid, None)
                if refused is not None:
                    rejected.append(Rejection(event, f"{self.config.url} refused it: {refused}"))
                elif info.rc != mqtt.MQTT_ERR_SUCCESS and self.config.qos == 0:
                    lost += 1  # written to a connection that was then lost
        finally:
            self._waiting = False
        if lost:
            raise ConnectorError(
                f"{self._what}: {lost} QoS 0 message(s) lost with the connection to "
                f"{self.config.url}"
            )
        if rejected:
            raise EventsRejected(rejected)

    async def close(self) -> None:
        client, self._client = self._client, None
        self._pending.clear()
        self._queued.clear()
        if client is not None:
            await stop(client)

    # -- the network thread ------------------------------------------------------------------

    def _on_publish(self, client: Any, userdata: Any, mid: int, reason: Any, props: Any) -> None:
        if reason is not None and reason.is_failure:
            self._refused[mid] = str(reason)
        if self._waiting:
            self._waiting = False
            loop = self._loop
            if loop is not None:
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(self._acked.set)

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
        if self._client is not None:
            self.context.log.warning(
                "%s: lost the connection to %s (%s); reconnecting",
                self._what,
                self.config.url,
                reason,
            )


def _place(event: Event) -> tuple[str, int, int] | None:
    """Topic, partition and offset of an event read from the log; None for any other."""
    if event.topic is None or event.partition is None or event.offset is None:
        return None
    return (event.topic, event.partition, event.offset)


def _sent(info: Any) -> bool:
    """Whether paho is done with a message: acknowledged by the broker (QoS 1/2) or written
    to the socket (QoS 0). ``is_published()`` raises instead for a message published while
    the connection was down, even once paho has sent it after reconnecting."""
    return bool(info._published)
