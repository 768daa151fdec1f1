"""The network connection: a ``millstream://host:port[,host:port]`` store reached over the
Kafka wire protocol (``kafka://`` for Apache Kafka), with TLS and SASL when the URL asks for
them (``kafka://USER:PASSWORD@HOST:PORT?security.protocol=SASL_SSL``, see :mod:`.security`).

Opening one reaches a bootstrap broker, learns the cluster's metadata and the configs of its
topics (what producers need to batch and check records without waiting), and keeps them for
the producers, consumers and admins it makes, which share its connections to the brokers.

As on the embedded store, clients never write the store's internal topics
(``__consumer_offsets``, ``__source_positions``, ``__topic_codecs``): producing to one, or
creating, altering or deleting one, raises InvalidTopicError.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Coroutine, Iterable
from typing import Any

from ...errors import InvalidTopicError, StoreClosedError, StoreError
from ...log import is_internal
from .. import redact_url
from ..interface import Admin, Connection, Consumer, OffsetReset, Producer
from .admin import NetworkAdmin, describe_configs
from .assignors import DEFAULT_ASSIGNORS
from .cluster import Cluster, parse_bootstrap
from .consumer import NetworkConsumer
from .positions import NetworkPositionStore
from .producer import NetworkProducer
from .security import parse_security
from .topic_codecs import TopicCodecs
from .wire import BrokerUnavailableError

__all__ = ["NetworkConnection"]


class NetworkConnection(Connection):
    """A cluster of brokers, opened by :func:`millstream.core.client.connect` for
    ``millstream://`` URLs."""

    metadata_refresh_s = 30.0
    """How often the cluster's metadata is looked up again, so partitions another process added
    are followed (producers route keys over them, subscriptions without a group read them,
    group leaders rebalance)."""

    def __init__(self, cluster: Cluster, url: str) -> None:
        self.cluster = cluster
        self.url = url
        self.read_only = False
        self.shared = True
        self.topic_configs: dict[str, dict[str, str]] = {}
        self.topic_codecs = TopicCodecs(self)
        """Codecs kept beside the topics, where the cluster does not keep them (Kafka)."""
        self._producers: weakref.WeakSet[NetworkProducer] = weakref.WeakSet()
        self._consumers: weakref.WeakSet[NetworkConsumer] = weakref.WeakSet()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._positions: NetworkPositionStore | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._closed = False

    @classmethod
    async def open(
        cls, url: str, *, client_id: str = "millstream", timeout_s: float = 10.0
    ) -> NetworkConnection:
        """Reach the cluster of ``url``; BrokerUnavailableError (a StoreError) when no
        bootstrap broker answers within ``timeout_s``, AuthenticationError when a broker
        refuses the URL's credentials or its TLS certificate, InvalidStoreURLError for a
        malformed URL or security option."""
        bootstrap = parse_bootstrap(url)
        security = parse_security(url)
        security.ssl_context  # noqa: B018 - certificate files are read (and checked) now
        cluster = Cluster(bootstrap, client_id=client_id, timeout_s=timeout_s, security=security)
        try:
            await cluster.start()
            connection = cls(cluster, url)
            await connection._load_configs(
                [n for n, t in cluster.topics.items() if not (t.internal or is_internal(n))]
            )
        except BrokerUnavailableError as exc:
            await cluster.close()
            raise BrokerUnavailableError(f"cannot reach {redact_url(url)}: {exc}") from None
        except BaseException:
            await cluster.close()
            raise
        connection._refresher = asyncio.get_running_loop().create_task(
            connection._refresh_metadata()
        )
        return connection

    async def _refresh_metadata(self) -> None:
        while not self._closed:
            await asyncio.sleep(self.metadata_refresh_s)
            try:
                await self.cluster.refresh()
            except StoreError:
                continue  # the clients meet the trouble themselves, and say so
            for producer in list(self._producers):
                producer.follow_partitions()

    async def _load_configs(self, topics: list[str]) -> None:
        found = await describe_configs(self, topics)
        for name, configs in found.items():
            self.topic_configs[name] = {k: v for k, (v, _) in configs.items()}

    async def look_up_topic(self, name: str) -> None:
        """Learn ``name``'s partitions and configs; UnknownTopicError when it does not exist."""
        await self.cluster.topic(name, refresh=True)
        await self._load_configs([name])

    # --- making clients --------------------------------------------------------------------

    def producer(
        self,
        *,
        linger_ms: float = 1.0,
        batch_bytes: int = 1_048_576,
        compression: str | None = None,
        client_id: str = "millstream",
        acks: int | str = "all",
        idempotence: bool = True,
        delivery_timeout_ms: int = 120_000,
        buffer_bytes: int = 64 << 20,
    ) -> Producer:
        """A producer; beyond the interface's arguments: ``acks`` ("all", 1 or 0),
        ``idempotence`` (on by default; needs acks "all"), ``delivery_timeout_ms`` (how long
        a batch is retried before its records fail) and ``buffer_bytes`` (how much of records
        not yet acknowledged it holds before ``send`` raises BufferFullError)."""
        self.check_open()
        producer = NetworkProducer(
            self,
            linger_ms=linger_ms,
            batch_bytes=batch_bytes,
            compression=compression,
            client_id=client_id,
            acks=acks,
            idempotence=idempotence,
            delivery_timeout_ms=delivery_timeout_ms,
            buffer_bytes=buffer_bytes,
        )
        self._producers.add(producer)
        return producer

    def consumer(
        self,
        topics: Iterable[str] = (),
        *,
        group: str | None = None,
        auto_offset_reset: OffsetReset | str = OffsetReset.LATEST,
        max_poll_records: int = 10_000,
        client_id: str = "millstream",
        assignors: Iterable[str] = DEFAULT_ASSIGNORS,
        session_timeout_ms: int = 10_000,
    ) -> Consumer:
        """A consumer; beyond the interface's arguments: ``assignors`` (the group protocols
        this member offers, in order of preference: ``sticky``, ``roundrobin``, ``range``) and
        ``session_timeout_ms``."""
        self.check_open()
        consumer = NetworkConsumer(
            self,
            group=group,
            auto_offset_reset=auto_offset_reset,
            max_poll_records=max_poll_records,
            client_id=client_id,
            assignors=tuple(assignors),
            session_timeout_ms=session_timeout_ms,
        )
        self._consumers.add(consumer)
        topics = [topics] if isinstance(topics, str) else list(topics)
        if topics:
            consumer.subscribe(topics)
        return consumer

    def admin(self) -> Admin:
        self.check_open()
        return NetworkAdmin(self)

    def positions(self) -> NetworkPositionStore:
        self.check_open()
        if self._positions is None:
            self._positions = NetworkPositionStore(self)
        return self._positions

    # --- shared by the clients ---------------------------------------------------------------

    def check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(
                f"the connection to {redact_url(self.url)} is closed; connect again"
            )

    def refuse_internal(self, topic: str, action: str) -> None:
        """InvalidTopicError when ``topic`` is one of the store's internal topics."""
        if not is_internal(topic):
            info = self.cluster.topics.get(topic)
            if info is None or not info.internal:
                return
        why = "only the store itself manages it"
        if topic == "__consumer_offsets" and action == "write to":
            why = (
                "consumers store offsets with commit(), and `millstream groups reset-offsets` "
                "moves them"
            )
        raise InvalidTopicError(
            f"topic {topic!r} is internal to the store; clients cannot {action} it: {why}"
        )

    def topic_changed(self, topic: str) -> None:
        """A topic was altered or is about to be deleted: producers look it up again."""
        for producer in list(self._producers):
            producer.forget_topic(topic)

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> None:
        """Run ``coroutine`` in the background, owned by this connection."""
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def forget_producer(self, producer: NetworkProducer) -> None:
        self._producers.discard(producer)

    def forget_consumer(self, consumer: NetworkConsumer) -> None:
        self._consumers.discard(consumer)

    # --- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        errors: list[BaseException] = []
        clients: list[Producer | Consumer] = [*self._producers, *self._consumers]
        for client in clients:  # each is closed, whatever the ones before raised
            try:
                await client.close()
            except Exception as exc:
                errors.append(exc)
        if self._refresher is not None:
            self._refresher.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, 5)
        self._closed = True
        await self.cluster.close()
        if errors:
            raise errors[0]
