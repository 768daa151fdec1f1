"""Offsets over the network: where partitions start and end (ListOffsets, to each leader) and a
group's committed offsets (OffsetFetch and OffsetCommit, to its coordinator).

Shared by the consumer and the admin client. Each function retries what the cluster calls
retriable (a leader that moved, a coordinator still loading) a few times, looking the metadata
or the coordinator up again in between.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any

from ...protocol import ApiKey, ErrorCode, request_class
from ...record import TopicPartition
from .cluster import Cluster
from .failures import REFRESH_METADATA, error_for
from .wire import BrokerUnavailableError

__all__ = [
    "EARLIEST",
    "LATEST",
    "LEADER_WAIT_S",
    "ask_coordinator",
    "commit_offsets",
    "fetch_committed",
    "list_offsets",
]

EARLIEST = -2
"""ListOffsets' timestamp for the earliest offset."""
LATEST = -1
"""ListOffsets' timestamp for the latest offset (the high watermark)."""

_COORDINATOR_WAIT_S = 30.0
LEADER_WAIT_S = 30.0
"""How long a partition may be without a reachable leader before a request to it fails (a
dead leader is replaced once the cluster notices: 9 s by Kafka's defaults)."""
_COORDINATOR_ERRORS = frozenset(
    {
        ErrorCode.NOT_COORDINATOR,
        ErrorCode.COORDINATOR_NOT_AVAILABLE,
        ErrorCode.COORDINATOR_LOAD_IN_PROGRESS,
    }
)


async def list_offsets(
    cluster: Cluster, wanted: Mapping[TopicPartition, int]
) -> dict[TopicPartition, int]:
    """The offset of each partition for its timestamp (EARLIEST, LATEST or ms since the epoch;
    a timestamp later than every record gives the latest offset)."""
    request_type = request_class(ApiKey.LIST_OFFSETS)
    found: dict[TopicPartition, int] = {}
    left = dict(wanted)
    deadline = time.monotonic() + LEADER_WAIT_S
    attempt = 0
    while attempt == 0 or time.monotonic() < deadline:
        attempt += 1
        by_node: dict[int, list[TopicPartition]] = {}
        for tp in left:
            node = cluster.leader(tp.topic, tp.partition)
            if node < 0:
                await cluster.topic(tp.topic, refresh=True)
                info = cluster.topics[tp.topic]
                if tp.partition >= info.partitions:
                    raise _no_partition(tp, info.partitions)
                node = cluster.leader(tp.topic, tp.partition)
            by_node.setdefault(node, []).append(tp)
        retry = False
        for node, tps in by_node.items():
            topics: dict[str, list[Any]] = {}
            for tp in tps:
                topics.setdefault(tp.topic, []).append(
                    request_type.Topics.Partitions(  # type: ignore[attr-defined]
                        partition_index=tp.partition, timestamp=left[tp]
                    )
                )
            request = request_type(
                replica_id=-1,
                isolation_level=0,
                topics=[
                    request_type.Topics(name=t, partitions=p)  # type: ignore[attr-defined]
                    for t, p in topics.items()
                ],
            )
            try:
                answer = await cluster.request(ApiKey.LIST_OFFSETS, request, node=node)
            except BrokerUnavailableError:
                retry = True
                continue
            for topic in answer.topics:  # type: ignore[attr-defined]
                for part in topic.partitions:
                    tp = TopicPartition(topic.name, part.partition_index)
                    code = ErrorCode.for_code(part.error_code)
                    if code == ErrorCode.NONE:
                        offset = part.offset
                        if offset < 0:  # no record that recent: the end
                            left[tp] = LATEST
                            retry = True
                            continue
                        found[tp] = offset
                        left.pop(tp, None)
                    elif code in REFRESH_METADATA or code.retriable:
                        retry = True
                    else:
                        raise error_for(code, f"list offsets of {tp}")
        if not left:
            return found
        if retry:
            if attempt > 1:
                await asyncio.sleep(min(0.5, 0.05 * attempt))
            await cluster.refresh({tp.topic for tp in left})
            for tp in left:
                known = cluster.topics.get(tp.topic)
                if known is None:
                    raise error_for(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"list offsets of {tp}")
                if tp.partition >= known.partitions:
                    raise _no_partition(tp, known.partitions)
    raise BrokerUnavailableError(
        "cannot list offsets of "
        + ", ".join(str(tp) for tp in sorted(left))
        + f": no leader answered within {LEADER_WAIT_S:g} s"
    )


def _no_partition(tp: TopicPartition, count: int) -> Exception:
    from ...errors import InvalidPartitionsError

    return InvalidPartitionsError(
        f"partition {tp.partition} does not exist in topic {tp.topic!r}; "
        f"valid partitions are 0 to {count - 1}"
    )


async def fetch_committed(
    cluster: Cluster, group: str, partitions: list[TopicPartition] | None
) -> dict[TopicPartition, int]:
    """The group's committed offsets of ``partitions`` (every one it has when None); a
    partition without one is left out."""
    request_type = request_class(ApiKey.OFFSET_FETCH)
    topics = None
    if partitions is not None:
        by_topic: dict[str, list[int]] = {}
        for tp in partitions:
            by_topic.setdefault(tp.topic, []).append(tp.partition)
        topics = [
            request_type.Topics(name=t, partition_indexes=sorted(p))  # type: ignore[attr-defined]
            for t, p in by_topic.items()
        ]
    request = request_type(group_id=group, topics=topics)
    answer = await ask_coordinator(
        cluster, group, ApiKey.OFFSET_FETCH, request, lambda a: a.error_code
    )
    code = ErrorCode.for_code(answer.error_code)
    if code not in (ErrorCode.NONE, ErrorCode.GROUP_ID_NOT_FOUND):
        raise error_for(code, f"read the committed offsets of group {group!r}")
    out: dict[TopicPartition, int] = {}
    for topic in answer.topics:
        for part in topic.partitions:
            if part.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
                continue
            if part.error_code:
                raise error_for(part.error_code, f"read the committed offsets of {group!r}")
            if part.committed_offset >= 0:
                out[TopicPartition(topic.name, part.partition_index)] = part.committed_offset
    return out


async def ask_coordinator(
    cluster: Cluster, group: str, api_key: int, request: Any, error_of: Callable[[Any], int]
) -> Any:
    """The answer of ``group``'s coordinator to ``request``, asked again (the coordinator looked
    up anew) while ``error_of(answer)`` says it is not the coordinator or is still loading, or
    the connection is lost: a group's coordinator moves with its partition of
    ``__consumer_offsets``, and Kafka loads that partition for seconds after it moved or was
    first made, and a dead coordinator is replaced only once the cluster notices (Kafka's
    ``broker.session.timeout.ms``, 9 s). BrokerUnavailableError after 30 seconds of that."""
    deadline = time.monotonic() + _COORDINATOR_WAIT_S
    attempt = 0
    while True:
        try:
            coordinator = await cluster.coordinator(group)
            answer = await coordinator.request(api_key, request)
        except BrokerUnavailableError:
            answer = None
        if answer is not None and ErrorCode.for_code(error_of(answer)) not in _COORDINATOR_ERRORS:
            return answer
        cluster.forget_coordinator(group)
        attempt += 1
        if time.monotonic() >= deadline:
            raise BrokerUnavailableError(
                f"cannot reach the coordinator of group {group!r} (asked {attempt} times)"
            )
        await asyncio.sleep(min(0.5, 0.05 * attempt))


async def commit_offsets(
    cluster: Cluster,
    group: str,
    offsets: Mapping[TopicPartition, int],
    *,
    generation: int = -1,
    member_id: str = "",
) -> dict[TopicPartition, ErrorCode]:
    """Commit ``offsets`` for ``group`` as member ``member_id`` of ``generation`` (-1 and ""
    outside any generation). Returns the partitions the coordinator refused, with why; errors
    that concern the whole request raise."""
    request_type = request_class(ApiKey.OFFSET_COMMIT)
    by_topic: dict[str, list[Any]] = {}
    for tp, offset in sorted(offsets.items()):
        by_topic.setdefault(tp.topic, []).append(
            request_type.Topics.Partitions(  # type: ignore[attr-defined]
                partition_index=tp.partition,
                committed_offset=offset,
                committed_leader_epoch=-1,
                committed_metadata="",
            )
        )
    request = request_type(
        group_id=group,
        generation_id_or_member_epoch=generation,
        member_id=member_id,
        group_instance_id=None,
        retention_time_ms=-1,
        topics=[
            request_type.Topics(name=t, partitions=p)  # type: ignore[attr-defined]
            for t, p in by_topic.items()
        ],
    )
    answer = await ask_coordinator(
        cluster, group, ApiKey.OFFSET_COMMIT, request, _coordinator_error_of_commit
    )
    refused: dict[TopicPartition, ErrorCode] = {}
    for topic in answer.topics:
        for part in topic.partitions:
            code = ErrorCode.for_code(part.error_code)
            if code != ErrorCode.NONE:
                refused[TopicPartition(topic.name, part.partition_index)] = code
    return refused


def _coordinator_error_of_commit(answer: Any) -> int:
    """An OffsetCommit answer's coordinator error (they come per partition), else 0."""
    for topic in answer.topics:
        for part in topic.partitions:
            if part.error_code in _COORDINATOR_ERRORS:
                return int(part.error_code)
    return 0
