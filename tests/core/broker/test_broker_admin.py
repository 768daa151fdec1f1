"""The broker's admin APIs through a real socket: topics, partitions, configs, log dirs."""

from __future__ import annotations

import uuid

import pytest
from broker_wire import Wire, request

from millstream.core.protocol import ApiKey, ErrorCode

CREATE, DELETE, PARTITIONS = ApiKey.CREATE_TOPICS, ApiKey.DELETE_TOPICS, ApiKey.CREATE_PARTITIONS
METADATA = ApiKey.METADATA


@pytest.fixture
async def wire(broker_session):
    wire = await Wire.connect(broker_session.host, broker_session.port)
    yield wire
    await wire.close()


def name() -> str:
    return f"a-{uuid.uuid4().hex[:12]}"


async def create(wire, topic, partitions=1, replication=1, validate_only=False, **configs):
    cls = request(CREATE).__class__
    body = cls(
        topics=[
            cls.Topics(
                name=topic,
                num_partitions=partitions,
                replication_factor=replication,
                assignments=[],
                configs=[cls.Topics.Configs(k.replace("_", "."), v) for k, v in configs.items()],
            )
        ],
        timeout_ms=1000,
        validate_only=validate_only,
    )
    return (await wire.call(CREATE, 4, body)).topics[0]


async def partition_count(wire, topic) -> int | None:
    cls = request(METADATA).__class__
    body = cls(topics=[cls.Topics(name=topic)], allow_auto_topic_creation=False)
    found = (await wire.call(METADATA, 8, body)).topics[0]
    return None if found.error_code else len(found.partitions)


async def test_create_topics_validates_and_honours_validate_only(wire):
    topic = name()
    checked = await create(wire, topic, 3, validate_only=True)
    assert checked.error_code == 0
    assert await partition_count(wire, topic) is None
    assert (await create(wire, topic, 3)).error_code == 0
    assert await partition_count(wire, topic) == 3
    assert (await create(wire, topic, 3)).error_code == ErrorCode.TOPIC_ALREADY_EXISTS
    replicated = await create(wire, name(), 1, replication=3)
    assert replicated.error_code == ErrorCode.INVALID_REPLICATION_FACTOR
    bad_config = await create(wire, name(), 1, retention_ms="soon")
    assert bad_config.error_code == ErrorCode.INVALID_CONFIG
    assert "retention.ms" in bad_config.error_message
    assert (await create(wire, "no spaces", 1)).error_code == ErrorCode.INVALID_TOPIC_EXCEPTION
    assert (await create(wire, name(), 0)).error_code == ErrorCode.INVALID_PARTITIONS


async def test_create_partitions_and_delete_topics(wire):
    topic = name()
    await create(wire, topic, 2)
    cls = request(PARTITIONS).__class__

    async def grow(count, validate_only=False):
        body = cls(
            topics=[cls.Topics(name=topic, count=count, assignments=None)],
            timeout_ms=1000,
            validate_only=validate_only,
        )
        return (await wire.call(PARTITIONS, 1, body)).results[0]

    assert (await grow(4, validate_only=True)).error_code == 0
    assert await partition_count(wire, topic) == 2
    assert (await grow(4)).error_code == 0
    assert await partition_count(wire, topic) == 4
    assert (await grow(3)).error_code == ErrorCode.INVALID_PARTITIONS
    body = request(DELETE, topic_names=[topic, name()], timeout_ms=1000)
    deleted = await wire.call(DELETE, 3, body)
    assert [r.error_code for r in deleted.responses] == [0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
    assert await partition_count(wire, topic) is None


async def test_a_deleted_topic_leaves_no_files_and_can_be_made_again(wire, broker_session):
    topic = name()
    await create(wire, topic, 3)
    data = broker_session.data_dir
    assert {p.name for p in data.glob(f"{topic}-*")} == {f"{topic}-{i}" for i in range(3)}
    body = request(DELETE, topic_names=[topic], timeout_ms=1000)
    assert (await wire.call(DELETE, 3, body)).responses[0].error_code == 0
    assert not list(data.glob(f"{topic}-*"))
    assert not list(data.glob(".deleted-*"))  # removed (in a worker thread) before the answer
    assert (await create(wire, topic, 1)).error_code == 0
    assert await partition_count(wire, topic) == 1


async def test_describe_and_alter_topic_configs(wire):
    topic = name()
    await create(wire, topic, 1, retention_ms="60000")
    describe = request(ApiKey.DESCRIBE_CONFIGS).__class__

    async def configs(keys=None):
        body = describe(resources=[describe.Resources(2, topic, keys)])
        result = (await wire.call(ApiKey.DESCRIBE_CONFIGS, 2, body)).results[0]
        assert result.error_code == 0
        return {c.name: (c.value, c.config_source) for c in result.configs}

    found = await configs()
    assert found["retention.ms"] == ("60000", 1)
    assert found["cleanup.policy"][1] == 5
    assert set(await configs(["retention.ms"])) == {"retention.ms"}
    alter_cls = request(ApiKey.ALTER_CONFIGS).__class__

    async def alter(validate_only=False, **values):
        body = alter_cls(
            resources=[
                alter_cls.Resources(
                    2,
                    topic,
                    [
                        alter_cls.Resources.Configs(k.replace("_", "."), v)
                        for k, v in values.items()
                    ],
                )
            ],
            validate_only=validate_only,
        )
        return (await wire.call(ApiKey.ALTER_CONFIGS, 1, body)).responses[0]

    assert (await alter(validate_only=True, segment_bytes="1048576")).error_code == 0
    assert "segment.bytes" not in {k for k, (_, s) in (await configs()).items() if s == 1}
    assert (await alter(segment_bytes="1048576")).error_code == 0
    after = await configs()
    assert after["segment.bytes"] == ("1048576", 1)
    assert after["retention.ms"][1] == 5  # AlterConfigs replaces the whole set
    refused = await alter(segment_bytes="tiny")
    assert refused.error_code == ErrorCode.INVALID_CONFIG
    broker = await wire.call(
        ApiKey.DESCRIBE_CONFIGS, 2, describe(resources=[describe.Resources(4, "0", None)])
    )
    entries = {c.name: c.value for c in broker.results[0].configs}
    assert entries["auto.create.topics.enable"] == "true"


async def test_describe_log_dirs_and_offset_for_leader_epoch(wire):
    topic = name()
    await create(wire, topic, 2)
    dirs = await wire.call(
        ApiKey.DESCRIBE_LOG_DIRS, 1, request(ApiKey.DESCRIBE_LOG_DIRS, topics=None)
    )
    (result,) = dirs.results
    assert result.error_code == 0 and result.log_dir
    mine = [t for t in result.topics if t.name == topic]
    assert [p.partition_index for p in mine[0].partitions] == [0, 1]
    epochs = request(ApiKey.OFFSET_FOR_LEADER_EPOCH).__class__
    body = epochs(
        topics=[
            epochs.Topics(
                topic=topic,
                partitions=[
                    epochs.Topics.Partitions(partition=0, current_leader_epoch=0, leader_epoch=0)
                ],
            )
        ]
    )
    answer = (await wire.call(ApiKey.OFFSET_FOR_LEADER_EPOCH, 3, body)).topics[0].partitions[0]
    assert (answer.error_code, answer.leader_epoch, answer.end_offset) == (0, 0, 0)
