"""``/groups``: members, committed offsets and lag as a confluent-kafka consumer left them."""

from __future__ import annotations

import time

import confluent_kafka
from broker_server import BrokerServer
from rest_client import Rest, assert_error


def _consumer(bootstrap: str, group: str) -> confluent_kafka.Consumer:
    return confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "client.id": "rest-test-client",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 6000,
        }
    )


def _wait_for(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError("condition not met in time")


def test_group_lag_is_high_watermark_minus_what_the_consumer_committed(
    rest: Rest, rest_broker: BrokerServer
) -> None:
    topic = rest.create_topic(partitions=2)
    rest.post(f"/topics/{topic}/records", [{"value": n, "partition": n % 2} for n in range(10)])
    group = f"{topic}-group"
    consumer = _consumer(rest_broker.bootstrap, group)
    consumer.subscribe([topic])
    try:
        read = 0
        deadline = time.monotonic() + 30
        while read < 4 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            read += 1
        assert read == 4
        committed = {
            0: 3,  # the next offsets to read, as a consumer commits them
            1: 1,
        }
        consumer.commit(
            offsets=[confluent_kafka.TopicPartition(topic, p, o) for p, o in committed.items()],
            asynchronous=False,
        )
        listed = {g["group_id"]: g for g in rest.get("/groups").json()["groups"]}
        assert listed[group]["protocol_type"] == "consumer"
        _wait_for(lambda: rest.get(f"/groups/{group}").json()["state"] == "Stable")
        detail = rest.get(f"/groups/{group}").json()
        assert detail["protocol_type"] == "consumer"
        assert detail["protocol"] in ("range", "roundrobin", "cooperative-sticky")
        assert detail["generation"] >= 1
        [member] = detail["members"]
        assert member["client_id"] == "rest-test-client"
        assert member["client_host"] == "/127.0.0.1"
        assert sorted((a["topic"], a["partition"]) for a in member["assignment"]) == [
            (topic, 0),
            (topic, 1),
        ]
        assert detail["offsets"] == [
            {
                "topic": topic,
                "partition": 0,
                "committed_offset": 3,
                "high_watermark": 5,
                "lag": 2,
                "metadata": "",
            },
            {
                "topic": topic,
                "partition": 1,
                "committed_offset": 1,
                "high_watermark": 5,
                "lag": 4,
                "metadata": "",
            },
        ]
    finally:
        consumer.close()
    # after the consumer left: Empty, offsets kept, lag grows with new records
    rest.post(f"/topics/{topic}/records", [{"value": 1, "partition": 0}])
    _wait_for(lambda: rest.get(f"/groups/{group}").json()["state"] == "Empty")
    detail = rest.get(f"/groups/{group}").json()
    assert detail["members"] == []
    assert detail["offsets"][0]["lag"] == 3


def test_an_unknown_group_is_404(rest: Rest) -> None:
    assert_error(rest.get("/groups/rest-no-such-group"), 404, "GROUP_ID_NOT_FOUND", "rest-no-such")
