"""The embedded connection: a ``file:DIR`` store opened in this process.

It owns the :class:`LogStore`, the group coordinator and the offsets beneath it, and every
producer, consumer and admin made from it. A writable connection holds the directory's lock and
runs the log's upkeep (retention and compaction, :class:`~millstream.core.log.LogMaintenance`)
once as it opens, so that even a short-lived command keeps the store in shape, then every
``maintenance_interval_s`` seconds, its long parts in a worker thread; a read-only one follows
what the owning process writes.

Clients never write the store's internal topics (``__consumer_offsets``…): as in Kafka,
producing to one, or creating, altering or deleting one, raises InvalidTopicError.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Iterable
from pathlib import Path

from ...errors import InvalidTopicError, ReadOnlyStoreError, StoreClosedError
from ...groups import OFFSETS_TOPIC, GroupCoordinator, OffsetStore
from ...log import LogMaintenance, LogStore, is_internal
from ..interface import Admin, Connection, Consumer, OffsetReset, Producer
from .admin import EmbeddedAdmin
from .consumer import EmbeddedConsumer
from .positions import EmbeddedPositionStore
from .producer import EmbeddedProducer

__all__ = ["EmbeddedConnection"]


class EmbeddedConnection(Connection):
    """An embedded store, opened by :func:`millstream.core.client.connect` for ``file:`` URLs."""

    maintenance_interval_s = 60.0

    def __init__(self, store: LogStore, url: str, offsets: OffsetStore) -> None:
        self.store = store
        self.url = url
        self.read_only = store.read_only
        self.offsets = offsets
        self.coordinator = GroupCoordinator(offsets, self._partition_count)
        self._producers: weakref.WeakSet[EmbeddedProducer] = weakref.WeakSet()
        self._consumers: weakref.WeakSet[EmbeddedConsumer] = weakref.WeakSet()
        self._maintenance: LogMaintenance | None = None
        self._closed = False
        self._positions: EmbeddedPositionStore | None = None

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        url: str | None = None,
        read_only: bool = False,
        create: bool = True,
    ) -> EmbeddedConnection:
        """Open the store in ``path``; StoreLockedError when another process writes it (open
        it ``read_only`` to read it meanwhile). With ``create`` False, a ``path`` that holds no
        store raises StoreError instead of becoming one."""
        store = LogStore.open(path, read_only=read_only, create=create)
        maintenance = None if read_only else LogMaintenance(store, cls.maintenance_interval_s)
        try:
            if maintenance is not None:
                maintenance.run_now()
            offsets = OffsetStore.open(store)
        except BaseException:
            await store.close()
            raise
        connection = cls(store, url or f"file:{os.fspath(path)}", offsets)
        if maintenance is not None:
            maintenance.start()
            connection._maintenance = maintenance
        return connection

    @property
    def path(self) -> Path:
        return self.store.path

    def _partition_count(self, topic: str) -> int:
        if not self.store.has_topic(topic):
            return 0
        return len(self.store.topic(topic).partitions)

    # --- making clients --------------------------------------------------------------------

    def producer(
        self,
        *,
        linger_ms: float = 1.0,
        batch_bytes: int = 1_048_576,
        compression: str | None = None,
        client_id: str = "millstream",
    ) -> Producer:
        self.check_open()
        if self.read_only:
            raise ReadOnlyStoreError.during(self.store.path, "produce")
        producer = EmbeddedProducer(
            self,
            linger_ms=linger_ms,
            batch_bytes=batch_bytes,
            compression=compression,
            client_id=client_id,
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
    ) -> Consumer:
        self.check_open()
        consumer = EmbeddedConsumer(
            self,
            group=group,
            auto_offset_reset=auto_offset_reset,
            max_poll_records=max_poll_records,
            client_id=client_id,
        )
        self._consumers.add(consumer)
        topics = [topics] if isinstance(topics, str) else list(topics)
        if topics:
            consumer.subscribe(topics)
        return consumer

    def positions(self) -> EmbeddedPositionStore:
        self.check_open()
        if self._positions is None:
            self._positions = EmbeddedPositionStore(self.store)
        return self._positions

    def admin(self) -> Admin:
        self.check_open()
        return EmbeddedAdmin(self)

    # --- shared by the clients ---------------------------------------------------------------

    def check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"the connection to {self.url} is closed; connect again")

    def refuse_internal(self, topic: str, action: str) -> None:
        """Raise InvalidTopicError when ``topic`` is one of the store's internal topics, which
        only the store itself writes and manages; ``action`` is what was tried ("write to")."""
        if not is_internal(topic):
            return
        why = "only the store itself manages it"
        if topic == OFFSETS_TOPIC and action == "write to":
            why = (
                "consumers store offsets with commit(), and `millstream groups reset-offsets` "
                "moves them"
            )
        raise InvalidTopicError(
            f"topic {topic!r} is internal to the store; clients cannot {action} it: {why}"
        )

    def topic_changed(self, topic: str) -> None:
        """A topic was altered or is about to be deleted: producers seal what they hold for it
        and look it up again; groups rebalance when its partition count changed."""
        for producer in list(self._producers):
            producer.forget_topic(topic)

    def forget_producer(self, producer: EmbeddedProducer) -> None:
        self._producers.discard(producer)

    def forget_consumer(self, consumer: EmbeddedConsumer) -> None:
        self._consumers.discard(consumer)

    # --- closing ---------------------------------------------------------------------------

    async def close(self) -> None:
        if self._closed:
            return
        errors: list[BaseException] = []
        for producer in list(self._producers):
            try:
                await producer.close()
            except Exception as exc:
                errors.append(exc)
        for consumer in list(self._consumers):
            await consumer.close()
        self._closed = True
        if self._maintenance is not None:
            await self._maintenance.stop()
        await self.store.close()
        if errors:
            raise errors[0]
