"""The broker's settings, as ``millstream broker`` parses them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..protocol import DEFAULT_MAX_FRAME_SIZE

__all__ = ["BrokerConfig", "parse_host_port"]


@dataclass
class BrokerConfig:
    """Where the broker listens and keeps its data, and how it treats topics it does not know."""

    data_dir: Path
    listen_host: str = "127.0.0.1"
    listen_port: int = 9092
    advertised_host: str | None = None
    """The host clients are told to connect to (default: the listen host)."""
    advertised_port: int | None = None
    node_id: int = 0
    auto_create_topics: bool = True
    """Create a topic a Metadata request names when it does not exist (Kafka's
    ``auto.create.topics.enable``)."""
    num_partitions: int = 1
    """Partitions of an auto-created topic, and of CreateTopics asking for -1."""
    max_request_size: int = DEFAULT_MAX_FRAME_SIZE
    """The largest request frame accepted; a larger length prefix closes the connection."""
    max_in_flight: int = 64
    """Requests of one connection read ahead of the response being written."""
    idle_timeout_s: float = 600.0
    """A connection that sends nothing for this long is closed (Kafka's
    ``connections.max.idle.ms``), and so is one whose client reads nothing of a response for
    this long."""
    max_connections: int = 1000
    """Client connections served at once; one more is closed as it is accepted (Kafka's
    ``max.connections``)."""
    fetch_max_bytes: int = 55 * 1024 * 1024
    """The most record bytes one Fetch response carries, whatever the client asks (Kafka's
    ``fetch.max.bytes``); a single batch above it is still sent whole."""
    producer_expiration_s: float = 86400.0
    """How long after its last append a producer's idempotence state is forgotten (Kafka's
    ``producer.id.expiration.ms``)."""
    max_producers_per_partition: int = 1000
    """Producers whose idempotence state one partition keeps; the least recently active one
    is forgotten first."""
    maintenance_interval_s: float = 60.0
    """How often retention and compaction run."""
    cluster_id: str = "millstream"
    group_min_session_timeout_ms: int = 6000
    """The shortest session timeout a group member may ask for (Kafka's
    ``group.min.session.timeout.ms``)."""
    group_initial_rebalance_delay_ms: int = 3000
    """How long an empty group's first rebalance waits for more members (Kafka's
    ``group.initial.rebalance.delay.ms``)."""
    http_host: str = "127.0.0.1"
    """Where the REST API listens (``--http``)."""
    http_port: int | None = None
    """The REST API's port; None: no REST API."""

    @property
    def host(self) -> str:
        """The advertised host."""
        if self.advertised_host:
            return self.advertised_host
        if self.listen_host in ("0.0.0.0", "::", ""):
            return "127.0.0.1"
        return self.listen_host

    @property
    def port(self) -> int:
        """The advertised port."""
        return self.advertised_port if self.advertised_port is not None else self.listen_port


def parse_host_port(text: str, *, default_port: int = 9092) -> tuple[str, int]:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6) as a pair; ValueError names what is wrong."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        host, port_text = text, str(default_port)
    host = host.strip("[]")
    try:
        port = int(port_text)
    except ValueError:
        raise ValueError(f"{text!r} is not HOST:PORT; the port must be a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} in {text!r} is out of range; valid ports are 0 to 65535")
    return host, port
