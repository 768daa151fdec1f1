"""The network admin: topics and consumer groups of a cluster, through the Kafka admin APIs.

Topics: CreateTopics, DeleteTopics and CreatePartitions go to the controller; configs are read
with DescribeConfigs and set with AlterConfigs, which replaces a topic's whole set of overrides,
so the overrides in place are read first and merged with the change. Offsets come from
ListOffsets, sizes from DescribeLogDirs where the broker has it.

millstream's own topic configs (``codec``, ``flush.policy``) go to a cluster that keeps them (a
millstream broker) with the others. Apache Kafka refuses names it does not know: there a topic's
codec is kept beside it, in ``__topic_codecs`` (:mod:`.topic_codecs`), and ``flush.policy``,
which Kafka could not honour, is refused with what to do instead.

Groups: ListGroups asks every broker; DescribeGroups, OffsetFetch and DeleteGroups go to the
group's coordinator. Resetting a group's offsets commits them outside any generation, which the
coordinator accepts only while the group has no live members.
"""

from __future__ import annotations

import asyncio
import uuid
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ...errors import (
    ConfigError,
    InvalidOffsetError,
    InvalidPartitionsError,
    StoreClosedError,
    StoreError,
    UnknownGroupError,
)
from ...log import is_internal
from ...log.config import CONFIG_KEYS, OWN_CONFIG_KEYS, TopicConfig
from ...protocol import ApiKey, ErrorCode, request_class
from ...record import TopicPartition
from .. import redact_url
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
from .assignors import Assignment
from .failures import error_for
from .offsets import (
    EARLIEST,
    LATEST,
    ask_coordinator,
    commit_offsets,
    fetch_committed,
    list_offsets,
)
from .wire import BrokerUnavailableError

if TYPE_CHECKING:
    from .connection import NetworkConnection

__all__ = ["NetworkAdmin", "describe_configs"]

_TOPIC_RESOURCE = 2
_DYNAMIC_TOPIC_CONFIG = 1
_TIMEOUT_MS = 30_000

_INSTEAD = {"flush.policy": "Kafka syncs to disk as its flush.ms and flush.messages say"}
"""What to do instead of setting each of millstream's own configs that Apache Kafka cannot
keep; ``codec`` is kept beside the topic there instead (:mod:`.topic_codecs`)."""
_CODEC = "codec"

_keeps_own_configs: weakref.WeakKeyDictionary[NetworkConnection, bool] = weakref.WeakKeyDictionary()
"""Per connection: whether its cluster keeps millstream's own topic configs (asked once)."""


async def describe_configs(
    connection: NetworkConnection, topics: list[str]
) -> dict[str, dict[str, tuple[str, bool]]]:
    """Every config of ``topics``: ``{topic: {name: (value, overridden)}}``; topics the broker
    does not know are left out."""
    if not topics:
        return {}
    request_type = request_class(ApiKey.DESCRIBE_CONFIGS)
    request = request_type(
        resources=[
            request_type.Resources(  # type: ignore[attr-defined]
                resource_type=_TOPIC_RESOURCE, resource_name=t, configuration_keys=None
            )
            for t in topics
        ],
        include_synonyms=False,
    )
    answer: Any = await connection.cluster.request(ApiKey.DESCRIBE_CONFIGS, request)
    out: dict[str, dict[str, tuple[str, bool]]] = {}
    for result in answer.results:
        if result.error_code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION:
            continue
        if result.error_code:
            raise error_for(
                result.error_code,
                f"read the configs of {result.resource_name!r}",
                result.error_message,
            )
        out[result.resource_name] = {
            c.name: (c.value or "", c.config_source == _DYNAMIC_TOPIC_CONFIG)
            for c in result.configs
        }
    return out


class NetworkAdmin(Admin):
    """Creates, changes and describes the topics and groups of a cluster."""

    def __init__(self, connection: NetworkConnection) -> None:
        self._connection = connection
        self._cluster = connection.cluster
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError("this admin client is closed; make a new one")
        self._connection.check_open()

    # --- topics ----------------------------------------------------------------------------

    async def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int | None = None,
        config: Mapping[str, str] | None = None,
    ) -> TopicDescription:
        self._check_open()
        checked_replication_factor(replication_factor)
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise InvalidPartitionsError(
                f"partition count {partitions!r} is not valid; a topic has 1 or more"
            )
        self._connection.refuse_internal(name, "create")
        config, codec = await self._kept(config or {}, f"create topic {name!r}")
        request_type = request_class(ApiKey.CREATE_TOPICS)
        topic = request_type.Topics(  # type: ignore[attr-defined]
            name=name,
            num_partitions=partitions,
            replication_factor=-1 if replication_factor is None else replication_factor,
            assignments=[],
            configs=[
                request_type.Topics.Configs(name=k, value=v)  # type: ignore[attr-defined]
                for k, v in config.items()
            ],
        )
        request = request_type(topics=[topic], timeout_ms=_TIMEOUT_MS, validate_only=False)
        controller = await self._cluster.controller_connection()
        answer = await controller.request(ApiKey.CREATE_TOPICS, request)
        for result in answer.topics:
            if result.error_code == ErrorCode.TOPIC_ALREADY_EXISTS:
                # another client made it first: learn it (Kafka's brokers may take a moment to
                # list it) so that what follows, a subscribe, finds it
                await self._await_leaders(name)
            if result.error_code:
                raise error_for(result.error_code, f"create topic {name!r}", result.error_message)
        await self._await_leaders(name)
        if not await self._keeps_own_configs():
            # also when none is given: a codec kept for an earlier topic of this name goes
            await self._connection.topic_codecs.set(name, codec)
        return await self.describe_topic(name)

    async def keeps_config(self, key: str) -> bool:
        return key not in OWN_CONFIG_KEYS or key == _CODEC or await self._keeps_own_configs()

    async def node_count(self) -> int:
        self._check_open()
        await self._cluster.refresh()
        return len(self._cluster.brokers)

    async def _keeps_own_configs(self) -> bool:
        """Whether the cluster keeps millstream's own configs with its topics (asked once per
        connection)."""
        connection = self._connection
        kept = _keeps_own_configs.get(connection)
        if kept is None:
            kept = _keeps_own_configs[connection] = await self._probe_own_configs()
        return kept

    async def _probe_own_configs(self) -> bool:
        """Ask the controller to check, not make, a topic with ``codec=json``: a millstream
        broker accepts it, Apache Kafka answers INVALID_CONFIG (and any other refusal is taken
        as a no too: nothing millstream-only is then sent)."""
        request_type = request_class(ApiKey.CREATE_TOPICS)
        topic = request_type.Topics(  # type: ignore[attr-defined]
            name=f"millstream-probe-{uuid.uuid4().hex[:12]}",
            num_partitions=1,
            replication_factor=1,
            assignments=[],
            configs=[request_type.Topics.Configs(name="codec", value="json")],  # type: ignore[attr-defined]
        )
        controller = await self._cluster.controller_connection()
        request = request_type(topics=[topic], timeout_ms=_TIMEOUT_MS, validate_only=True)
        answer = await controller.request(ApiKey.CREATE_TOPICS, request)
        return all(result.error_code == ErrorCode.NONE for result in answer.topics)

    async def _kept(
        self, config: Mapping[str, str], action: str
    ) -> tuple[dict[str, str], str | None]:
        """``config`` fit for the cluster, and the codec to keep beside the topic (None when
        the cluster keeps it, or none is given). Where the cluster does not keep millstream's
        own keys, the codec is taken out (and checked, as a broker would), one of the others
        at its default is left out (the topic reads as that anyway) and one set otherwise is a
        ConfigError naming it, instead of the broker's "unknown config"."""
        out = dict(config)
        own = OWN_CONFIG_KEYS & out.keys()
        if not own or await self._keeps_own_configs():
            return out, None
        codec = out.pop(_CODEC, None)
        if codec is not None:
            codec = TopicConfig.parse({_CODEC: codec}).codec  # checked as a broker would
        for key in sorted(own - {_CODEC}):
            value = out.pop(key)
            if value != CONFIG_KEYS[key].default:
                raise ConfigError(
                    f"cannot {action}: {key}={value} is a millstream topic config, and "
                    f"{redact_url(self._connection.url)} does not keep it; leave it out there "
                    f"({_INSTEAD[key]})"
                )
        return out, codec

    async def _await_leaders(self, name: str) -> None:
        """Wait until the metadata names a leader for every partition of ``name``."""
        for attempt in range(50):
            await self._cluster.refresh([name])
            info = self._cluster.topics.get(name)
            if info is not None and all(leader >= 0 for leader in info.leaders):
                await self._connection.look_up_topic(name)
                return
            await asyncio.sleep(0.02 * min(attempt + 1, 10))

    async def delete_topic(self, name: str) -> None:
        self._check_open()
        await self._cluster.topic(name, refresh=True)  # UnknownTopicError first
        self._connection.refuse_internal(name, "delete")
        self._connection.topic_changed(name)
        request = request_class(ApiKey.DELETE_TOPICS)(topic_names=[name], timeout_ms=_TIMEOUT_MS)
        controller = await self._cluster.controller_connection()
        answer = await controller.request(ApiKey.DELETE_TOPICS, request)
        for result in answer.responses:
            if result.error_code:
                raise error_for(result.error_code, f"delete topic {name!r}")
        self._cluster.topics.pop(name, None)
        self._connection.topic_configs.pop(name, None)
        if not await self._keeps_own_configs():
            await self._connection.topic_codecs.set(name, None)

    async def list_topics(self, internal: bool = False) -> list[str]:
        self._check_open()
        await self._cluster.refresh()
        return sorted(
            name
            for name, info in self._cluster.topics.items()
            if internal or not (info.internal or is_internal(name))
        )

    async def describe_topic(self, name: str) -> TopicDescription:
        self._check_open()
        info = await self._cluster.topic(name, refresh=True)
        tps = [TopicPartition(name, p) for p in range(info.partitions)]
        starts = await list_offsets(self._cluster, dict.fromkeys(tps, EARLIEST))
        ends = await list_offsets(self._cluster, dict.fromkeys(tps, LATEST))
        configs = (await describe_configs(self._connection, [name])).get(name, {})
        if _CODEC not in configs:  # a cluster that does not keep it: beside the topic
            codec = await self._connection.topic_codecs.get(name)
            configs[_CODEC] = (codec or CONFIG_KEYS[_CODEC].default, codec is not None)
        sizes = await self._sizes(name)
        partitions = tuple(
            PartitionDescription(
                partition=p,
                earliest_offset=starts[tp],
                latest_offset=ends[tp],
                size_bytes=sizes.get(p, 0),
                segments=0,
                leader=info.leaders[p],
                replicas=info.replicas[p] or (info.leaders[p],),
            )
            for p, tp in enumerate(tps)
        )
        return TopicDescription(
            name=name,
            partitions=partitions,
            configs={k: v for k, (v, _) in sorted(configs.items())},
            replication_factor=len(info.replicas[0]) if info.replicas else 1,
            internal=info.internal or is_internal(name),
            overrides=frozenset(k for k, (_, overridden) in configs.items() if overridden),
        )

    async def _sizes(self, name: str) -> dict[int, int]:
        """Bytes per partition of ``name`` on its leaders (DescribeLogDirs), where supported."""
        request_type = request_class(ApiKey.DESCRIBE_LOG_DIRS)
        sizes: dict[int, int] = {}
        leaders = self._cluster.topics[name].leaders
        nodes = {leader for leader in leaders if leader >= 0}
        # every partition named: Kafka reads an empty list as none of them
        wanted = request_type.Topics(topic=name, partitions=list(range(len(leaders))))  # type: ignore[attr-defined]
        for node in nodes:
            try:
                connection = await self._cluster.connection(node)
                if not connection.supports(ApiKey.DESCRIBE_LOG_DIRS):
                    continue
                answer = await connection.request(
                    ApiKey.DESCRIBE_LOG_DIRS,
                    request_type(topics=[wanted]),
                )
            except (BrokerUnavailableError, StoreError):
                continue
            for result in answer.results:
                for topic in result.topics:
                    if topic.name == name:
                        for part in topic.partitions:
                            sizes[part.partition_index] = max(
                                sizes.get(part.partition_index, 0), part.partition_size
                            )
        return sizes

    async def alter_topic(
        self,
        name: str,
        partitions: int | None = None,
        config: Mapping[str, str | None] | None = None,
    ) -> TopicDescription:
        self._check_open()
        info = await self._cluster.topic(name, refresh=True)
        self._connection.refuse_internal(name, "alter")
        self._connection.topic_changed(name)
        merged: dict[str, str] | None = None
        codec: str | None = None
        if config:
            current = (await describe_configs(self._connection, [name])).get(name, {})
            merged = {k: v for k, (v, overridden) in current.items() if overridden}
            for key, value in config.items():
                if value is None:
                    merged.pop(key, None)
                else:
                    merged[key] = value
            merged, codec = await self._kept(merged, f"set configs of {name!r}")
            # checked before anything changes: a refused config leaves the partitions as
            # they were
            await self._alter_configs(name, merged, validate_only=True)
        if partitions is not None and partitions != info.partitions:
            if partitions < info.partitions:
                raise InvalidPartitionsError(
                    f"topic {name!r} has {info.partitions} partitions; partitions can only be "
                    f"added, so give more than {info.partitions}"
                )
            request_type = request_class(ApiKey.CREATE_PARTITIONS)
            request = request_type(
                topics=[
                    request_type.Topics(name=name, count=partitions, assignments=None)  # type: ignore[attr-defined]
                ],
                timeout_ms=_TIMEOUT_MS,
                validate_only=False,
            )
            controller = await self._cluster.controller_connection()
            answer = await controller.request(ApiKey.CREATE_PARTITIONS, request)
            for result in answer.results:
                if result.error_code:
                    raise error_for(
                        result.error_code, f"add partitions to {name!r}", result.error_message
                    )
        if merged is not None:
            await self._alter_configs(name, merged, validate_only=False)
        if config and _CODEC in config and not await self._keeps_own_configs():
            await self._connection.topic_codecs.set(name, codec)
        if partitions is not None:
            await self._await_leaders(name)
        self._connection.topic_configs.pop(name, None)
        await self._connection.look_up_topic(name)
        return await self.describe_topic(name)

    async def _alter_configs(
        self, name: str, configs: Mapping[str, str], *, validate_only: bool
    ) -> None:
        """Set the whole config of topic ``name`` to ``configs`` (AlterConfigs replaces every
        override), or only check it with ``validate_only``; the broker's refusal raised."""
        request_type = request_class(ApiKey.ALTER_CONFIGS)
        request = request_type(
            resources=[
                request_type.Resources(  # type: ignore[attr-defined]
                    resource_type=_TOPIC_RESOURCE,
                    resource_name=name,
                    configs=[
                        request_type.Resources.Configs(name=k, value=v)  # type: ignore[attr-defined]
                        for k, v in sorted(configs.items())
                    ],
                )
            ],
            validate_only=validate_only,
        )
        answer = await self._cluster.request(ApiKey.ALTER_CONFIGS, request)
        for result in answer.responses:  # type: ignore[attr-defined]
            if result.error_code:
                raise error_for(result.error_code, f"set configs of {name!r}", result.error_message)

    async def list_offsets(self, tp: TopicPartition, spec: str | int) -> int:
        self._check_open()
        checked = checked_offset_spec(tp, spec)
        if checked == "earliest":
            timestamp = EARLIEST
        elif checked == "latest":
            timestamp = LATEST
        else:
            timestamp = int(checked)
        await self._cluster.topic(tp.topic)
        return (await list_offsets(self._cluster, {tp: timestamp}))[tp]

    # --- groups ----------------------------------------------------------------------------

    async def list_groups(self) -> list[str]:
        self._check_open()
        await self._cluster.refresh()
        request = request_class(ApiKey.LIST_GROUPS)()
        names: set[str] = set()
        for node in list(self._cluster.brokers):
            answer: Any = await self._cluster.request(ApiKey.LIST_GROUPS, request, node=node)
            if answer.error_code:
                raise error_for(answer.error_code, "list consumer groups")
            names.update(g.group_id for g in answer.groups)
        return sorted(names)

    async def _group_state(self, group: str) -> Any:
        request = request_class(ApiKey.DESCRIBE_GROUPS)(
            groups=[group], include_authorized_operations=False
        )
        answer = await ask_coordinator(
            self._cluster, group, ApiKey.DESCRIBE_GROUPS, request, lambda a: a.groups[0].error_code
        )
        described = answer.groups[0]
        if described.error_code and described.error_code != ErrorCode.GROUP_ID_NOT_FOUND:
            raise error_for(described.error_code, f"describe group {group!r}")
        return described

    async def _unknown_group(self, group: str) -> UnknownGroupError:
        known = ", ".join(await self.list_groups()) or "none"
        return UnknownGroupError(f"unknown consumer group {group!r}; known groups: {known}")

    async def describe_group(self, group: str) -> GroupDescription:
        """``group`` as its coordinator has it, in any state (a group still forming is
        PreparingRebalance or CompletingRebalance, its members without assignments), with
        the lag of its committed offsets. UnknownGroupError for a group without members or
        committed offsets; a group that the coordinator lists by the time it is told unknown
        (its first member's JoinGroup came meanwhile) is described again instead."""
        self._check_open()
        for attempt in range(2):
            described = await self._group_state(group)
            offsets = await fetch_committed(self._cluster, group, None)
            state = described.group_state or "Dead"
            if described.error_code == ErrorCode.GROUP_ID_NOT_FOUND:
                state = "Dead"
            if state != "Dead" or offsets:
                break
            listed = await self.list_groups()
            if group not in listed or attempt:
                others = ", ".join(g for g in listed if g != group) or "none"
                raise UnknownGroupError(f"unknown consumer group {group!r}; known groups: {others}")
        if state == "Dead":
            state = "Empty"
        members = []
        places = set(offsets)
        for member in described.members:
            try:
                assignment = tuple(sorted(Assignment.decode(member.member_assignment).partitions))
            except StoreError:
                assignment = ()
            except Exception:
                assignment = ()
            places.update(assignment)
            members.append(GroupMember(member.member_id, member.client_id, assignment))
        await self._cluster.refresh()
        known = [
            tp
            for tp in sorted(places)
            if tp.topic in self._cluster.topics
            and tp.partition < self._cluster.topics[tp.topic].partitions
        ]
        ends = await list_offsets(self._cluster, dict.fromkeys(known, LATEST)) if known else {}
        lags = tuple(
            PartitionLag(tp.topic, tp.partition, offsets.get(tp), ends[tp]) for tp in known
        )
        return GroupDescription(group, state, tuple(members), lags)

    async def _require_no_members(self, group: str, action: str) -> Any:
        described = await self._group_state(group)
        if described.members:
            raise StoreError(
                f"cannot {action}: group {group!r} has {len(described.members)} live "
                "member(s); stop its consumers first"
            )
        return described

    async def reset_group_offsets(
        self, group: str, topic: str, to: str | int, *, by_timestamp: bool = False
    ) -> dict[TopicPartition, int]:
        self._check_open()
        info = await self._cluster.topic(topic, refresh=True)
        if is_internal(topic) or info.internal:
            raise StoreError(f"topic {topic!r} is internal to the store; groups do not consume it")
        tps = [TopicPartition(topic, p) for p in range(info.partitions)]
        if to in ("earliest", "latest"):
            spec = EARLIEST if to == "earliest" else LATEST
            offsets = await list_offsets(self._cluster, dict.fromkeys(tps, spec))
        elif isinstance(to, int) and not isinstance(to, bool) and to >= 0:
            if by_timestamp:
                offsets = await list_offsets(self._cluster, dict.fromkeys(tps, to))
            else:
                starts = await list_offsets(self._cluster, dict.fromkeys(tps, EARLIEST))
                ends = await list_offsets(self._cluster, dict.fromkeys(tps, LATEST))
                offsets = {tp: min(max(to, starts[tp]), ends[tp]) for tp in tps}
        else:
            what = "a timestamp in ms (>= 0)" if by_timestamp else "an offset (>= 0)"
            raise InvalidOffsetError(
                f"cannot reset group {group!r} to {to!r}; valid: 'earliest', 'latest' or {what}"
            )
        await self._require_no_members(group, f"reset the offsets of group {group!r}")
        refused = await commit_offsets(self._cluster, group, offsets)
        if refused:
            tp, code = next(iter(sorted(refused.items())))
            raise error_for(code, f"reset the offset of {tp} for group {group!r}")
        return dict(sorted(offsets.items()))

    async def delete_group(self, group: str) -> None:
        self._check_open()
        described = await self._require_no_members(group, f"delete group {group!r}")
        gone = described.group_state in ("Dead", "") or (
            described.error_code == ErrorCode.GROUP_ID_NOT_FOUND
        )
        if gone and not await fetch_committed(self._cluster, group, None):
            raise await self._unknown_group(group)
        request = request_class(ApiKey.DELETE_GROUPS)(groups_names=[group])
        answer = await ask_coordinator(
            self._cluster, group, ApiKey.DELETE_GROUPS, request, lambda a: a.results[0].error_code
        )
        for result in answer.results:
            if result.error_code == ErrorCode.GROUP_ID_NOT_FOUND:
                raise await self._unknown_group(group)
            if result.error_code:
                raise error_for(result.error_code, f"delete group {group!r}")

    async def close(self) -> None:
        self._closed = True
