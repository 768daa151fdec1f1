"""``/topics`` and the API's error conventions, as a curl user sees them."""

from __future__ import annotations

import socket

from broker_server import BrokerServer
from confluent_kafka.admin import AdminClient
from rest_client import Rest, assert_error


def test_created_topic_is_listed_described_and_seen_by_kafka_clients(
    rest: Rest, rest_broker: BrokerServer
) -> None:
    answer = rest.post(
        "/topics", {"name": "rest-orders", "partitions": 3, "configs": {"retention.ms": "60000"}}
    )
    assert answer.status_code == 201, answer.text
    created = answer.json()
    assert [p["partition"] for p in created["partitions"]] == [0, 1, 2]
    assert created["configs"]["retention.ms"] == "60000"
    assert created["configs"]["codec"] == "json"  # defaults are shown too

    listed = {t["name"]: t for t in rest.get("/topics").json()["topics"]}
    assert listed["rest-orders"] == {
        "name": "rest-orders",
        "partitions": 3,
        "configs": {"retention.ms": "60000"},
    }
    assert not any(name.startswith("__") for name in listed)  # internal topics are not served

    detail = rest.get("/topics/rest-orders").json()
    assert detail["partitions"][1] == {
        "partition": 1,
        "earliest_offset": 0,
        "latest_offset": 0,
        "size_bytes": 0,
    }
    admin = AdminClient({"bootstrap.servers": rest_broker.bootstrap})
    metadata = admin.list_topics(timeout=10)
    assert len(metadata.topics["rest-orders"].partitions) == 3


def test_latest_offset_and_size_follow_appends(rest: Rest) -> None:
    topic = rest.create_topic(partitions=1)
    assert rest.post(f"/topics/{topic}/records", [{"value": n} for n in range(5)]).ok
    partition = rest.get(f"/topics/{topic}").json()["partitions"][0]
    assert partition["earliest_offset"] == 0
    assert partition["latest_offset"] == 5
    assert partition["size_bytes"] > 0


def test_delete_removes_the_topic(rest: Rest) -> None:
    topic = rest.create_topic()
    answer = rest.delete(f"/topics/{topic}")
    assert answer.status_code == 204
    assert answer.content == b""
    assert topic not in [t["name"] for t in rest.get("/topics").json()["topics"]]
    assert_error(rest.get(f"/topics/{topic}"), 404, "UNKNOWN_TOPIC_OR_PARTITION", topic)
    assert_error(rest.delete(f"/topics/{topic}"), 404, "UNKNOWN_TOPIC_OR_PARTITION", topic)


def test_creating_an_existing_topic_is_a_conflict(rest: Rest) -> None:
    topic = rest.create_topic()
    answer = rest.post("/topics", {"name": topic})
    assert_error(answer, 409, "TOPIC_ALREADY_EXISTS", topic, "already exists")


def test_bad_topic_requests_name_the_field_and_what_is_valid(rest: Rest) -> None:
    assert_error(rest.post("/topics", {"name": "bad name!"}), 400, "INVALID_REQUEST", "body.name")
    assert_error(rest.post("/topics", {"name": ".."}), 400, "INVALID_TOPIC_EXCEPTION", "'..'")
    assert_error(
        rest.post("/topics", {"name": "rest-zero", "partitions": 0}),
        400,
        "INVALID_REQUEST",
        "body.partitions",
        "greater than or equal to 1",
    )
    assert_error(
        rest.post("/topics", {"name": "rest-cfg", "configs": {"retention.mss": "1"}}),
        400,
        "INVALID_CONFIG",
        "retention.mss",
    )
    assert_error(rest.post("/topics", {}), 400, "INVALID_REQUEST", "body.name", "required")
    assert_error(
        rest.post("/topics", {"name": "rest-x", "partition": 2}),
        400,
        "INVALID_REQUEST",
        "body.partition",
        "not a known field",
    )
    assert_error(
        rest.post("/topics", data=b"{nope", headers={"Content-Type": "application/json"}),
        400,
        "INVALID_REQUEST",
        "not valid JSON",
    )
    assert_error(
        rest.post("/topics", data=b"name=x", headers={"Content-Type": "text/plain"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "application/json",
        "text/plain",
    )
    assert "rest-cfg" not in [t["name"] for t in rest.get("/topics").json()["topics"]]


def test_internal_topics_are_not_served(rest: Rest) -> None:
    assert_error(rest.get("/topics/__consumer_offsets"), 404, "UNKNOWN_TOPIC_OR_PARTITION")
    assert_error(rest.delete("/topics/__consumer_offsets"), 404, "UNKNOWN_TOPIC_OR_PARTITION")


def test_unknown_routes_and_methods_answer_json(rest: Rest) -> None:
    assert_error(rest.get("/nothing/here"), 404, "NOT_FOUND", "GET /nothing/here")
    answer = rest.session.put(rest.base + "/topics", timeout=10)
    assert_error(answer, 405, "METHOD_NOT_ALLOWED", "PUT", "GET, POST")
    assert answer.headers["Allow"] == "GET, POST"
    assert_error(rest.post("/healthz", {}), 405, "METHOD_NOT_ALLOWED")


def test_a_body_above_the_limit_is_refused_before_it_is_read(rest_broker: BrokerServer) -> None:
    assert rest_broker.http_port is not None
    with socket.create_connection((rest_broker.host, rest_broker.http_port), timeout=10) as s:
        s.sendall(
            b"POST /topics HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 200000000\r\n\r\n{"
        )
        answer = s.recv(65536).decode()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert '"error":"REQUEST_TOO_LARGE"' in answer
    assert "104857600" in answer
