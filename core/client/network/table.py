"""A table of keys and values kept in a compacted topic of the cluster (partition 0).

One record per key (UTF-8), its value the latest one written; a tombstone (no value) removes the
key, and compaction keeps only the latest record of each. Reads come from memory, caught up from
the topic (Fetch from where the last read ended) before each read, so what another process wrote
is seen too. A write is one Produce with acks=all: durable on the cluster when it returns. The
topic is made on the first write (one partition, the cluster's default replication factor).

Source positions (``__source_positions``) and topic codecs on a cluster that does not keep
millstream's own topic configs (``__topic_codecs``) are such tables.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ...errors import StoreError, TopicExistsError
from ...log.batch import decode_records, iter_batches
from ...log.encoder import encode_batch
from ...protocol import ApiKey, ErrorCode, request_class
from ...record import Record, TopicPartition
from .failures import REFRESH_METADATA, error_for
from .offsets import LATEST, LEADER_WAIT_S, list_offsets
from .wire import BrokerUnavailableError

if TYPE_CHECKING:
    from .connection import NetworkConnection

__all__ = ["KeyedTable"]

_COMPACTED = {"cleanup.policy": "compact", "segment.bytes": "104857600"}


class KeyedTable:
    """Keys and values in partition 0 of the compacted topic ``topic``."""

    def __init__(self, connection: NetworkConnection, topic: str) -> None:
        self.topic = topic
        self._connection = connection
        self._tp = TopicPartition(topic, 0)
        self._rows: dict[str, bytes] = {}
        self._loaded = 0

    async def get(self, key: str) -> bytes | None:
        """The value of ``key`` (None when it has none), as the topic has it now."""
        await self._catch_up()
        return self._rows.get(key)

    async def keys(self) -> list[str]:
        """Every key with a value, sorted."""
        await self._catch_up()
        return sorted(self._rows)

    async def put(self, key: str, value: bytes | None) -> None:
        """Write ``value`` for ``key`` (None removes it); durable on the cluster when it returns."""
        self._connection.check_open()
        if not await self._exists():
            await self._create()
        produce = request_class(ApiKey.PRODUCE)
        request = produce(
            transactional_id=None,
            acks=-1,
            timeout_ms=30_000,
            topic_data=[
                produce.TopicData(  # type: ignore[attr-defined]
                    name=self.topic,
                    partition_data=[
                        produce.TopicData.PartitionData(  # type: ignore[attr-defined]
                            index=0, records=bytes(encode_batch([Record(key.encode(), value)]))
                        )
                    ],
                )
            ],
        )
        answer = await self._to_leader(
            ApiKey.PRODUCE, request, lambda a: a.responses[0].partition_responses[0].error_code
        )
        part = answer.responses[0].partition_responses[0]
        if part.error_code:
            raise error_for(part.error_code, f"store {key!r} in {self.topic!r}", part.error_message)
        if value is None:
            self._rows.pop(key, None)
        else:
            self._rows[key] = value

    async def _exists(self) -> bool:
        cluster = self._connection.cluster
        if self.topic not in cluster.topics:
            await cluster.refresh([self.topic])
        return self.topic in cluster.topics

    async def _create(self) -> None:
        request_type = request_class(ApiKey.CREATE_TOPICS)
        request = request_type(
            topics=[
                request_type.Topics(  # type: ignore[attr-defined]
                    name=self.topic,
                    num_partitions=1,
                    replication_factor=-1,  # the cluster's default.replication.factor
                    assignments=[],
                    configs=[
                        request_type.Topics.Configs(name=k, value=v)  # type: ignore[attr-defined]
                        for k, v in _COMPACTED.items()
                    ],
                )
            ],
            timeout_ms=30_000,
            validate_only=False,
        )
        controller = await self._connection.cluster.controller_connection()
        answer = await controller.request(ApiKey.CREATE_TOPICS, request)
        for result in answer.topics:
            if result.error_code and result.error_code != ErrorCode.TOPIC_ALREADY_EXISTS:
                error = error_for(
                    result.error_code, f"create topic {self.topic!r}", result.error_message
                )
                if not isinstance(error, TopicExistsError):
                    raise error
        for _ in range(50):
            await self._connection.cluster.refresh([self.topic])
            if self._connection.cluster.leader(self.topic, 0) >= 0:
                return
        raise StoreError(f"topic {self.topic!r} was created but has no leader yet")

    async def _catch_up(self) -> None:
        """Read what was written to the topic since the last read."""
        self._connection.check_open()
        if not await self._exists():
            return
        cluster = self._connection.cluster
        end = (await list_offsets(cluster, {self._tp: LATEST}))[self._tp]
        fetch = request_class(ApiKey.FETCH)
        while self._loaded < end:
            request = fetch(
                replica_id=-1,
                max_wait_ms=0,
                min_bytes=0,
                max_bytes=16 << 20,
                isolation_level=0,
                session_id=0,
                session_epoch=-1,
                topics=[
                    fetch.Topics(  # type: ignore[attr-defined]
                        topic=self.topic,
                        partitions=[
                            fetch.Topics.Partitions(  # type: ignore[attr-defined]
                                partition=0,
                                current_leader_epoch=-1,
                                fetch_offset=self._loaded,
                                log_start_offset=-1,
                                partition_max_bytes=8 << 20,
                            )
                        ],
                    )
                ],
                forgotten_topics_data=[],
                rack_id="",
            )
            answer = await self._to_leader(
                ApiKey.FETCH, request, lambda a: a.responses[0].partitions[0].error_code
            )
            part = answer.responses[0].partitions[0]
            if part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:  # compacted or cleaned away
                self._loaded = max(self._loaded, part.log_start_offset)
                continue
            if part.error_code:
                raise error_for(part.error_code, f"read {self.topic!r}")
            raw = part.records or b""
            before = self._loaded
            for pos, header in iter_batches(raw):
                batch = memoryview(raw)[pos : pos + header.size]
                for record in decode_records(batch, self.topic, 0, min_offset=self._loaded):
                    if record.key is not None:
                        name = record.key.decode(errors="replace")
                        if record.value is None:
                            self._rows.pop(name, None)
                        else:
                            self._rows[name] = record.value
                self._loaded = max(self._loaded, header.next_offset)
            if self._loaded == before:
                break  # nothing readable yet (a batch larger than the fetch): try next time

    async def _to_leader(self, api_key: int, request: Any, error_of: Callable[[Any], int]) -> Any:
        """The answer of the partition's leader to ``request``, asked again (the metadata
        looked up anew) while the leader is unreachable or says it moved, for up to 30 s."""
        cluster = self._connection.cluster
        deadline = time.monotonic() + LEADER_WAIT_S
        attempt = 0
        while True:
            attempt += 1
            try:
                answer: Any = await cluster.request(
                    api_key, request, node=cluster.leader(self.topic, 0)
                )
            except BrokerUnavailableError:
                if time.monotonic() >= deadline:
                    raise
            else:
                code = ErrorCode.for_code(error_of(answer))
                again = code in REFRESH_METADATA or code.retriable
                if not again or time.monotonic() >= deadline:
                    return answer
            await asyncio.sleep(min(0.5, 0.05 * attempt))
            await cluster.refresh([self.topic])
