"""Posting and reading records over REST, and agreeing with Kafka clients (confluent-kafka)."""

from __future__ import annotations

import base64
import threading
import time

import confluent_kafka
from broker_server import BrokerServer
from rest_client import Rest, assert_error

from millstream.core.client.partitioner import partition_for_key


def read_all(rest: Rest, topic: str, partition: int, offset: int = 0) -> list[dict]:
    answer = rest.get(f"/topics/{topic}/partitions/{partition}/records", params={"offset": offset})
    assert answer.status_code == 200, answer.text
    return answer.json()["records"]


def test_posted_records_get_offsets_and_read_back_decoded(rest: Rest) -> None:
    topic = rest.create_topic(partitions=1)
    answer = rest.post(
        f"/topics/{topic}/records",
        [
            {"key": "sensor-1", "value": {"t": 21.5, "tags": ["a"]}, "headers": {"src": "curl"}},
            {"value": [1, 2]},
            {"key": 7, "value": None},
            {"value": "text"},
        ],
    )
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"offsets": [{"partition": 0, "offset": n} for n in range(4)]}
    page = rest.get(f"/topics/{topic}/partitions/0/records").json()
    assert page["next_offset"] == 4
    assert page["high_watermark"] == 4
    records = page["records"]
    assert [(r["offset"], r["key"], r["value"], r["headers"]) for r in records] == [
        (0, "sensor-1", {"t": 21.5, "tags": ["a"]}, {"src": "curl"}),
        (1, None, [1, 2], {}),
        (2, "7", None, {}),
        (3, None, "text", {}),
    ]
    assert all(r["decode_error"] is None for r in records)
    assert abs(records[0]["timestamp"] / 1000 - time.time()) < 60


def test_offset_and_limit_page_through_a_partition(rest: Rest) -> None:
    topic = rest.create_topic()
    rest.post(f"/topics/{topic}/records", [{"value": n} for n in range(10)])
    page = rest.get(
        f"/topics/{topic}/partitions/0/records", params={"offset": 3, "limit": 4}
    ).json()
    assert [r["value"] for r in page["records"]] == [3, 4, 5, 6]
    assert page["next_offset"] == 7
    page = rest.get(f"/topics/{topic}/partitions/0/records", params={"offset": 10}).json()
    assert page["records"] == []
    assert page["next_offset"] == 10


def test_keys_land_where_kafka_clients_put_them(rest: Rest, rest_broker: BrokerServer) -> None:
    topic = rest.create_topic(partitions=6)
    keys = [f"customer-{n}" for n in range(30)]
    offsets = rest.post(f"/topics/{topic}/records", [{"key": k, "value": 1} for k in keys]).json()
    partitions = [o["partition"] for o in offsets["offsets"]]
    assert partitions == [partition_for_key(k.encode(), 6) for k in keys]
    assert len(set(partitions)) > 1
    # librdkafka with Kafka's Java partitioner puts the same keys in the same partitions
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": rest_broker.bootstrap, "partitioner": "murmur2_random"}
    )
    delivered: dict[bytes, int] = {}
    for k in keys:
        producer.produce(
            topic,
            key=k.encode(),
            value=b"2",
            on_delivery=lambda e, m: delivered.__setitem__(m.key(), m.partition()),
        )
    assert producer.flush(30) == 0
    assert [delivered[k.encode()] for k in keys] == partitions


def test_an_explicit_partition_is_used_and_checked(rest: Rest) -> None:
    topic = rest.create_topic(partitions=2)
    answer = rest.post(f"/topics/{topic}/records", [{"key": "a", "value": 1, "partition": 1}] * 2)
    assert [o["partition"] for o in answer.json()["offsets"]] == [1, 1]
    assert_error(
        rest.post(f"/topics/{topic}/records", [{"value": 1}, {"value": 2, "partition": 2}]),
        404,
        "UNKNOWN_TOPIC_OR_PARTITION",
        "body[1].partition",
        "0 to 1",
    )
    assert_error(
        rest.post(f"/topics/{topic}/records", [{"value": 1, "partition": -1}]),
        400,
        "INVALID_REQUEST",
        "body[0].partition",
    )
    # nothing of a refused request was written
    assert len(read_all(rest, topic, 1)) == 2
    assert read_all(rest, topic, 0) == []


def test_text_and_bytes_topics_follow_their_codec(rest: Rest, rest_broker: BrokerServer) -> None:
    text = rest.create_topic(codec="text")
    assert rest.post(f"/topics/{text}/records", [{"key": "k", "value": "héllo"}]).ok
    assert read_all(rest, text, 0)[0]["value"] == "héllo"
    assert_error(
        rest.post(f"/topics/{text}/records", [{"value": {"a": 1}}]),
        400,
        "INVALID_RECORD",
        "body[0].value",
        "string",
    )
    raw = rest.create_topic(codec="bytes")
    blob = bytes(range(256))
    answer = rest.post(
        f"/topics/{raw}/records",
        [{"key": base64.b64encode(b"\x00k").decode(), "value": base64.b64encode(blob).decode()}],
    )
    assert answer.ok, answer.text
    record = read_all(rest, raw, 0)[0]
    assert base64.b64decode(record["value"]) == blob
    assert base64.b64decode(record["key"]) == b"\x00k"
    assert_error(
        rest.post(f"/topics/{raw}/records", [{"value": "not base64!"}]),
        400,
        "INVALID_RECORD",
        "body[0].value",
        "base64",
    )
    # the bytes are stored as they are: a Kafka consumer reads the same bytes
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": rest_broker.bootstrap, "group.id": "unused"}
    )
    consumer.assign([confluent_kafka.TopicPartition(raw, 0, 0)])
    try:
        message = _poll(consumer)
    finally:
        consumer.close()
    assert message.value() == blob
    assert message.key() == b"\x00k"


def _poll(consumer: confluent_kafka.Consumer) -> confluent_kafka.Message:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        message = consumer.poll(0.5)
        if message is not None:
            assert message.error() is None, message.error()
            return message
    raise AssertionError("no message within 20 s")


def test_records_posted_over_rest_are_read_by_a_kafka_consumer(
    rest: Rest, rest_broker: BrokerServer
) -> None:
    topic = rest.create_topic()
    rest.post(
        f"/topics/{topic}/records",
        [{"key": f"k{n}", "value": {"n": n}, "headers": {"i": str(n)}} for n in range(20)],
    )
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": rest_broker.bootstrap, "group.id": "unused"}
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, 0, 0)])
    try:
        got = [_poll(consumer) for _ in range(20)]
    finally:
        consumer.close()
    assert [m.value() for m in got] == [b'{"n":%d}' % n for n in range(20)]
    assert [m.key() for m in got] == [b"k%d" % n for n in range(20)]
    assert [m.headers() for m in got] == [[("i", b"%d" % n)] for n in range(20)]
    assert [m.offset() for m in got] == list(range(20))


def test_records_produced_by_a_kafka_producer_are_read_over_rest(
    rest: Rest, rest_broker: BrokerServer
) -> None:
    topic = rest.create_topic()
    producer = confluent_kafka.Producer(
        {"bootstrap.servers": rest_broker.bootstrap, "compression.type": "zstd", "linger.ms": 5}
    )
    for n in range(50):
        producer.produce(topic, key=b"k%d" % n, value=b'{"n": %d}' % n, headers=[("h", b"x")])
    producer.produce(topic, value=b"\xffnot json")
    assert producer.flush(30) == 0
    records = rest.get(f"/topics/{topic}/partitions/0/records", params={"limit": 1000}).json()[
        "records"
    ]
    assert [r["value"] for r in records[:50]] == [{"n": n} for n in range(50)]
    assert [r["key"] for r in records[:50]] == [f"k{n}" for n in range(50)]
    assert records[0]["headers"] == {"h": "x"}
    last = records[50]
    assert last["value"] == "\\xffnot json"
    assert "not valid JSON" in last["decode_error"]


def test_a_long_poll_returns_as_soon_as_a_record_arrives(
    rest: Rest, rest_broker: BrokerServer
) -> None:
    topic = rest.create_topic()
    result: dict = {}

    def poll() -> None:
        started = time.monotonic()
        answer = rest.get(
            f"/topics/{topic}/partitions/0/records", params={"offset": 0, "timeout_ms": 20000}
        )
        result["elapsed"] = time.monotonic() - started
        result["answer"] = answer

    waiter = threading.Thread(target=poll)
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()  # nothing there yet: it waits
    producer = confluent_kafka.Producer({"bootstrap.servers": rest_broker.bootstrap})
    produced_at = time.monotonic()
    producer.produce(topic, value=b'"wake"')
    assert producer.flush(10) == 0
    waiter.join(25)
    answer = result["answer"]
    assert answer.status_code == 200
    assert [r["value"] for r in answer.json()["records"]] == ["wake"]
    assert result["elapsed"] < 10
    assert time.monotonic() - produced_at < 5


def test_a_long_poll_with_nothing_new_answers_empty_after_its_timeout(rest: Rest) -> None:
    topic = rest.create_topic()
    started = time.monotonic()
    answer = rest.get(f"/topics/{topic}/partitions/0/records", params={"timeout_ms": 600})
    elapsed = time.monotonic() - started
    assert answer.json()["records"] == []
    assert answer.json()["next_offset"] == 0
    assert 0.5 <= elapsed < 5


def test_bad_reads_name_what_is_valid(rest: Rest) -> None:
    topic = rest.create_topic(partitions=2)
    rest.post(f"/topics/{topic}/records", [{"value": 1, "partition": 0}])
    base = f"/topics/{topic}/partitions"
    assert_error(
        rest.get(f"{base}/0/records", params={"offset": 5}),
        400,
        "OFFSET_OUT_OF_RANGE",
        "offset 5",
        "0 to 1",
    )
    assert_error(rest.get(f"{base}/2/records"), 404, "UNKNOWN_TOPIC_OR_PARTITION", "0 to 1")
    assert_error(rest.get(f"{base}/x/records"), 400, "INVALID_REQUEST", "partition 'x'")
    assert_error(
        rest.get(f"{base}/0/records", params={"limit": 0}), 400, "INVALID_REQUEST", "query.limit"
    )
    assert_error(
        rest.get(f"{base}/0/records", params={"timeout_ms": "soon"}),
        400,
        "INVALID_REQUEST",
        "query.timeout_ms",
    )
    assert_error(
        rest.get(f"{base}/0/records", params={"ofset": 1}),
        400,
        "INVALID_REQUEST",
        "query.ofset",
    )
    assert_error(
        rest.get("/topics/rest-missing/partitions/0/records"),
        404,
        "UNKNOWN_TOPIC_OR_PARTITION",
        "rest-missing",
    )


def test_bad_posts_name_the_field(rest: Rest) -> None:
    topic = rest.create_topic()
    records = f"/topics/{topic}/records"
    assert_error(rest.post(records, []), 400, "INVALID_REQUEST", "body")
    assert_error(rest.post(records, {"value": 1}), 400, "INVALID_REQUEST", "body")
    assert_error(
        rest.post(records, [{"value": 1, "headers": {"h": 1}}]),
        400,
        "INVALID_REQUEST",
        "body[0].headers.h",
    )
    assert_error(
        rest.post(records, [{"valeu": 1}]), 400, "INVALID_REQUEST", "body[0].valeu", "not a known"
    )
    assert_error(
        rest.post("/topics/rest-missing/records", [{"value": 1}]),
        404,
        "UNKNOWN_TOPIC_OR_PARTITION",
    )
    assert read_all(rest, topic, 0) == []


def test_a_batch_above_max_message_bytes_is_refused_whole(rest: Rest) -> None:
    topic = rest.create_topic(partitions=2, max_message_bytes="2000")
    answer = rest.post(
        f"/topics/{topic}/records",
        [{"value": "x", "partition": 0}, {"value": "y" * 5000, "partition": 1}],
    )
    assert_error(answer, 413, "MESSAGE_TOO_LARGE", "max.message.bytes=2000")
    assert read_all(rest, topic, 0) == []
