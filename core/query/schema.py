"""The type of a topic's ``value`` column, from the topic's codec and a sample of its records.

- ``text`` topics: ``VARCHAR``; ``bytes`` topics (and codecs the engine does not know): ``BLOB``.
- ``json`` topics: the structure DuckDB finds in a sample of the values
  (``json_group_structure``), usually a ``STRUCT`` whose fields read as ``value.temp``. The
  sample is the first and the last :data:`SAMPLE_RECORDS` records of every partition, so a field
  that appeared late is seen too. Where the sampled rows disagree the type widens: integers and
  decimals become ``DOUBLE``, a field that is a number in one row and text in another becomes
  ``JSON`` (its JSON text), and the fields of all the rows' objects are merged. Integers are
  read as ``BIGINT`` (DuckDB would say ``UBIGINT`` for a sample without negative numbers).
  A value that is not valid JSON, or a field whose value does not fit the type, reads as NULL.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from ..log import Topic
from .columns import BatchChunk, decode_chunk

__all__ = ["SAMPLE_RECORDS", "ValueType", "value_type", "value_type_of"]

SAMPLE_RECORDS = 1_000


@dataclass(frozen=True)
class ValueType:
    """How a topic's value is shown: ``sql`` is the expression over the raw ``value`` column
    (text for ``text`` and ``json`` topics, bytes otherwise); ``text`` says whether the raw
    column is text."""

    codec: str
    sql: str
    text: bool
    structure: str | None = None  # the JSON structure of a json topic


def value_type(con: Any, topic: Topic) -> ValueType:
    """The ``value`` column of ``topic``, inferred with the DuckDB connection ``con``."""
    return value_type_of(con, topic.config.codec, lambda: _sample(topic))


def value_type_of(con: Any, codec: str, sample_values: Callable[[], pa.Array]) -> ValueType:
    """The ``value`` column of a topic whose codec is ``codec``; ``sample_values`` gives some
    of its values as text (called for JSON topics only)."""
    if codec == "text":
        return ValueType(codec, "value", True)
    if codec != "json":
        return ValueType(codec, "value", False)
    sample = sample_values()
    structure = '"JSON"'
    if len(sample):
        con.register("__millstream_sample", pa.table({"v": sample}))
        try:
            found = con.execute(
                "SELECT json_group_structure(v::JSON) FROM __millstream_sample "
                "WHERE v IS NOT NULL AND json_valid(v)"
            ).fetchall()[0][0]
        finally:
            con.unregister("__millstream_sample")
        if found is not None:
            structure = json.dumps(_widened(json.loads(found)), separators=(",", ":"))
    literal = structure.replace("'", "''")
    return ValueType(codec, f"try(json_transform(value, '{literal}'))", True, structure)


def _widened(structure: Any) -> Any:
    """DuckDB's structure with the types a query can rely on."""
    if isinstance(structure, dict):
        if not structure:
            return "JSON"
        return {key: _widened(value) for key, value in structure.items()}
    if isinstance(structure, list):
        return [_widened(structure[0])] if structure else ["JSON"]
    if structure in ("UBIGINT", "BIGINT", "HUGEINT", "UHUGEINT"):
        return "BIGINT"
    if structure == "NULL":
        return "JSON"
    return structure


def _sample(topic: Topic) -> pa.Array:
    """Raw values from the head and the tail of every partition, as text."""
    arrays = []
    for partition in topic.partitions:
        start, end = partition.log_start_offset, partition.high_watermark
        if end <= start:
            continue
        offsets = [start]
        if end - start > SAMPLE_RECORDS:
            offsets.append(end - SAMPLE_RECORDS)
        for offset in offsets:
            batches = partition.read(offset, max_bytes=256 << 10)
            if not batches:
                continue
            chunk = BatchChunk.of(partition.index, batches)
            values = decode_chunk(chunk, ("value",)).column("value")
            arrays.append(values.slice(0, SAMPLE_RECORDS))
    if not arrays:
        return pa.array([], pa.string())
    values = pa.concat_arrays(arrays)
    try:
        return values.cast(pa.string())
    except pa.ArrowInvalid:
        return pa.array(
            [None if v is None else v.decode("utf-8", "replace") for v in values.to_pylist()],
            pa.string(),
        )
