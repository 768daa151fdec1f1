"""Source positions over the network: the compacted topic ``__source_positions`` on the broker.

The same layout as the embedded store's (:mod:`..embedded.positions`): one record per source in
partition 0, keyed ``<pipeline>/<source>`` (UTF-8), its value the last acknowledged position; a
tombstone forgets a source. Reads come from memory, caught up from the topic (Fetch from where
the last read ended) before each read, so positions another process stored are seen too. A put
is one idempotent-free Produce with acks=all: durable on the broker when it returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ...errors import StoreError, TopicExistsError
from ...log.batch import decode_records, iter_batches
from ...log.encoder import encode_batch
from ...protocol import ApiKey, ErrorCode, request_class
from ...record import Record, TopicPartition
from ..interface import PositionStore
from .failures import error_for
from .offsets import LATEST, list_offsets

if TYPE_CHECKING:
    from .connection import NetworkConnection

__all__ = ["POSITIONS_TOPIC", "NetworkPositionStore"]

POSITIONS_TOPIC = "__source_positions"
_TOPIC_CONFIG = {"cleanup.policy": "compact", "segment.bytes": "104857600"}
_TP = TopicPartition(POSITIONS_TOPIC, 0)


class NetworkPositionStore(PositionStore):
    """Positions kept in partition 0 of ``__source_positions`` on the cluster."""

    def __init__(self, connection: NetworkConnection) -> None:
        self._connection = connection
        self._positions: dict[str, bytes] = {}
        self._loaded = 0

    async def _exists(self) -> bool:
        cluster = self._connection.cluster
        if POSITIONS_TOPIC not in cluster.topics:
            await cluster.refresh([POSITIONS_TOPIC])
        return POSITIONS_TOPIC in cluster.topics

    async def _create(self) -> None:
        request_type = request_class(ApiKey.CREATE_TOPICS)
        request = request_type(
            topics=[
                request_type.Topics(  # type: ignore[attr-defined]
                    name=POSITIONS_TOPIC,
                    num_partitions=1,
                    replication_factor=-1,  # the cluster's default.replication.factor
                    assignments=[],
                    configs=[
                        request_type.Topics.Configs(name=k, value=v)  # type: ignore[attr-defined]
                        for k, v in _TOPIC_CONFIG.items()
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
                    result.error_code, f"create topic {POSITIONS_TOPIC!r}", result.error_message
                )
                if not isinstance(error, TopicExistsError):
                    raise error
        for _ in range(50):
            await self._connection.cluster.refresh([POSITIONS_TOPIC])
            if self._connection.cluster.leader(POSITIONS_TOPIC, 0) >= 0:
                return
        raise StoreError(f"topic {POSITIONS_TOPIC!r} was created but has no leader yet")

    async def _catch_up(self) -> None:
        """Read what was written to the topic since the last read."""
        self._connection.check_open()
        if not await self._exists():
            return
        cluster = self._connection.cluster
        end = (await list_offsets(cluster, {_TP: LATEST}))[_TP]
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
                        topic=POSITIONS_TOPIC,
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
            answer: Any = await cluster.request(
                ApiKey.FETCH, request, node=cluster.leader(POSITIONS_TOPIC, 0)
            )
            part = answer.responses[0].partitions[0]
            if part.error_code == ErrorCode.OFFSET_OUT_OF_RANGE:  # compacted or cleaned away
                self._loaded = max(self._loaded, part.log_start_offset)
                continue
            if part.error_code:
                raise error_for(part.error_code, f"read {POSITIONS_TOPIC!r}")
            raw = part.records or b""
            before = self._loaded
            for pos, header in iter_batches(raw):
                batch = memoryview(raw)[pos : pos + header.size]
                for record in decode_records(batch, POSITIONS_TOPIC, 0, min_offset=self._loaded):
                    if record.key is not None:
                        name = record.key.decode(errors="replace")
                        if record.value is None:
                            self._positions.pop(name, None)
                        else:
                            self._positions[name] = record.value
                self._loaded = max(self._loaded, header.next_offset)
            if self._loaded == before:
                break  # nothing readable yet (a batch larger than the fetch): try next time

    async def get(self, key: str) -> bytes | None:
        await self._catch_up()
        return self._positions.get(key)

    async def put(self, key: str, value: bytes | None) -> None:
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
                    name=POSITIONS_TOPIC,
                    partition_data=[
                        produce.TopicData.PartitionData(  # type: ignore[attr-defined]
                            index=0, records=bytes(encode_batch([Record(key.encode(), value)]))
                        )
                    ],
                )
            ],
        )
        cluster = self._connection.cluster
        for attempt in range(3):
            answer: Any = await cluster.request(
                ApiKey.PRODUCE, request, node=cluster.leader(POSITIONS_TOPIC, 0)
            )
            part = answer.responses[0].partition_responses[0]
            code = ErrorCode.for_code(part.error_code)
            if code == ErrorCode.NONE:
                break
            if not code.retriable or attempt == 2:
                raise error_for(code, f"store the position of {key!r}", part.error_message)
            await cluster.refresh([POSITIONS_TOPIC])
        if value is None:
            self._positions.pop(key, None)
        else:
            self._positions[key] = value

    async def keys(self) -> list[str]:
        await self._catch_up()
        return sorted(self._positions)
