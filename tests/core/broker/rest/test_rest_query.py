"""``POST /query``: read-only SQL over the topics while the broker writes them."""

from __future__ import annotations

import pytest
from rest_client import Rest, assert_error

pytest.importorskip("duckdb")


def test_a_query_answers_rows_as_json(rest: Rest) -> None:
    topic = rest.create_topic(partitions=2)
    rest.post(
        f"/topics/{topic}/records",
        [{"key": f"k{n % 3}", "value": {"n": n, "tag": "t"}} for n in range(12)],
    )
    answer = rest.post(
        "/query",
        {"sql": f'SELECT key, count(*) c, sum(value.n) s FROM "{topic}" GROUP BY 1 ORDER BY 1'},
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["columns"] == ["key", "c", "s"]
    assert body["types"][:2] == ["VARCHAR", "BIGINT"]
    assert body["rows"] == [["k0", 4, 18], ["k1", 4, 22], ["k2", 4, 26]]
    assert body["elapsed_ms"] >= 0


def test_values_json_cannot_type_come_as_text_and_json_as_json(rest: Rest) -> None:
    topic = rest.create_topic()
    rest.post(f"/topics/{topic}/records", [{"value": {"a": [1, 2]}}])
    answer = rest.post("/query", {"sql": f'SELECT timestamp, value FROM "{topic}"'})
    assert answer.status_code == 200, answer.text
    [[timestamp, value]] = answer.json()["rows"]
    assert isinstance(timestamp, str) and timestamp[:2] == "20"
    assert value == {"a": [1, 2]}


def test_records_appended_just_before_are_seen(rest: Rest) -> None:
    topic = rest.create_topic()
    for n in range(3):
        rest.post(f"/topics/{topic}/records", [{"value": n}])
        rows = rest.post("/query", {"sql": f'SELECT count(*) FROM "{topic}"'}).json()["rows"]
        assert rows == [[n + 1]]


def test_bad_and_forbidden_queries_are_400(rest: Rest, tmp_path) -> None:  # type: ignore[no-untyped-def]
    topic = rest.create_topic()
    rest.post(f"/topics/{topic}/records", [{"value": n} for n in range(5)])
    assert_error(rest.post("/query", {"sql": "SELEC 1"}), 400, "INVALID_QUERY")
    assert_error(rest.post("/query", {"sql": f'DELETE FROM "{topic}"'}), 400, "INVALID_QUERY")
    secret = tmp_path / "secret.csv"
    secret.write_text("a\n1\n")
    assert_error(
        rest.post("/query", {"sql": f"SELECT * FROM read_csv('{secret}')"}), 400, "INVALID_QUERY"
    )
    assert_error(
        rest.post("/query", {"sql": f'SELECT * FROM "{topic}"', "max_rows": 2}),
        400,
        "INVALID_QUERY",
        "more than 2 rows",
        "max_rows",
    )
    assert_error(rest.post("/query", {"sql": ""}), 400, "INVALID_REQUEST", "body.sql")
    assert_error(
        rest.post("/query", {"sql": "SELECT 1", "timeout_ms": 0}),
        400,
        "INVALID_REQUEST",
        "body.timeout_ms",
    )
