"""Every topic is a table: its columns, their types and values, nested fields, widening."""

from __future__ import annotations

import datetime as dt

import orjson
import pytest
from query_data import READINGS, T0, reading

from millstream.core.errors import QueryError


def test_the_columns_and_their_types(engine) -> None:
    result = engine.run("DESCRIBE readings")
    types = {row[0]: row[1] for row in result.rows}
    assert list(types) == [
        "topic",
        "partition",
        "record_offset",
        "timestamp",
        "key",
        "headers",
        "value",
    ]
    assert types["topic"] == "VARCHAR"
    assert types["partition"] == "INTEGER"
    assert types["record_offset"] == "BIGINT"
    assert types["timestamp"] == "TIMESTAMP WITH TIME ZONE"
    assert types["key"] == "VARCHAR"
    assert types["headers"] == 'STRUCT("key" VARCHAR, "value" VARCHAR)[]'
    assert types["value"] == (
        'STRUCT(device_id VARCHAR, "temp" BIGINT, n BIGINT, "location" STRUCT(lat DOUBLE, '
        "lon DOUBLE), extra VARCHAR)"
    )


def test_every_record_comes_back_as_it_was_written(engine) -> None:
    rows = engine.run("SELECT * FROM readings ORDER BY value.n", max_rows=None).as_dicts()
    assert len(rows) == READINGS
    offsets = {0: 0, 1: 0}
    for n, row in enumerate(rows):
        record = reading(n)
        partition = (n // 50) % 2
        assert row["topic"] == "readings"
        assert row["partition"] == partition
        assert row["record_offset"] == offsets[partition]
        offsets[partition] += 1
        assert row["timestamp"] == dt.datetime.fromtimestamp((T0 + n * 1000) / 1000, dt.UTC)
        assert row["key"] == record.key.decode()
        assert row["headers"] == [{"key": k, "value": v.decode()} for k, v in record.headers]
        expected = orjson.loads(record.value)
        assert {k: v for k, v in row["value"].items() if v is not None} == expected


def test_nested_fields_read_with_dots_and_flatten_with_star(engine) -> None:
    rows = engine.run(
        "SELECT value.location.lat AS lat, value.* FROM readings WHERE value.n = 250"
    ).as_dicts()
    assert rows == [
        {
            "lat": 2.5,
            "device_id": "dev-0",
            "temp": 20,
            "n": 250,
            "location": {"lat": 2.5, "lon": -2.5},
            "extra": None,
        }
    ]


def test_text_and_bytes_topics(engine) -> None:
    logs = engine.run("SELECT key, value, typeof(value) FROM logs ORDER BY record_offset")
    assert logs.rows == [(None, "started", "VARCHAR"), ("dev-1", "dev-1 is hot", "VARCHAR")]
    blobs = engine.run("SELECT value, typeof(value) FROM blobs WHERE record_offset = 0")
    assert blobs.rows == [(b"\x00\xff\x01", "BLOB")]


def test_rows_that_disagree_widen_the_type_and_bad_json_reads_as_null(engine) -> None:
    result = engine.run("SELECT typeof(value), value FROM mixed ORDER BY record_offset")
    assert result.rows[0][0] == "STRUCT(a JSON, b VARCHAR, c STRUCT(d BIGINT[]))"
    values = [row[1] for row in result.rows]
    assert [v and v["a"] for v in values] == ["1", "1.5", '"s"', None, None]
    assert values[1]["b"] == "x"
    assert values[3]["c"] == {"d": [1, 2]}
    assert values[4] is None  # "not json": the row is there, its value is NULL
    assert engine.run("SELECT count(*) FROM mixed").rows == [(5,)]


def test_compressed_batches_read_like_the_others(engine) -> None:
    result = engine.run("SELECT record_offset, value.n, key FROM zipped ORDER BY record_offset")
    assert result.rows == [(n, n, f"dev-{n % 5}") for n in range(40)]


def test_log_append_time_topics_show_the_time_the_store_wrote(engine) -> None:
    (row,) = engine.run("SELECT timestamp FROM stamped").rows
    assert row[0] > dt.datetime(2025, 1, 1, tzinfo=dt.UTC)  # not the 1000 ms it was sent with


def test_keys_and_headers_that_are_not_text_show_replacement_characters(engine) -> None:
    result = engine.run("SELECT key, headers, value FROM blobs WHERE record_offset = 1")
    assert result.rows == [("\ufffdkey", [{"key": "h", "value": "\ufffd"}], b"")]


def test_an_empty_topic_is_an_empty_table(engine) -> None:
    assert engine.run("SELECT count(*) FROM empty").rows == [(0,)]
    # nothing to infer a structure from: the value is its JSON text
    assert engine.run("SELECT typeof(value) FROM (SELECT NULL) LEFT JOIN empty ON true").rows == [
        ("JSON",)
    ]


def test_joins_between_topics_and_of_a_topic_with_itself(engine) -> None:
    joined = engine.run(
        "SELECT l.value, count(*) FROM logs l JOIN readings r ON r.key = l.key GROUP BY 1"
    )
    assert joined.rows == [("dev-1 is hot", READINGS // 5)]
    self_join = engine.run(
        "SELECT count(*) FROM readings a JOIN readings b "
        "ON a.partition = b.partition AND a.record_offset + 1 = b.record_offset"
    )
    assert self_join.rows == [(READINGS - 2,)]


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_topic_joins_with_a_file_in_an_allowed_folder(engine, store_dir, kind) -> None:
    path = store_dir.parent / f"devices.{kind}"
    if kind == "csv":
        path.write_text("device,room\ndev-1,kitchen\ndev-2,attic\n")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({"device": ["dev-1", "dev-2"], "room": ["kitchen", "attic"]}), path)
    result = engine.run(
        f"SELECT d.room, count(*) FROM readings r JOIN '{path}' d ON d.device = r.key "
        "GROUP BY 1 ORDER BY 1"
    )
    assert result.rows == [("attic", READINGS // 5), ("kitchen", READINGS // 5)]


def test_an_unknown_topic_lists_the_known_ones(engine) -> None:
    with pytest.raises(QueryError) as caught:
        engine.run("SELECT * FROM readngs")
    assert str(caught.value) == (
        "unknown topic 'readngs'; known topics: blobs, empty, logs, mixed, readings, stamped, "
        "zipped"
    )


def test_a_syntax_error_says_where(engine) -> None:
    with pytest.raises(QueryError) as caught:
        engine.run("SELECT key\nFROM readings\nWHERE WHERE key = 'x'")
    message = str(caught.value)
    assert message.startswith('SQL syntax error at or near "WHERE" at line 3, column 7')


def test_more_rows_than_the_limit_is_refused_with_how_to_raise_it(engine) -> None:
    with pytest.raises(QueryError) as caught:
        engine.run("SELECT * FROM readings", max_rows=100)
    assert "more than 100 rows" in str(caught.value)
    assert "--max-rows" in str(caught.value)
    assert len(engine.run("SELECT * FROM readings LIMIT 100", max_rows=100).rows) == 100


def test_a_query_past_its_time_limit_stops(engine) -> None:
    with pytest.raises(QueryError, match="stopped at its time limit of 0.3 s"):
        engine.run("SELECT sum(i * i) FROM range(100000000000) t(i)", timeout=0.3)


def test_reading_some_fields_of_the_value_gives_the_same_answers(engine) -> None:
    some = engine.run("SELECT sum(value.temp), max(value.location.lat) FROM readings").rows
    whole = engine.run(
        "SELECT sum(v.temp), max(v.location.lat) FROM (SELECT value AS v FROM readings)"
    ).rows
    assert some == whole == [(sum(20 + n % 10 for n in range(READINGS)), (READINGS - 1) / 100)]


def test_a_field_the_values_do_not_have_is_named(engine) -> None:
    with pytest.raises(QueryError, match="nosuch"):
        engine.run("SELECT value.nosuch FROM readings")
