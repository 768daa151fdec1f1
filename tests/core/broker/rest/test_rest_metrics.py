"""``/healthz`` and ``/metrics``: Prometheus text whose counters move with real Kafka traffic."""

from __future__ import annotations

import re
import time

import confluent_kafka
from broker_server import BrokerServer
from rest_client import Rest

_SAMPLE = re.compile(r"^([a-z_]+)(\{[^}]*\})? (\S+)$")


def scrape(rest: Rest) -> dict[str, float]:
    """Every sample of ``/metrics`` as ``name{labels}`` → value; the format checked line by line."""
    answer = rest.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples: dict[str, float] = {}
    declared: set[str] = set()
    for line in answer.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ")
            assert kind in ("counter", "gauge", "histogram")
            declared.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        match = _SAMPLE.match(line)
        assert match, f"not a Prometheus sample line: {line!r}"
        name = match.group(1)
        assert re.sub(r"_(bucket|sum|count)$", "", name) in declared, name
        samples[name + (match.group(2) or "")] = float(match.group(3))
    return samples


def test_healthz_says_ok(rest: Rest) -> None:
    answer = rest.get("/healthz")
    assert answer.status_code == 200
    assert answer.json() == {"status": "ok"}


def test_counters_move_with_kafka_traffic(rest: Rest, rest_broker: BrokerServer) -> None:
    topic = rest.create_topic(partitions=2)
    label = f'{{topic="{topic}"}}'
    before = scrape(rest)
    assert f"millstream_broker_records_in_total{label}" not in before

    producer = confluent_kafka.Producer(
        {"bootstrap.servers": rest_broker.bootstrap, "linger.ms": 5}
    )
    for n in range(100):
        producer.produce(topic, value=b"x" * 100, partition=n % 2)
    assert producer.flush(30) == 0
    consumer = confluent_kafka.Consumer(
        {"bootstrap.servers": rest_broker.bootstrap, "group.id": f"{topic}-g"}
    )
    consumer.assign([confluent_kafka.TopicPartition(topic, p, 0) for p in (0, 1)])
    got = 0
    deadline = time.monotonic() + 30
    try:
        while got < 100 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and not message.error():
                got += 1
        assert got == 100
        during = scrape(rest)
        assert during["millstream_broker_connections"] >= 2  # the producer's and the consumer's
    finally:
        consumer.close()
    producer = None
    after = scrape(rest)
    assert after[f"millstream_broker_records_in_total{label}"] == 100
    assert after[f"millstream_broker_bytes_in_total{label}"] > 100 * 100
    assert after[f"millstream_broker_records_out_total{label}"] >= 100
    assert after[f"millstream_broker_bytes_out_total{label}"] > 100 * 100
    produce_count = 'millstream_broker_request_duration_seconds_count{api="PRODUCE"}'
    assert after[produce_count] > before.get(produce_count, 0)
    assert (
        after['millstream_broker_request_duration_seconds_bucket{api="PRODUCE",le="+Inf"}']
        == (after[produce_count])
    )
    assert after['millstream_broker_request_duration_seconds_count{api="FETCH"}'] > 0
    assert after["millstream_broker_connections_opened_total"] >= 2
    sizes = [
        after[f'millstream_broker_log_size_bytes{{topic="{topic}",partition="{p}"}}']
        for p in (0, 1)
    ]
    assert all(size > 50 * 100 for size in sizes)
    assert sum(sizes) == sum(
        p["size_bytes"] for p in rest.get(f"/topics/{topic}").json()["partitions"]
    )


def test_rest_traffic_and_groups_are_counted(rest: Rest) -> None:
    topic = rest.create_topic()
    label = f'{{topic="{topic}"}}'
    rest.post(f"/topics/{topic}/records", [{"value": n} for n in range(7)])
    rest.get(f"/topics/{topic}/partitions/0/records")
    samples = scrape(rest)
    assert samples[f"millstream_broker_records_in_total{label}"] == 7
    assert samples[f"millstream_broker_records_out_total{label}"] == 7
    assert samples["millstream_broker_groups"] == len(rest.get("/groups").json()["groups"])


def test_a_deleted_topic_leaves_the_metrics(rest: Rest) -> None:
    topic = rest.create_topic()
    rest.post(f"/topics/{topic}/records", [{"value": 1}])
    assert f'millstream_broker_records_in_total{{topic="{topic}"}}' in scrape(rest)
    rest.delete(f"/topics/{topic}")
    text = rest.get("/metrics").text
    assert f'topic="{topic}"' not in text


def test_batch_totals_count_records_from_headers() -> None:
    from millstream.core.broker.metrics import batch_totals
    from millstream.core.log import encode_batch
    from millstream.core.record import Record

    one = encode_batch([Record(b"k", b"v" * 10) for _ in range(3)])
    two = encode_batch([Record(None, b"w")], base_offset=3)
    assert batch_totals(bytes(one + two)) == (len(one) + len(two), 4)
    assert batch_totals(b"") == (0, 0)
    assert batch_totals(bytes(one)[:20]) == (20, 0)  # a truncated header counts bytes only


def test_render_is_cumulative_and_escapes_labels() -> None:
    from millstream.core.broker.metrics import BrokerMetrics, Gauge

    metrics = BrokerMetrics()
    for seconds in (0.0001, 0.003, 0.003, 20.0):
        metrics.request_answered(0, seconds)
    metrics.records_in('we"ird\\topic', 10, 2)
    text = metrics.render([Gauge("g", "a gauge", [({"p": "0"}, 1.5)])])
    lines = text.splitlines()
    assert 'millstream_broker_request_duration_seconds_bucket{api="PRODUCE",le="0.0005"} 1' in lines
    assert 'millstream_broker_request_duration_seconds_bucket{api="PRODUCE",le="0.005"} 3' in lines
    assert 'millstream_broker_request_duration_seconds_bucket{api="PRODUCE",le="10"} 3' in lines
    assert 'millstream_broker_request_duration_seconds_bucket{api="PRODUCE",le="+Inf"} 4' in lines
    assert 'millstream_broker_request_duration_seconds_count{api="PRODUCE"} 4' in lines
    assert 'millstream_broker_records_in_total{topic="we\\"ird\\\\topic"} 2' in lines
    assert 'g{p="0"} 1.5' in lines
    assert text.endswith("\n")
