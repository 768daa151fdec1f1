"""Whole frames (size, header, body) exchanged with kafka-python's client-side classes, both
ways, for the messages a broker meets first; plus bytes written out by hand for the ApiVersions
fallback and for flexible encoding."""

from __future__ import annotations

from typing import Any

from kafka.protocol.consumer import (
    FetchRequest,
    FetchResponse,
    JoinGroupRequest,
    JoinGroupResponse,
    OffsetCommitRequest,
)
from kafka.protocol.metadata import (
    ApiVersionsRequest,
    ApiVersionsResponse,
    MetadataRequest,
    MetadataResponse,
)
from kafka.protocol.producer import ProduceRequest, ProduceResponse
from kafka.record.default_records import DefaultRecordBatchBuilder

from millstream.core.protocol import (
    ApiKey,
    ErrorCode,
    RequestHeader,
    advertised_api_keys,
    api_versions_fallback,
    decode_request,
    decode_response,
    encode_request,
    encode_response,
    request_class,
    response_class,
)


def _their_request_frame(request: Any, correlation_id: int = 7, client_id: str = "kp") -> bytes:
    request.with_header(correlation_id=correlation_id, client_id=client_id)
    return bytes(request.encode(header=True, framed=True))


def _record_batch(n: int = 3) -> bytes:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 20,
    )
    for i in range(n):
        builder.append(
            i, timestamp=1_700_000_000_000 + i, key=b"k%d" % i, value=b"v" * i, headers=[]
        )
    return bytes(builder.build())


# -- requests kafka-python sends, decoded by us ---------------------------------------------


def test_metadata_v1_request_from_kafka_python() -> None:
    theirs = MetadataRequest[1](
        topics=[MetadataRequest.MetadataRequestTopic(name=n) for n in ("orders", "päyments")]
    )
    header, body = decode_request(_their_request_frame(theirs, 11, "app-1")[4:])
    assert header == RequestHeader(ApiKey.METADATA, 1, 11, "app-1")
    assert [t.name for t in body.topics] == ["orders", "päyments"]
    assert body.allow_auto_topic_creation is True  # v1 does not carry it: the default


def test_metadata_v1_null_topics_means_all() -> None:
    _, body = decode_request(_their_request_frame(MetadataRequest[1](topics=None))[4:])
    assert body.topics is None


def test_api_versions_v3_request_uses_header_v2_and_compact_strings() -> None:
    theirs = ApiVersionsRequest[3](client_software_name="kp", client_software_version="3.0")
    frame = _their_request_frame(theirs, 9, "cl")
    # size, key 18, version 3, correlation 9, client id "cl" (int16 length even in header v2),
    # no header tags, compact "kp" and "3.0", no body tags
    assert (
        frame == b"\x00\x00\x00\x15\x00\x12\x00\x03\x00\x00\x00\x09\x00\x02cl\x00\x03kp\x043.0\x00"
    )
    header, body = decode_request(frame[4:])
    assert header == RequestHeader(ApiKey.API_VERSIONS, 3, 9, "cl")
    assert (body.client_software_name, body.client_software_version) == ("kp", "3.0")
    assert encode_request(header, body) == frame


def test_produce_v3_and_v7_requests_carry_record_batches_untouched() -> None:
    batch = _record_batch()
    for version in (3, 7):
        theirs = ProduceRequest[version](
            transactional_id=None,
            acks=-1,
            timeout_ms=30000,
            topic_data=[
                ProduceRequest.TopicProduceData(
                    name="orders",
                    partition_data=[
                        ProduceRequest.TopicProduceData.PartitionProduceData(index=2, records=batch)
                    ],
                )
            ],
        )
        header, body = decode_request(_their_request_frame(theirs)[4:])
        assert (header.api_key, header.api_version) == (ApiKey.PRODUCE, version)
        assert (body.transactional_id, body.acks, body.timeout_ms) == (None, -1, 30000)
        partition = body.topic_data[0].partition_data[0]
        assert (body.topic_data[0].name, partition.index) == ("orders", 2)
        assert partition.records == batch


def test_fetch_v4_and_v11_requests_from_kafka_python() -> None:
    for version in (4, 11):
        fields: dict[str, Any] = {
            "replica_id": -1,
            "max_wait_ms": 500,
            "min_bytes": 1,
            "max_bytes": 52428800,
            "isolation_level": 1,
            "topics": [
                FetchRequest.FetchTopic(
                    topic="orders",
                    partitions=[
                        FetchRequest.FetchTopic.FetchPartition(
                            partition=0,
                            fetch_offset=42,
                            log_start_offset=-1,
                            partition_max_bytes=1048576,
                        )
                    ],
                )
            ],
        }
        if version >= 7:
            fields.update(session_id=0, session_epoch=-1, forgotten_topics_data=[])
        if version >= 11:
            fields["rack_id"] = "rack-a"
        _, body = decode_request(_their_request_frame(FetchRequest[version](**fields))[4:])
        partition = body.topics[0].partitions[0]
        assert (body.max_wait_ms, body.min_bytes, body.isolation_level) == (500, 1, 1)
        assert (partition.partition, partition.fetch_offset, partition.partition_max_bytes) == (
            0,
            42,
            1048576,
        )
        assert body.rack_id == ("rack-a" if version >= 11 else "")
        assert partition.current_leader_epoch == -1  # absent before v9, its default after


def test_join_group_v5_request_with_static_membership() -> None:
    theirs = JoinGroupRequest[5](
        group_id="g",
        session_timeout_ms=10000,
        rebalance_timeout_ms=300000,
        member_id="",
        group_instance_id="worker-1",
        protocol_type="consumer",
        protocols=[JoinGroupRequest.JoinGroupRequestProtocol(name="range", metadata=b"\x00\x01")],
    )
    _, body = decode_request(_their_request_frame(theirs)[4:])
    assert (body.group_id, body.group_instance_id, body.rebalance_timeout_ms) == (
        "g",
        "worker-1",
        300000,
    )
    assert [(p.name, p.metadata) for p in body.protocols] == [("range", b"\x00\x01")]


def test_offset_commit_v7_request() -> None:
    theirs = OffsetCommitRequest[7](
        group_id="g",
        generation_id_or_member_epoch=3,
        member_id="m-1",
        group_instance_id=None,
        topics=[
            OffsetCommitRequest.OffsetCommitRequestTopic(
                name="orders",
                partitions=[
                    OffsetCommitRequest.OffsetCommitRequestTopic.OffsetCommitRequestPartition(
                        partition_index=1,
                        committed_offset=100,
                        committed_leader_epoch=-1,
                        committed_metadata=None,
                    )
                ],
            )
        ],
    )
    _, body = decode_request(_their_request_frame(theirs)[4:])
    partition = body.topics[0].partitions[0]
    assert (body.generation_id_or_member_epoch, body.member_id, body.group_instance_id) == (
        3,
        "m-1",
        None,
    )
    assert (
        partition.partition_index,
        partition.committed_offset,
        partition.committed_metadata,
    ) == (
        1,
        100,
        None,
    )
    assert body.retention_time_ms == -1  # only v2-v4 carry it


# -- responses we send, decoded by kafka-python ---------------------------------------------


def test_metadata_v8_response_read_by_kafka_python() -> None:
    response = response_class(ApiKey.METADATA)
    ours = response(
        throttle_time_ms=0,
        brokers=[response.Brokers(node_id=1, host="localhost", port=9092, rack=None)],
        cluster_id="ms-cluster",
        controller_id=1,
        topics=[
            response.Topics(
                error_code=0,
                name="orders",
                is_internal=False,
                partitions=[
                    response.Topics.Partitions(
                        error_code=0,
                        partition_index=0,
                        leader_id=1,
                        leader_epoch=0,
                        replica_nodes=[1],
                        isr_nodes=[1],
                        offline_replicas=[],
                    )
                ],
            )
        ],
    )
    frame = encode_response(RequestHeader(ApiKey.METADATA, 8, 77), ours)
    theirs = MetadataResponse.decode(frame, version=8, header=True, framed=True)
    assert theirs.header.correlation_id == 77
    assert (theirs.brokers[0].host, theirs.brokers[0].port, theirs.cluster_id) == (
        "localhost",
        9092,
        "ms-cluster",
    )
    assert theirs.topics[0].partitions[0].isr_nodes == [1]
    assert decode_response(ApiKey.METADATA, 8, frame[4:])[1] == ours


def test_produce_v7_response_read_by_kafka_python() -> None:
    response = response_class(ApiKey.PRODUCE)
    ours = response(
        responses=[
            response.Responses(
                name="orders",
                partition_responses=[
                    response.Responses.PartitionResponses(
                        index=0, error_code=0, base_offset=1234, log_start_offset=0
                    )
                ],
            )
        ],
        throttle_time_ms=0,
    )
    theirs = ProduceResponse.decode(
        encode_response(RequestHeader(ApiKey.PRODUCE, 7, 5), ours),
        version=7,
        header=True,
        framed=True,
    )
    partition = theirs.responses[0].partition_responses[0]
    assert (partition.base_offset, partition.log_append_time_ms, partition.log_start_offset) == (
        1234,
        -1,
        0,
    )


def test_fetch_v11_response_read_by_kafka_python() -> None:
    batch = _record_batch(5)
    response = response_class(ApiKey.FETCH)
    ours = response(
        responses=[
            response.Responses(
                topic="orders",
                partitions=[
                    response.Responses.Partitions(
                        partition_index=0,
                        high_watermark=5,
                        last_stable_offset=5,
                        log_start_offset=0,
                        aborted_transactions=None,
                        records=batch,
                    )
                ],
            )
        ],
    )
    frame = encode_response(RequestHeader(ApiKey.FETCH, 11, 3), ours)
    theirs = FetchResponse.decode(frame, version=11, header=True, framed=True)
    partition = theirs.responses[0].partitions[0]
    assert (partition.high_watermark, partition.preferred_read_replica) == (5, -1)
    assert bytes(partition.records) == batch


def test_join_group_v5_response_read_by_kafka_python() -> None:
    response = response_class(ApiKey.JOIN_GROUP)
    ours = response(
        generation_id=4,
        protocol_name="range",
        leader="m-1",
        member_id="m-2",
        members=[response.Members(member_id="m-1", group_instance_id="w-1", metadata=b"x")],
    )
    theirs = JoinGroupResponse.decode(
        encode_response(RequestHeader(ApiKey.JOIN_GROUP, 5, 1), ours),
        version=5,
        header=True,
        framed=True,
    )
    assert (theirs.generation_id, theirs.leader, theirs.members[0].group_instance_id) == (
        4,
        "m-1",
        "w-1",
    )


# -- ApiVersions --------------------------------------------------------------------------------


def test_api_versions_v3_response_uses_header_v0_and_tagged_fields() -> None:
    response = response_class(ApiKey.API_VERSIONS)
    ours = response(
        error_code=0, api_keys=advertised_api_keys(), throttle_time_ms=0, finalized_features_epoch=7
    )
    frame = encode_response(RequestHeader(ApiKey.API_VERSIONS, 3, 12), ours)
    assert frame[4:8] == b"\x00\x00\x00\x0c"
    assert frame[8:10] == b"\x00\x00"  # the error code follows the correlation id: header v0
    # the body ends with its tagged fields: one (tag 1, 8 bytes, the epoch)
    assert frame.endswith(b"\x01\x01\x08\x00\x00\x00\x00\x00\x00\x00\x07")
    theirs = ApiVersionsResponse.decode(frame, version=3, header=True, framed=True)
    assert theirs.header.correlation_id == 12
    assert {(k.api_key, k.min_version, k.max_version) for k in theirs.api_keys} >= {
        (0, 0, 8),
        (1, 4, 11),
        (18, 0, 3),
    }
    assert theirs.finalized_features_epoch == 7
    assert decode_response(ApiKey.API_VERSIONS, 3, frame[4:])[1] == ours


def test_api_versions_fallback_is_v0_with_error_35_and_one_entry() -> None:
    frame = api_versions_fallback(RequestHeader(ApiKey.API_VERSIONS, 9, 42, "new-client"))
    assert frame == (
        b"\x00\x00\x00\x10"  # size
        b"\x00\x00\x00\x2a"  # correlation id 42, header v0
        b"\x00\x23"  # UNSUPPORTED_VERSION
        b"\x00\x00\x00\x01"  # one entry
        b"\x00\x12\x00\x00\x00\x03"  # ApiVersions 0-3
    )
    # a client that asked for v3 reads an error answer as v0, as Kafka's clients do
    theirs = ApiVersionsResponse.decode(frame, version=3, header=True, framed=True)
    assert theirs.error_code == ErrorCode.UNSUPPORTED_VERSION
    assert [(k.api_key, k.min_version, k.max_version) for k in theirs.api_keys] == [(18, 0, 3)]


def test_advertised_ranges_are_design_ranges_with_produce_from_zero() -> None:
    advertised = {e.api_key: (e.min_version, e.max_version) for e in advertised_api_keys()}
    assert advertised[ApiKey.PRODUCE] == (0, 8)
    assert advertised[ApiKey.FETCH] == (4, 11)
    assert advertised[ApiKey.DESCRIBE_LOG_DIRS] == (1, 1)
    assert len(advertised) == 23


def test_request_class_exposes_nested_structures() -> None:
    produce = request_class(ApiKey.PRODUCE)
    request = produce(acks=1, topic_data=[produce.TopicData(name="t")])
    assert request.topic_data[0].partition_data == []
    assert produce().topic_data is not produce().topic_data  # a fresh list each
    assert request.transactional_id is None  # default null
