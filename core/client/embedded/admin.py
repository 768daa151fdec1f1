"""The embedded admin: topics and consumer groups of a store opened in this process."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from ...errors import (
    ConfigError,
    InvalidOffsetError,
    ReadOnlyStoreError,
    StoreClosedError,
    StoreError,
    UnknownGroupError,
)
from ...log import LogStore, Topic, is_internal
from ...record import TopicPartition
from ..interface import (
    Admin,
    GroupDescription,
    GroupMember,
    PartitionDescription,
    PartitionLag,
    TopicDescription,
    checked_offset_spec,
    checked_replication_factor,
)

if TYPE_CHECKING:
    from .connection import EmbeddedConnection

__all__ = ["EmbeddedAdmin"]


class EmbeddedAdmin(Admin):
    """Creates, changes and describes the topics and groups of an embedded store."""

    def __init__(self, connection: EmbeddedConnection) -> None:
        self._connection = connection
        self._closed = False

    @property
    def _store(self) -> LogStore:
        if self._closed:
            raise StoreClosedError("this admin client is closed; make a new one")
        self._connection.check_open()
        return self._connection.store

    def _writable(self, action: str) -> None:
        store = self._store
        if store.read_only:
            raise ReadOnlyStoreError.during(store.path, action)

    def _fresh(self) -> None:
        """In a read-only store, catch up with what the owning process wrote."""
        store = self._store
        if store.read_only:
            store.refresh()
            self._connection.offsets.refresh()

    # --- topics ----------------------------------------------------------------------------

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        config: Mapping[str, str] | None = None,
    ) -> TopicDescription:
        _check_replication_factor(replication_factor)
        self._connection.refuse_internal(name, "create")
        self._writable(f"create topic {name!r}")
        topic = self._store.create_topic(name, partitions, config)
        self._connection.coordinator.topics_changed()
        return _describe(topic)

    async def delete_topic(self, name: str) -> None:
        self._writable(f"delete topic {name!r}")
        store = self._store
        store.topic(name)  # UnknownTopicError first
        self._connection.refuse_internal(name, "delete")
        self._connection.topic_changed(name)
        store.delete_topic(name)
        await self._connection.offsets.forget_topic(name)
        self._connection.coordinator.topics_changed()

    async def list_topics(self, internal: bool = False) -> list[str]:
        self._fresh()
        names = self._store.topic_names()
        return names if internal else [n for n in names if not is_internal(n)]

    async def describe_topic(self, name: str) -> TopicDescription:
        self._fresh()
        return _describe(self._store.topic(name))

    async def alter_topic(
        self,
        name: str,
        partitions: int | None = None,
        config: Mapping[str, str | None] | None = None,
    ) -> TopicDescription:
        self._writable(f"alter topic {name!r}")
        store = self._store
        store.topic(name)  # UnknownTopicError first
        self._connection.refuse_internal(name, "alter")
        self._connection.topic_changed(name)
        topic = store.alter_topic(name, partitions, config)
        self._connection.coordinator.topics_changed()
        return _describe(topic)

    async def list_offsets(self, tp: TopicPartition, spec: str | int) -> int:
        self._fresh()
        partition = self._store.topic(tp.topic).partition(tp.partition)
        checked = checked_offset_spec(tp, spec)
        if checked == "earliest":
            return partition.log_start_offset
        if checked == "latest":
            return partition.high_watermark
        found = partition.offset_for_timestamp(int(checked))
        return partition.high_watermark if found is None else found

    # --- groups ----------------------------------------------------------------------------

    async def list_groups(self) -> list[str]:
        self._fresh()
        return self._connection.coordinator.list_groups()

    async def describe_group(self, group: str) -> GroupDescription:
        self._fresh()
        coordinator = self._connection.coordinator
        snapshot = coordinator.describe(group)
        if snapshot.state == "Dead":
            known = ", ".join(coordinator.list_groups()) or "none"
            raise UnknownGroupError(f"unknown consumer group {group!r}; known groups: {known}")
        store = self._store
        places: set[TopicPartition] = set(snapshot.offsets)
        members = []
        for member in snapshot.members:
            assignment = tuple(sorted(member.assignment))
            places.update(assignment)
            members.append(GroupMember(member.member_id, member.client_id, assignment))
        lags = []
        for tp in sorted(places):
            if not store.has_topic(tp.topic):
                continue
            topic = store.topic(tp.topic)
            if tp.partition >= len(topic.partitions):
                continue
            committed = snapshot.offsets.get(tp)
            lags.append(
                PartitionLag(
                    tp.topic,
                    tp.partition,
                    None if committed is None else committed.offset,
                    topic.partitions[tp.partition].high_watermark,
                )
            )
        return GroupDescription(group, snapshot.state, tuple(members), tuple(lags))

    async def reset_group_offsets(
        self, group: str, topic: str, to: str | int, *, by_timestamp: bool = False
    ) -> dict[TopicPartition, int]:
        self._writable(f"reset the offsets of group {group!r}")
        found = self._store.topic(topic)
        if is_internal(topic):
            raise StoreError(f"topic {topic!r} is internal to the store; groups do not consume it")
        offsets: dict[TopicPartition, int] = {}
        for partition in found.partitions:
            start, end = partition.log_start_offset, partition.high_watermark
            if to == "earliest":
                offset = start
            elif to == "latest":
                offset = end
            elif isinstance(to, int) and not isinstance(to, bool) and to >= 0:
                if by_timestamp:
                    at = partition.offset_for_timestamp(to)
                    offset = end if at is None else at
                else:  # clamped into the log, as Kafka's tool does
                    offset = min(max(to, start), end)
            else:
                what = "a timestamp in ms (>= 0)" if by_timestamp else "an offset (>= 0)"
                raise InvalidOffsetError(
                    f"cannot reset group {group!r} to {to!r}; valid: 'earliest', 'latest' or {what}"
                )
            offsets[TopicPartition(topic, partition.index)] = offset
        await self._connection.coordinator.set_offsets(group, offsets)
        return offsets

    async def delete_group(self, group: str) -> None:
        self._writable(f"delete group {group!r}")
        coordinator = self._connection.coordinator
        if coordinator.describe(group).state == "Dead":
            known = ", ".join(coordinator.list_groups()) or "none"
            raise UnknownGroupError(f"unknown consumer group {group!r}; known groups: {known}")
        await coordinator.delete_group(group)

    async def close(self) -> None:
        self._closed = True


def _check_replication_factor(replication_factor: int | None) -> None:
    if (checked_replication_factor(replication_factor) or 1) > 1:
        raise ConfigError(
            f"replication factor {replication_factor} is not possible on the embedded store, "
            "which keeps one copy of each partition (use 1); replication arrives with the "
            "cluster: run `millstream broker`"
        )


def _describe(topic: Topic) -> TopicDescription:
    partitions = tuple(
        PartitionDescription(
            partition=p.index,
            earliest_offset=p.log_start_offset,
            latest_offset=p.high_watermark,
            size_bytes=p.size_bytes,
            segments=p.segment_count,
        )
        for p in topic.partitions
    )
    return TopicDescription(
        name=topic.name,
        partitions=partitions,
        configs=topic.config.all(),
        replication_factor=1,
        internal=topic.internal,
        overrides=frozenset(topic.config.overrides),
    )
