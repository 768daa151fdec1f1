"""The ``mqtt`` source: messages of the topics a client subscribes to, acknowledged to the broker
only once the log has them.

How a message travels: paho's network thread receives it (``on_message``) and appends it to an
inbox; the first message of an empty inbox wakes :meth:`MqttSource.read` on the event loop with
``loop.call_soon_threadsafe``. ``read`` takes up to ``batch_size`` messages, numbers them (the
batch's position is the number of the last one) and remembers each QoS 1/2 message's packet id
in arrival order. :meth:`MqttSource.ack` then acknowledges to the broker, in that order, every
message up to the position — the PUBACK of QoS 1, the PUBREC of QoS 2 — and the broker forgets
them. What was not acknowledged when the process stopped (however it stopped) the broker sends
again to the next connection of the same persistent session.

A message received before a connection dropped is never acknowledged on the next connection:
its packet id may by then name another message. The broker sends it again on reconnection, so
it is written to the log twice (MQTT's at-least-once; the copy comes with the DUP flag).

Flow control: with MQTT 5 the client tells the broker how many unacknowledged messages it may
have in flight (``max_inflight``, the Receive Maximum); with 3.1.1 the broker's own limit
applies (Mosquitto's ``max_inflight_messages``). QoS 0 messages have no window: when
``max_inflight`` of them wait unread, the network thread stops reading from the socket until
``read`` takes some, and TCP holds the broker back.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import deque
from datetime import timedelta
from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from millstream.core import (
    CodecError,
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    Rejection,
    Source,
    SourceBatch,
)
from millstream.core.duration import Duration, format_duration

from ._broker import BrokerConfig, connect, new_client, stop
from ._formats import FORMATS

__all__ = ["MqttSource", "MqttSourceConfig"]

TOPIC_HEADER = "mqtt.topic"
"""The header that carries each message's MQTT topic."""


def check_filter(topic: str) -> str:
    """``topic`` if it is a valid MQTT topic filter, else ValueError saying why."""
    if not topic:
        raise ValueError("a topic filter cannot be empty")
    if "\0" in topic:
        raise ValueError(f"topic filter {topic!r} holds a NUL character")
    if len(topic.encode()) > 65535:
        raise ValueError("a topic filter is at most 65535 bytes")
    levels = topic.split("/")
    for i, level in enumerate(levels):
        if "#" in level and (level != "#" or i != len(levels) - 1):
            raise ValueError(
                f"topic filter {topic!r}: '#' must be a whole level and the last one (a/#)"
            )
        if "+" in level and level != "+":
            raise ValueError(f"topic filter {topic!r}: '+' must be a whole level (a/+/c)")
    return topic


class MqttSourceConfig(BrokerConfig):
    topics: list[str] = Field(
        min_length=1,
        description="the topic filters to subscribe to; + matches one level, # the rest "
        "(sensors/+/temp, sensors/#); one filter or a list",
    )
    qos: Literal[0, 1, 2] = Field(
        1,
        description="the subscription's QoS: 0 at most once; 1 at least once; 2 once between "
        "broker and client (into the log, still at least once)",
    )
    clean_session: bool = Field(
        False,
        description="false: a persistent session, so the broker keeps QoS 1/2 messages that "
        "arrive while the pipeline is down and sends them when it is back; true: start afresh "
        "on every connection",
    )
    session_expiry: Duration = Field(
        "7d",  # validated into a timedelta
        ge=timedelta(seconds=1),
        le=timedelta(seconds=0xFFFFFFFF),
        validate_default=True,
        description="MQTT 5: how long the broker keeps the persistent session (and the messages "
        "queued for it) while the pipeline is away (whole seconds); 4294967295s: for ever",
    )
    format: Literal["json", "text", "bytes"] = Field(
        "json",
        description="how payloads are read: json (each one a JSON document), text (UTF-8) or "
        "bytes (as they are); a payload that does not decode goes to the dead-letter topic",
    )
    key: Literal["topic"] | None = Field(
        None,
        description="topic: the message's MQTT topic becomes the record key (the topic is "
        "always in the mqtt.topic header)",
    )
    batch_size: int = Field(
        1000, ge=1, le=10_000, description="the most messages in one batch written to the log"
    )
    max_inflight: int = Field(
        1000,
        ge=1,
        le=65535,
        description="the most messages received but not yet acknowledged (MQTT 5 Receive "
        "Maximum; also bounds unread QoS 0 messages)",
    )

    @field_validator("topics", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("topics")
    @classmethod
    def _filters(cls, value: list[str]) -> list[str]:
        return [check_filter(t) for t in value]


class MqttSource(Source):
    """Messages of MQTT topic filters (wildcards), QoS 0/1/2 over a persistent session; each
    acknowledged to the broker only once the log has it."""

    name = "mqtt"
    Config: ClassVar[type[ConnectorConfig]] = MqttSourceConfig
    resumable = False
    """The broker, not a stored position, decides what comes after a restart: it sends again
    every QoS 1/2 message not yet acknowledged (so some may come twice) and keeps those that
    arrive meanwhile; QoS 0 messages of that time are gone."""
    redelivers = True

    @classmethod
    def redelivers_for(cls, config: Any) -> bool:
        """At QoS 1 or 2 in a persistent session the broker hands out again what was not
        acknowledged: at-least-once. At QoS 0, or with a clean session, it does not."""
        return bool(config.qos >= 1 and not config.clean_session)

    def __init__(self, config: MqttSourceConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: MqttSourceConfig = config
        self.client_id = config.client_id or f"millstream-{context.pipeline}-{context.name}"
        self._what = f"mqtt source {context.name!r}"
        self._codec = FORMATS[config.format]
        self._client: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        # filled by the network thread, emptied by read()
        self._inbox: deque[tuple[bytes, bytes, int, int, int]] = deque()
        self._wake_pending = False
        self._wakeup = asyncio.Event()
        self._room = threading.Event()
        self._room.set()
        # what read() handed out and ack() has not yet acknowledged: (seq, mid, qos, connection)
        self._unacked: deque[tuple[int, int, int, int]] = deque()
        self._seq = 0
        self._lock = threading.Lock()  # the connection number vs. acknowledgements
        self._connection = 0  # bumped when a connection ends
        self._connected: asyncio.Future[Any] | None = None
        self._subscribed: asyncio.Future[list[Any]] | None = None
        self._closing = False

    async def open(self, position: Any) -> None:
        # position: numbers of a past run's messages mean nothing now (see ``resumable``)
        config = self.config
        self._loop = loop = asyncio.get_running_loop()
        self._connected = loop.create_future()
        self._subscribed = loop.create_future()
        client = new_client(
            config, self.context, self.client_id, clean=config.clean_session, manual_ack=True
        )
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_subscribe = self._on_subscribe
        client.on_publish_packet = self._on_publish
        properties = None
        if config.version == "5":
            from paho.mqtt.packettypes import PacketTypes
            from paho.mqtt.properties import Properties

            properties = Properties(PacketTypes.CONNECT)
            properties.ReceiveMaximum = config.max_inflight
            properties.SessionExpiryInterval = (
                0 if config.clean_session else round(config.session_expiry.total_seconds())
            )
        self._client = client
        await connect(
            client,
            config,
            self._what,
            clean=config.clean_session,
            properties=properties,
            connected=self._connected,
        )
        try:
            codes = await asyncio.wait_for(self._subscribed, config.connect_timeout.total_seconds())
        except TimeoutError:
            raise ConnectorError(
                f"{self._what}: topics: {config.url} did not answer the subscription within "
                f"{format_duration(config.connect_timeout)}"
            ) from None
        refused = [
            f"{topic!r} ({code})"
            for topic, code in zip(config.topics, codes, strict=False)
            if code.is_failure
        ]
        if refused:
            raise ConnectorError(
                f"{self._what}: topics: {config.url} refused the subscription to "
                f"{', '.join(refused)}"
            )

    async def read(self) -> SourceBatch | None:
        inbox = self._inbox
        while not inbox:
            if self._closing:
                raise ConnectorError(f"{self._what}: read after close")
            self._wakeup.clear()
            await self._wakeup.wait()
        config = self.config
        take = min(len(inbox), config.batch_size)
        events: list[Event] = []
        rejected: list[Rejection] = []
        unacked = self._unacked
        decode = self._codec.decode
        by_topic = config.key == "topic"
        seq = self._seq
        popleft = inbox.popleft
        for _ in range(take):
            raw_topic, payload, mid, qos, connection = popleft()
            seq += 1
            if qos:
                unacked.append((seq, mid, qos, connection))
            headers = ((TOPIC_HEADER, raw_topic),)
            try:
                value = decode(payload)
            except CodecError as exc:
                reason = f"MQTT topic {_shown(raw_topic)}: the payload is {exc}"
                rejected.append(Rejection(Event(payload, headers=headers), reason))
                continue
            events.append(Event(value, raw_topic if by_topic else None, headers))
        self._seq = seq
        if not self._room.is_set() and len(inbox) < config.max_inflight:
            self._room.set()
        return SourceBatch(events, seq, rejected)

    async def ack(self, position: Any) -> None:
        unacked = self._unacked
        client = self._client
        acks: list[tuple[int, int]] = []
        with self._lock:
            current = self._connection
            while unacked and unacked[0][0] <= position:
                _, mid, qos, connection = unacked.popleft()
                if connection == current:
                    acks.append((mid, qos))
            if client is not None:
                client.ack_many(acks)

    async def close(self) -> None:
        self._closing = True
        self._room.set()
        self._wakeup.set()
        client, self._client = self._client, None
        if client is not None:
            await stop(client)

    # -- the network thread ------------------------------------------------------------------

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason: Any, props: Any) -> None:
        if not reason.is_failure:
            self._subscribe(client)
        elif self._connected is not None and self._connected.done():
            self.context.log.warning(
                "%s: %s refused the connection again: %s", self._what, self.config.url, reason
            )
        self._resolve(self._connected, reason)

    def _subscribe(self, client: Any) -> None:
        config = self.config
        if config.version == "5":
            from paho.mqtt.subscribeoptions import SubscribeOptions

            # retained messages only for a new subscription, not again for a kept session
            options = SubscribeOptions(qos=config.qos, retainHandling=1)
            client.subscribe([(topic, options) for topic in config.topics])
        else:
            client.subscribe([(topic, config.qos) for topic in config.topics])

    def _on_subscribe(self, client: Any, userdata: Any, mid: int, codes: Any, props: Any) -> None:
        future = self._subscribed
        if future is not None and not future.done():
            self._resolve(future, list(codes))
        else:
            for topic, code in zip(self.config.topics, codes, strict=False):
                if code.is_failure:
                    self.context.log.warning(
                        "%s: the broker refused the subscription to %r on reconnection: %s",
                        self._what,
                        topic,
                        code,
                    )

    def _on_disconnect(self, client: Any, userdata: Any, flags: Any, reason: Any, p: Any) -> None:
        with self._lock:
            self._connection += 1
        if not self._closing:
            self.context.log.warning(
                "%s: lost the connection to %s (%s); reconnecting",
                self._what,
                self.config.url,
                reason,
            )

    def _on_publish(self, topic: bytes, payload: bytes, mid: int, qos: int) -> None:
        self._inbox.append((topic, payload, mid, qos, self._connection))
        if not self._wake_pending:
            self._wake_pending = True
            try:
                self._loop.call_soon_threadsafe(self._wake)  # type: ignore[union-attr]
            except RuntimeError:  # the event loop is closed: the source is gone
                return
        if qos == 0 and len(self._inbox) >= self.config.max_inflight:
            self._room.clear()
            while not self._room.wait(0.5) and not self._closing:
                pass

    def _wake(self) -> None:
        self._wake_pending = False
        self._wakeup.set()

    def _resolve(self, future: asyncio.Future[Any] | None, value: Any) -> None:
        loop = self._loop
        if future is None or loop is None:
            return

        def settle() -> None:
            if not future.done():
                future.set_result(value)

        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle)


def _shown(topic: bytes) -> str:
    try:
        return repr(topic.decode())
    except UnicodeDecodeError:
        return repr(topic)
