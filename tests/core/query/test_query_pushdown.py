"""WHERE bounds on partition, record_offset and timestamp limit what is read, never the answer.

Each test compares a bounded query with the same condition written so that no bound can be
taken from it (inside an OR with false), which reads the topic whole: the answers must be equal
and the bounded one must have read less.
"""

from __future__ import annotations

import pytest
from query_data import READINGS, T0


def whole(condition: str) -> str:
    """The same condition, hidden from the bounds (an OR is never used)."""
    return f"(({condition}) OR false)"


def stats(result, topic: str = "readings"):
    (found,) = [s for s in result.stats if s.topic == topic]
    return found


def compare(engine, select: str, condition: str, tail: str = ""):
    bounded = engine.run(f"{select} WHERE {condition} {tail}", max_rows=None)
    full = engine.run(f"{select} WHERE {whole(condition)} {tail}", max_rows=None)
    assert bounded.rows == full.rows
    assert stats(full).records_read == READINGS
    assert stats(full).segments_read == stats(full).segments_total
    return bounded, stats(bounded)


def test_a_time_window_reads_only_the_segments_it_needs(engine) -> None:
    start, end = T0 + 600_000, T0 + 620_000  # records 600..619
    condition = (
        f"timestamp >= make_timestamptz({start * 1000}) "
        f"AND timestamp < make_timestamptz({end * 1000})"
    )
    result, read = compare(engine, "SELECT value.n FROM readings", condition, "ORDER BY 1")
    assert [row[0] for row in result.rows] == list(range(600, 620))
    assert read.segments_total > 10
    assert read.segments_read <= 2
    assert read.records_read <= 100  # whole batches of 50 at the edges
    assert read.bounds == f"timestamp ms {start}..{end - 1}"


def test_time_bounds_written_as_text_and_with_between(engine) -> None:
    condition = (
        "timestamp BETWEEN '2023-11-14 22:30:00+00' AND TIMESTAMPTZ '2023-11-14 22:30:09.999+00'"
    )
    result, read = compare(engine, "SELECT count(*) FROM readings", condition)
    assert result.rows == [(10,)]
    assert read.records_read <= 100


def test_a_lower_time_bound_alone_skips_the_older_segments(engine) -> None:
    condition = f"timestamp > make_timestamptz({(T0 + 1_899_000) * 1000})"
    result, read = compare(engine, "SELECT count(*) FROM readings", condition)
    assert result.rows == [(100,)]
    assert read.records_read <= 150


def test_an_offset_range_and_a_partition(engine) -> None:
    condition = "partition = 1 AND record_offset BETWEEN 100 AND 149"
    result, read = compare(
        engine, "SELECT partition, record_offset FROM readings", condition, "ORDER BY 2"
    )
    assert result.rows == [(1, n) for n in range(100, 150)]
    assert read.partitions_read == 1
    assert read.records_read <= 100
    assert read.segments_read <= 2


def test_partition_in_a_list_and_offsets_from_the_other_side(engine) -> None:
    condition = "partition IN (0) AND 990 < record_offset"
    result, read = compare(engine, "SELECT count(*) FROM readings", condition)
    assert result.rows == [(9,)]
    assert read.partitions_read == 1
    assert read.records_read <= 50


def test_bounds_that_exclude_everything_read_nothing(engine) -> None:
    result = engine.run(
        "SELECT count(*) FROM readings WHERE record_offset > 5 AND record_offset < 3"
    )
    read = stats(result)
    assert result.rows == [(0,)]
    assert read.records_read == 0 and read.segments_read == 0


def test_a_qualified_column_and_a_join(engine) -> None:
    condition = "r.record_offset < 10 AND r.partition = 0"
    result, read = compare(
        engine,
        "SELECT count(*) FROM readings r LEFT JOIN logs l ON l.key = r.key",
        condition,
    )
    assert result.rows == [(10,)]
    assert read.records_read <= 50


@pytest.mark.parametrize(
    "sql",
    [
        # the same topic twice: both scans read it whole
        "SELECT count(*) FROM readings a, readings b WHERE a.record_offset < 3 "
        "AND b.record_offset < 3 AND a.partition = 0 AND b.partition = 0",
        # a select-list alias shadows the column in DuckDB's WHERE
        "SELECT value.n AS record_offset FROM readings WHERE record_offset < 3",
        # a function of the column
        "SELECT count(*) FROM readings WHERE record_offset + 0 < 3",
    ],
)
def test_conditions_that_give_no_bounds_read_everything(engine, sql: str) -> None:
    result = engine.run(sql, max_rows=None)
    assert all(s.bounds == "all records" for s in result.stats)
    assert all(s.records_read >= READINGS for s in result.stats)


def test_the_answer_with_an_alias_that_shadows_a_column(engine) -> None:
    result = engine.run("SELECT value.n AS record_offset FROM readings WHERE record_offset < 3")
    # DuckDB reads the table's column here, not the alias: offsets 0-2 of both partitions
    assert sorted(row[0] for row in result.rows) == [0, 1, 2, 50, 51, 52]


def test_explain_shows_what_the_scan_would_read(engine) -> None:
    result = engine.run("EXPLAIN SELECT count(*) FROM readings WHERE record_offset < 10")
    scan_rows = [row for row in result.rows if row[0] == "millstream_scan"]
    assert len(scan_rows) == 1
    text = scan_rows[0][1]
    assert text.startswith("topic readings: offset -∞..9; reads 2 of ")
    assert "100 of 2000 records, 2 of 2 partitions" in text
    assert stats(result).records_read == 0  # EXPLAIN plans; it reads no record
