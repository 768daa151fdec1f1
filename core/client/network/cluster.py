"""What the client knows of the cluster: its brokers, its topics' partitions and leaders, and
one open connection per broker.

:class:`Cluster` starts from the bootstrap addresses of a store URL
(``millstream://host:port[,host:port]``), asks any of them for the cluster's metadata, and
from then on talks to each broker by node id. Metadata is looked up again when a broker says
the client's picture is stale (NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION…), when a
connection is lost, or when a topic not seen yet is asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from dataclasses import dataclass

from ...errors import InvalidStoreURLError, StoreError, UnknownTopicError
from ...protocol import ApiKey, ErrorCode, request_class
from .. import redact_url
from .failures import error_for
from .security import SecuritySettings, split_store_url
from .wire import BrokerConnection, BrokerUnavailableError

__all__ = ["SHARED", "Cluster", "TopicInfo", "parse_bootstrap"]

SHARED = "shared"
"""The channel of metadata and admin requests (see :meth:`Cluster.connection`)."""


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """One topic as the metadata described it: the leader node of each partition (-1 when
    none is known), and its replicas."""

    name: str
    leaders: tuple[int, ...]
    replicas: tuple[tuple[int, ...], ...]
    internal: bool = False

    @property
    def partitions(self) -> int:
        return len(self.leaders)


def parse_bootstrap(url: str) -> list[tuple[str, int]]:
    """The ``(host, port)`` addresses of ``millstream://h1:p1,h2:p2`` (or ``kafka://…``);
    the user information and the query (``?security.protocol=…``) are not looked at here."""
    parts = split_store_url(url)
    if parts is None:
        raise InvalidStoreURLError(f"store URL {url!r} is not scheme://HOST:PORT[,HOST:PORT]")
    scheme, shown = parts.scheme, redact_url(url)
    addresses = []
    for part in parts.hosts.split(","):
        host, colon, port = part.strip().rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidStoreURLError(
                f"store URL {shown!r}: {part.strip()!r} is not HOST:PORT; "
                f"e.g. {scheme}://localhost:9092"
            )
        addresses.append((host, int(port)))
    return addresses


class Cluster:
    """The brokers and topic metadata of one store URL, shared by a connection's clients."""

    def __init__(
        self,
        bootstrap: list[tuple[str, int]],
        *,
        client_id: str,
        timeout_s: float = 10.0,
        security: SecuritySettings | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.client_id = client_id
        self.timeout_s = timeout_s
        self.security = security or SecuritySettings()
        """TLS and SASL of every connection (plain TCP by default)."""
        self.brokers: dict[int, tuple[str, int]] = {}
        self.topics: dict[str, TopicInfo] = {}
        self.controller = -1
        self._connections: dict[tuple[int, str], BrokerConnection] = {}
        self._opening: dict[tuple[int, str], asyncio.Future[BrokerConnection]] = {}
        self._bootstrap_connection: BrokerConnection | None = None
        self._refreshing: asyncio.Future[None] | None = None
        self._coordinators: dict[str, int] = {}
        self._closed = False

    # --- connections ------------------------------------------------------------------------

    async def start(self) -> None:
        """Reach a bootstrap broker and learn the whole cluster's metadata."""
        await self.refresh()

    async def _any_connection(self) -> BrokerConnection:
        for (_, channel), connection in self._connections.items():
            if channel == SHARED and connection.connected:
                return connection
        for node in list(self.brokers):
            with contextlib.suppress(BrokerUnavailableError):
                return await self.connection(node)
        current = self._bootstrap_connection
        if current is not None and current.connected:
            return current
        errors = []
        for host, port in self.bootstrap:
            connection = BrokerConnection(
                host, port, client_id=self.client_id, security=self.security
            )
            try:
                await connection.open(self.timeout_s)
            except BrokerUnavailableError as exc:
                errors.append(str(exc))
                continue
            self._bootstrap_connection = connection
            return connection
        raise BrokerUnavailableError("; ".join(errors) or "no bootstrap address")

    async def connection(
        self, node: int, channel: str = SHARED, *, client_id: str | None = None
    ) -> BrokerConnection:
        """The open connection to broker ``node`` for ``channel``, opened (again) when needed.

        A broker answers one connection's requests one after another, so a client whose
        requests wait on the broker (a fetch's long poll, a JoinGroup until the group is
        formed) has connections of its own, named by its channel; metadata and admin requests
        share the ``"shared"`` one. ``client_id`` is the one its requests carry (the
        cluster's by default)."""
        self._check_open()
        key = (node, channel)
        found = self._connections.get(key)
        if found is not None and found.connected:
            return found
        opening = self._opening.get(key)
        if opening is not None:
            return await asyncio.shield(opening)
        address = self.brokers.get(node)
        if address is None:
            await self.refresh()
            address = self.brokers.get(node)
            if address is None:
                raise BrokerUnavailableError(f"broker {node} is not in the cluster's metadata")
        future: asyncio.Future[BrokerConnection] = asyncio.get_running_loop().create_future()
        self._opening[key] = future
        try:
            if found is not None:
                await found.close()
            connection = BrokerConnection(
                *address,
                client_id=client_id or self.client_id,
                node_id=node,
                security=self.security,
            )
            await connection.open(self.timeout_s)
            self._connections[key] = connection
            future.set_result(connection)
            return connection
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            del self._opening[key]

    async def request(
        self, api_key: int, body: object, *, node: int | None = None, channel: str = SHARED
    ) -> object:
        """One request to ``node`` (any broker when None), returning the response body."""
        if node is None:
            connection = await self._any_connection()
        else:
            connection = await self.connection(node, channel)
        return await connection.request(api_key, body)

    async def close_channel(self, channel: str) -> None:
        """Close the connections of ``channel`` (a client that was closed)."""
        for key in [k for k in self._connections if k[1] == channel]:
            await self._connections.pop(key).close()

    async def controller_connection(self) -> BrokerConnection:
        """The controller (where topics are created and deleted), else any broker."""
        if self.controller >= 0 and self.controller in self.brokers:
            with contextlib.suppress(BrokerUnavailableError):
                return await self.connection(self.controller)
        return await self._any_connection()

    # --- metadata ---------------------------------------------------------------------------

    async def refresh(self, topics: Iterable[str] | None = None) -> None:
        """Look up the metadata of ``topics`` (all topics when None) and remember it.

        Concurrent calls for all topics share one request."""
        self._check_open()
        if topics is None and self._refreshing is not None:
            return await asyncio.shield(self._refreshing)
        names = None if topics is None else sorted(set(topics))
        future: asyncio.Future[None] | None = None
        if names is None:
            future = self._refreshing = asyncio.get_running_loop().create_future()
        try:
            await self._refresh(names)
        except BaseException as exc:
            if future is not None:
                future.set_exception(exc)
                future.exception()
            raise
        else:
            if future is not None:
                future.set_result(None)
        finally:
            if future is not None:
                self._refreshing = None

    async def _refresh(self, names: list[str] | None) -> None:
        """Up to 3 tries, none begun once ``timeout_s`` has passed (a broker that accepts
        connections and never answers takes the whole timeout on the first)."""
        last: BaseException | None = None
        deadline = time.monotonic() + self.timeout_s
        for attempt in range(3):
            if attempt and time.monotonic() >= deadline:
                break
            try:
                connection = await self._any_connection()
                version = connection.version(ApiKey.METADATA)
                request = request_class(ApiKey.METADATA)
                topics = None if names is None else [request.Topics(name=n) for n in names]  # type: ignore[attr-defined]
                if topics is None and version == 0:
                    topics = []
                body = request(topics=topics, allow_auto_topic_creation=False)
                answer = await connection.request(ApiKey.METADATA, body, version=version)
            except BrokerUnavailableError as exc:
                last = exc
                await asyncio.sleep(0.1 * (attempt + 1))
                continue
            self._take(answer, names)
            return
        assert last is not None
        raise last

    def _take(self, answer: object, names: list[str] | None) -> None:
        brokers = {b.node_id: (b.host, b.port) for b in answer.brokers}  # type: ignore[attr-defined]
        if brokers:
            self.brokers = brokers
        self.controller = answer.controller_id  # type: ignore[attr-defined]
        seen = set()
        for topic in answer.topics:  # type: ignore[attr-defined]
            seen.add(topic.name)
            if topic.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                self.topics.pop(topic.name, None)
                continue
            if topic.error_code and not topic.partitions:
                continue  # LEADER_NOT_AVAILABLE while it is being made: ask again later
            parts = sorted(topic.partitions, key=lambda p: p.partition_index)
            self.topics[topic.name] = TopicInfo(
                topic.name,
                tuple(p.leader_id for p in parts),
                tuple(tuple(p.replica_nodes) for p in parts),
                bool(topic.is_internal),
            )
        if names is None:
            for gone in set(self.topics) - seen:
                del self.topics[gone]

    async def topic(self, name: str, *, refresh: bool = False) -> TopicInfo:
        """The metadata of topic ``name``; UnknownTopicError when the cluster has none."""
        if refresh or name not in self.topics:
            await self.refresh([name])
        found = self.topics.get(name)
        if found is None:
            raise UnknownTopicError.named(name)
        return found

    def leader(self, topic: str, partition: int) -> int:
        """The leader node of a partition as last known (-1 when unknown)."""
        info = self.topics.get(topic)
        if info is None or partition >= info.partitions:
            return -1
        return info.leaders[partition]

    # --- group coordinators ------------------------------------------------------------------

    async def coordinator(
        self,
        group: str,
        *,
        refresh: bool = False,
        channel: str = SHARED,
        client_id: str | None = None,
    ) -> BrokerConnection:
        """The connection to ``group``'s coordinator (FindCoordinator, remembered)."""
        node = None if refresh else self._coordinators.get(group)
        if node is None:
            request = request_class(ApiKey.FIND_COORDINATOR)(key=group, key_type=0)
            for attempt in range(20):
                answer = await self.request(ApiKey.FIND_COORDINATOR, request)
                code = ErrorCode.for_code(answer.error_code)  # type: ignore[attr-defined]
                if code == ErrorCode.NONE:
                    break
                if not code.retriable:
                    raise error_for(code, f"find the coordinator of group {group!r}")
                await asyncio.sleep(min(1.0, 0.05 * (attempt + 1)))
            else:
                raise StoreError(
                    f"cannot find the coordinator of group {group!r}: the cluster did not say "
                    "in time; is the broker healthy?"
                )
            node = answer.node_id  # type: ignore[attr-defined]
            self.brokers.setdefault(node, (answer.host, answer.port))  # type: ignore[attr-defined]
            self._coordinators[group] = node
        return await self.connection(node, channel, client_id=client_id)

    def forget_coordinator(self, group: str) -> None:
        self._coordinators.pop(group, None)

    # --- closing ----------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise BrokerUnavailableError("the connection to the cluster is closed")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for connection in list(self._connections.values()):
            await connection.close()
        self._connections.clear()
        if self._bootstrap_connection is not None:
            await self._bootstrap_connection.close()
