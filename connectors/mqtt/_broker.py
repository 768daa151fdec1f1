"""What the ``mqtt`` source and sink share: the broker settings, and a connected paho client.

Connections use paho-mqtt 2 (the ``mqtt`` extra). Its network loop runs in a thread of its own
(``loop_start``); the connectors hand what it receives over to the event loop. After the first
connection, a dropped one is reconnected by that thread with a doubling delay from 1 s up to
``reconnect_max``.

A client made by :func:`new_client` with ``manual_ack`` acknowledges nothing by itself: QoS 1
messages get their PUBACK, and QoS 2 messages their PUBREC, only from ``ack_many`` — paho's own
client sends a QoS 2 message's PUBREC as soon as it arrives, after which the broker never sends
that message again; here it waits until the message is safe. The broker's PUBREL is then
answered with PUBCOMP whether or not this process still knows the message (it was already
safe when its PUBREC went out).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import struct
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from millstream.core import ConnectorConfig, ConnectorContext, ConnectorError
from millstream.core.duration import Duration, format_duration

__all__ = ["BrokerConfig", "Endpoint", "connect", "new_client", "paho", "stop"]

_INSTALL = "pip install 'millstream[mqtt]'"
_PORTS = {"mqtt": 1883, "mqtts": 8883}


class BrokerConfig(ConnectorConfig):
    """The settings of the connection to the broker (both the source and the sink)."""

    url: str = Field(
        description="the broker: mqtt://host:port, or mqtts://host:port for TLS (ports default "
        "to 1883 and 8883)",
    )
    client_id: str | None = Field(
        None,
        min_length=1,
        max_length=256,
        description="the MQTT client id; by default millstream-PIPELINE-NAME for a source (stable "
        "across restarts, so its persistent session is found again) and that plus a random "
        "suffix for a sink. Two clients with the same id push each other off the broker",
    )
    username: str | None = Field(None, description="the user name to log in with")
    password: SecretStr | None = Field(
        None, description="the password to log in with (with username)"
    )
    ca_file: Path | None = Field(
        None,
        description="PEM file of the CA(s) that signed the broker's certificate (mqtts://); "
        "by default the system's trusted CAs",
    )
    cert_file: Path | None = Field(
        None, description="PEM client certificate, for brokers that ask for one (with key_file)"
    )
    key_file: Path | None = Field(None, description="PEM private key of cert_file")
    insecure: bool = Field(
        False,
        description="mqtts:// without checking the broker's certificate or host name (for "
        "testing only)",
    )
    version: Literal["5", "3.1.1"] = Field("5", description="the MQTT protocol version: 5 or 3.1.1")
    keepalive: Duration = Field(
        "30s",  # validated into a timedelta
        ge=timedelta(seconds=5),
        le=timedelta(seconds=65535),
        validate_default=True,
        description="how long between keep-alive pings when idle (whole seconds, 5s to 65535s)",
    )
    connect_timeout: Duration = Field(
        "10s",
        gt=timedelta(0),
        le=timedelta(minutes=10),
        validate_default=True,
        description="how long the first connection may take at start before it is an error",
    )
    reconnect_max: Duration = Field(
        "30s",
        ge=timedelta(seconds=1),
        le=timedelta(hours=1),
        validate_default=True,
        description="the longest wait between attempts to reconnect after the connection "
        "dropped (waits start at 1s and double)",
    )

    @field_validator("version", mode="before")
    @classmethod
    def _version_text(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return {5: "5", 3.1: "3.1.1", 4: "3.1.1"}.get(value, str(value))
        return value

    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str) -> str:
        Endpoint.parse(value)
        return value

    @field_validator("password")
    @classmethod
    def _with_username(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and info.data.get("username") is None:
            raise ValueError("a password needs a username; give both")
        return value

    @field_validator("ca_file", "cert_file", "key_file", "insecure")
    @classmethod
    def _tls_only(cls, value: Any, info: ValidationInfo) -> Any:
        url = info.data.get("url")
        if value and url is not None and urlsplit(url).scheme != "mqtts":
            raise ValueError(f"{info.field_name} is for TLS; use an mqtts:// url")
        return value

    @model_validator(mode="after")
    def _pairs(self) -> BrokerConfig:
        if self.cert_file is not None and self.key_file is None:
            raise ValueError("key_file: cert_file needs the key_file that goes with it")
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("cert_file: key_file needs the cert_file that goes with it")
        return self


class Endpoint:
    """The host, port and TLS flag of a broker URL."""

    __slots__ = ("host", "port", "tls")

    def __init__(self, host: str, port: int, tls: bool) -> None:
        self.host, self.port, self.tls = host, port, tls

    @classmethod
    def parse(cls, url: str) -> Endpoint:
        """``mqtt://host[:port]`` or ``mqtts://host[:port]``; ValueError saying what is valid."""
        example = "mqtt://host:1883 or mqtts://host:8883"
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"{url!r} is not a broker URL ({exc}); use {example}") from None
        if parts.scheme not in _PORTS:
            raise ValueError(f"{url!r}: the scheme must be mqtt or mqtts; use {example}")
        if not parts.hostname:
            raise ValueError(f"{url!r} names no host; use {example}")
        if parts.username or parts.password:
            raise ValueError(f"{url!r}: give the user and password as username and password")
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"{url!r}: a broker URL has no path or query; use {example}")
        return cls(parts.hostname, port or _PORTS[parts.scheme], parts.scheme == "mqtts")


def paho() -> Any:
    """The ``paho.mqtt.client`` module, or a ConnectorError saying how to install it."""
    try:
        import paho.mqtt.client as client
    except ImportError:
        raise ConnectorError(f"the mqtt connector needs paho-mqtt: {_INSTALL}") from None
    return client


_CLIENT_CLASS: Any = None


def _client_class() -> Any:
    """paho's Client, acknowledging received messages only when asked (see below)."""
    global _CLIENT_CLASS
    if _CLIENT_CLASS is not None:
        return _CLIENT_CLASS
    mqtt = paho()

    class ManualAckClient(mqtt.Client):  # type: ignore[name-defined]
        """A client whose acknowledgements wait for :meth:`ack_many` (see the module docstring).

        A receiving client sets ``on_publish_packet`` (with ``manual_ack``): each PUBLISH is
        handed to it as ``(topic bytes, payload, packet id, qos)``, on the network thread,
        without paho's message and MQTT 5 property objects, and nothing is acknowledged, not
        even a QoS 2 message's PUBREC. The socket is read 64 KiB at a time, not a few bytes
        per call. Both matter: they are the network thread's hot path.
        """

        on_publish_packet: Any = None
        _buffer = b""
        _at = 0  # where the unread part of _buffer begins

        def _sock_recv(self, bufsize: int) -> bytes:
            at = self._at
            buffer = self._buffer
            if at >= len(buffer):
                buffer = self._buffer = super()._sock_recv(65536)
                at = self._at = 0
                if not buffer:
                    return buffer
            end = at + bufsize
            self._at = end
            return buffer[at:end]

        def _sock_close(self) -> None:
            self._buffer, self._at = b"", 0
            super()._sock_close()

        def loop_read(self, max_packets: int = 1) -> Any:
            rc = super().loop_read(max_packets)
            while (
                rc == mqtt.MQTT_ERR_SUCCESS
                and self._at < len(self._buffer)
                and self._sock is not None
            ):
                rc = super().loop_read(1)  # what was read ahead: no select() will say so
            return rc

        def ack_many(self, acks: list[tuple[int, int]]) -> Any:
            """PUBACK (QoS 1) or PUBREC (QoS 2) for each (packet id, qos), in that order, in
            one write."""
            if not acks:
                return mqtt.MQTT_ERR_SUCCESS
            blob = b"".join(
                (b"\x40\x02" if qos == 1 else b"\x50\x02") + mid.to_bytes(2, "big")
                for mid, qos in acks
            )
            return self._packet_queue(0x40, blob, 0, 0)

        def _handle_publish(self) -> Any:
            command = self._in_packet["command"]
            qos = (command & 0x06) >> 1
            deliver = self.on_publish_packet
            if deliver is not None and self._manual_ack:
                packet = self._in_packet["packet"]
                (size,) = struct.unpack_from("!H", packet)
                at = 2 + size
                topic = bytes(packet[2:at])
                mid = 0
                if qos:
                    (mid,) = struct.unpack_from("!H", packet, at)
                    at += 2
                if self._protocol == mqtt.MQTTv5:  # skip the properties
                    length = shift = 0
                    while True:
                        digit = packet[at]
                        at += 1
                        length |= (digit & 0x7F) << shift
                        shift += 7
                        if not digit & 0x80:
                            break
                    at += length
                deliver(topic, bytes(packet[at:]), mid, qos)
                return mqtt.MQTT_ERR_SUCCESS
            return super()._handle_publish()

        def _handle_pubrel(self) -> Any:
            if not self._manual_ack:
                return super()._handle_pubrel()
            (mid,) = struct.unpack_from("!H", self._in_packet["packet"])
            rc = super()._handle_pubrel()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return rc
            return self._send_pubcomp(mid)

        def ack(self, mid: int, qos: int) -> Any:
            if self._manual_ack and qos == 2:
                return super()._send_pubrec(mid)
            return super().ack(mid, qos)

    _CLIENT_CLASS = ManualAckClient
    return ManualAckClient


def new_client(
    config: BrokerConfig,
    context: ConnectorContext,
    client_id: str,
    *,
    clean: bool,
    manual_ack: bool,
) -> Any:
    """A paho client for ``config`` (TLS, login, reconnect delays set), not yet connected."""
    mqtt = paho()
    v5 = config.version == "5"
    kwargs: dict[str, Any] = {} if v5 else {"clean_session": clean}
    client = _client_class()(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        manual_ack=manual_ack,
        **kwargs,
    )
    if config.username is not None:
        password = config.password.get_secret_value() if config.password else None
        client.username_pw_set(config.username, password)
    if Endpoint.parse(config.url).tls:
        files = {
            name: str(context.resolve(path)) if path is not None else None
            for name, path in (
                ("ca_file", config.ca_file),
                ("cert_file", config.cert_file),
                ("key_file", config.key_file),
            )
        }
        for name, path in files.items():
            if path is not None and not Path(path).is_file():
                raise ConnectorError(f"{name}: no such file: {path}")
        try:
            client.tls_set(
                ca_certs=files["ca_file"],
                certfile=files["cert_file"],
                keyfile=files["key_file"],
                cert_reqs=ssl.CERT_NONE if config.insecure else ssl.CERT_REQUIRED,
            )
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConnectorError(f"ca_file/cert_file/key_file: cannot be used: {exc}") from None
        client.tls_insecure_set(config.insecure)
    client.reconnect_delay_set(1, max(1, round(config.reconnect_max.total_seconds())))
    client.connect_timeout = min(config.connect_timeout.total_seconds(), 30.0)
    return client


async def connect(
    client: Any,
    config: BrokerConfig,
    what: str,
    *,
    clean: bool,
    properties: Any = None,
    connected: asyncio.Future[Any],
) -> None:
    """Connect ``client`` to the broker, start its network thread and wait for the broker's
    answer (``connected``, resolved by the caller's ``on_connect`` with the reason code).

    Raises ConnectorError, naming ``what`` and the setting to look at, when the broker cannot
    be reached, the TLS handshake fails or the broker refuses the login. On failure the
    network thread is stopped again.
    """
    endpoint = Endpoint.parse(config.url)
    options: dict[str, Any] = {}
    if config.version == "5":
        options["clean_start"] = clean
        options["properties"] = properties
    attempt = asyncio.ensure_future(
        asyncio.to_thread(
            client.connect,
            endpoint.host,
            endpoint.port,
            round(config.keepalive.total_seconds()),
            **options,
        )
    )
    try:
        try:
            await asyncio.wait_for(asyncio.shield(attempt), config.connect_timeout.total_seconds())
        except BaseException:
            # a thread cannot be stopped: once it is done, close the socket it may have opened
            attempt.add_done_callback(lambda _: _close_socket(client))
            raise
    except ssl.SSLError as exc:
        hint = "check ca_file, or set insecure: true for a test broker"
        raise ConnectorError(f"{what}: url: TLS with {config.url} failed: {exc} ({hint})") from None
    except (OSError, TimeoutError) as exc:
        why = str(exc) or type(exc).__name__
        raise ConnectorError(f"{what}: url: cannot reach {config.url}: {why}") from None
    client.loop_start()
    try:
        reason = await asyncio.wait_for(connected, config.connect_timeout.total_seconds())
    except TimeoutError:
        await stop(client)
        raise ConnectorError(
            f"{what}: url: {config.url} did not answer the connection within "
            f"{format_duration(config.connect_timeout)}"
        ) from None
    if reason.is_failure:
        await stop(client)
        setting = {0x86: "username/password", 0x87: "username/password", 0x84: "version"}.get(
            reason.value, "url"
        )
        raise ConnectorError(f"{what}: {setting}: {config.url} refused the connection: {reason}")


def _close_socket(client: Any) -> None:
    """Close the socket of a client whose connection attempt was given up."""
    with contextlib.suppress(Exception):
        client._sock_close()


async def stop(client: Any, drain: float = 2.0) -> None:
    """Disconnect and end the network thread, after the packets queued to send (such as
    acknowledgements) are written, waiting for them at most ``drain`` seconds while connected.
    paho's own ``disconnect`` and ``loop_stop`` may end the thread before they are."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + drain
    while client._out_packet and client.is_connected() and loop.time() < deadline:
        await asyncio.sleep(0.01)
    with contextlib.suppress(Exception):
        client.disconnect()
    await asyncio.to_thread(client.loop_stop)
