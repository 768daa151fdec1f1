"""RecordBatch v2 bytes → Arrow columns, with as little Python per record as possible.

The query engine hands DuckDB Arrow record batches. Decoding records one by one into Python
objects (what a consumer does) costs about 2 µs a record; here the only Python loop per record
walks the records' length varints to find where each record starts. Everything else is done by
Arrow's compute kernels over all the records of a chunk at once:

- each field's varint is read with ``take`` on the bytes seen as a ``uint8`` array, one byte
  position per record, for as many rounds as the widest varint of the chunk needs;
- keys and values are cut out without copying them one by one: an Arrow binary array whose
  offsets alternate between a field's start and end (``[s0, e0, s1, e1, …]``) holds the fields at
  its even positions and the bytes between them at its odd ones, and one ``take`` of the even
  positions copies them, in C, into a binary array of their own.

A chunk is many batches (their records sections laid end to end), so the fixed cost of a few
dozen kernel calls is shared by tens of thousands of records even when the batches are small.

Columns (see :data:`RAW_SCHEMA`): ``partition`` int32, ``record_offset`` int64, ``timestamp``
timestamp[ms, UTC], ``key`` string, ``headers`` list<struct<key: string, value: string>>,
``value`` binary (the scan makes it text for text and JSON topics, see :func:`as_text`). Keys
and header values are text: bytes that are not UTF-8 are shown with U+FFFD in their place.
Columns not asked for are all null (cheap), so a query that reads only ``value`` pays for
``value`` only.
"""

from __future__ import annotations

import struct
from array import array
from collections.abc import Collection, Sequence
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import CorruptBatchError
from ..log.batch import BATCH_OVERHEAD, HEADER_SIZE
from ..log.compression import decompress

__all__ = ["COLUMNS", "RAW_SCHEMA", "BatchChunk", "as_text", "decode_chunk"]

_HEADER_TYPE = pa.struct([("key", pa.string()), ("value", pa.string())])

RAW_SCHEMA = pa.schema(
    [
        ("partition", pa.int32()),
        ("record_offset", pa.int64()),
        ("timestamp", pa.timestamp("ms", tz="UTC")),
        ("key", pa.string()),
        ("headers", pa.list_(_HEADER_TYPE)),
        ("value", pa.binary()),
    ]
)
"""The Arrow schema of the decoded records (the topic's name is added by the query)."""

COLUMNS = tuple(RAW_SCHEMA.names)
"""The record columns that can be asked for."""

_HEADER = struct.Struct(">qiibIhiqqqhii")
_CONTROL_BIT = 0x20
_TIMESTAMP_TYPE_BIT = 0x08
_COMPRESSION_MASK = 0x07
_ZIGZAG = tuple((z >> 1) ^ -(z & 1) for z in range(1 << 14))


@dataclass
class BatchChunk:
    """The records sections of several batches of one partition, laid end to end."""

    partition: int
    data: bytearray
    counts: list[int]
    ends: list[int]  # where each batch's records section ends in ``data``
    base_offsets: list[int]
    base_timestamps: list[int]
    append_times: list[int]  # the batch's max timestamp when it is LogAppendTime, else -1

    @classmethod
    def of(cls, partition: int, batches: Sequence[bytes | memoryview]) -> BatchChunk:
        """Gather ``batches`` (whole, framing already checked); control batches are left out."""
        chunk = cls(partition, bytearray(), [], [], [], [], [])
        for batch in batches:
            chunk.add(batch)
        return chunk

    def add(self, batch: bytes | memoryview) -> None:
        (base, length, _e, _m, _crc, attributes, _lod, base_ts, max_ts, _p, _pe, _s, count) = (
            _HEADER.unpack_from(batch, 0)
        )
        if attributes & _CONTROL_BIT or count <= 0:
            return
        end = length + BATCH_OVERHEAD
        codec = attributes & _COMPRESSION_MASK
        if codec:
            self.data += decompress(codec, memoryview(batch)[HEADER_SIZE:end])
        else:
            self.data += memoryview(batch)[HEADER_SIZE:end]
        self.counts.append(count)
        self.ends.append(len(self.data))
        self.base_offsets.append(base)
        self.base_timestamps.append(base_ts)
        self.append_times.append(max_ts if attributes & _TIMESTAMP_TYPE_BIT else -1)

    @property
    def records(self) -> int:
        return sum(self.counts)


def _record_fields(chunk: BatchChunk) -> array:
    """Where each record's fields start in ``chunk.data`` (its attributes byte, right after its
    length): the one per-record Python loop, kept as short as it can be."""
    buf = chunk.data
    starts = array("i")
    append = starts.append
    pos = 0
    for i, (count, end) in enumerate(zip(chunk.counts, chunk.ends, strict=True)):
        for _ in range(count):
            # the record's length: a zig-zag varint of a number >= 0, so ``z >> 1``
            b = buf[pos]
            if b < 0x80:
                pos += 1
                append(pos)
                pos += b >> 1
            else:
                b1 = buf[pos + 1]
                if b1 < 0x80:
                    pos += 2
                    append(pos)
                    pos += (b1 << 6) | ((b & 0x7F) >> 1)
                else:
                    n, pos = _varint(buf, pos)
                    append(pos)
                    pos += n
        if pos != end:
            raise CorruptBatchError(
                f"the records of the batch at offset {chunk.base_offsets[i]} do not fill its "
                "records section exactly"
            )
    return starts


def _varint(buf: bytearray, pos: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptBatchError("record varint longer than 10 bytes")


def _int_array(values: array, kind: pa.DataType) -> pa.Array:
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def _repeat(values: list[int], counts: list[int], code: str, kind: pa.DataType) -> pa.Array:
    out = array(code)
    for value, count in zip(values, counts, strict=True):
        out.extend(array(code, [value]) * count)
    return _int_array(out, kind)


def _read_varints(data: pa.Array, pos: pa.Array) -> tuple[pa.Array, pa.Array]:
    """The zig-zag varint at each position of ``pos`` in ``data`` (uint8): (values, ends)."""
    b = pc.take(data, pos)
    value = pc.cast(pc.bit_wise_and(b, 0x7F), pa.int64())
    more = pc.greater_equal(b, 0x80)
    end = pc.add(pos, 1)
    shift = 7
    while pc.any(more).as_py():
        if shift > 63:
            raise CorruptBatchError("record varint longer than 10 bytes")
        b = pc.take(data, pc.if_else(more, end, pos))
        part = pc.shift_left(pc.cast(pc.bit_wise_and(b, 0x7F), pa.int64()), shift)
        value = pc.if_else(more, pc.bit_wise_or(value, part), value)
        end = pc.add(end, pc.cast(more, pa.int32()))
        more = pc.and_(more, pc.greater_equal(b, 0x80))
        shift += 7
    decoded = pc.bit_wise_xor(pc.shift_right(value, 1), pc.negate(pc.bit_wise_and(value, 1)))
    return decoded, end


def _skip_varints(data: pa.Array, pos: pa.Array) -> pa.Array:
    """Where the varint at each position of ``pos`` ends (its value is not needed)."""
    b = pc.take(data, pos)
    more = pc.greater_equal(b, 0x80)
    end = pc.add(pos, 1)
    steps = 0
    while pc.any(more).as_py():
        steps += 1
        if steps > 9:
            raise CorruptBatchError("record varint longer than 10 bytes")
        b = pc.take(data, pc.if_else(more, end, pos))
        end = pc.add(end, pc.cast(more, end.type))
        more = pc.and_(more, pc.greater_equal(b, 0x80))
    return end


def _cut(blob: pa.Buffer, starts: pa.Array, lengths: pa.Array, n: int) -> pa.Array:
    """The fields ``blob[starts[i] : starts[i] + lengths[i]]`` (a length of -1 is null)."""
    present = pc.greater_equal(lengths, 0)
    starts = pc.cast(starts, pa.int32())
    sizes = pc.cast(pc.max_element_wise(lengths, 0), pa.int32())
    # [s0, e0, s1, e1, …, e(n-1), e(n-1)]: the fields at even positions, the gaps between them
    # at odd ones, and the last gap empty; e = s + size = take(s, halves) + take(size, halves)
    # times 0, 1, 0, 1…
    halves = _pattern("halves", 2 * n)
    bounds = pc.add(
        pc.take(starts, halves), pc.multiply(pc.take(sizes, halves), _pattern("odd", 2 * n))
    )
    bounds = pa.concat_arrays([bounds, bounds.slice(2 * n - 1)])
    spans = pa.Array.from_buffers(pa.binary(), 2 * n, [None, bounds.buffers()[1], blob])
    fields = pc.take(spans, _pattern("evens", n))
    if not pc.all(present).as_py():
        fields = pc.if_else(present, fields, pa.scalar(None, pa.binary()))
    return fields


_PATTERNS: dict[str, pa.Array] = {}
_MAKERS = {
    "halves": lambda ar: pc.shift_right(ar, 1),
    "odd": lambda ar: pc.bit_wise_and(ar, 1),
    "evens": lambda ar: pc.multiply(ar, 2),
}


def _pattern(name: str, n: int) -> pa.Array:
    """The first ``n`` of a cached int32 sequence: ``halves`` 0, 0, 1, 1, …; ``odd`` 0, 1, 0,
    1, …; ``evens`` 0, 2, 4, … (grown, by doubling, as needed)."""
    base = _PATTERNS.get(name)
    if base is None or len(base) < n:
        size = 1 << max(10, (n - 1).bit_length())
        base = pc.cast(_MAKERS[name](_arange(size)), pa.int32())
        _PATTERNS[name] = base
    return base.slice(0, n)


def _arange(n: int) -> pa.Array:
    """0, 1, …, n-1 as int32, made by doubling (a few kernel calls, no Python loop)."""
    out = _int_array(array("i", range(min(n, 1024))), pa.int32())
    while len(out) < n:
        out = pa.concat_arrays([out, pc.cast(pc.add(out, len(out)), pa.int32())])
    return out.slice(0, n)


def decode_chunk(chunk: BatchChunk, wanted: Collection[str] = COLUMNS) -> pa.RecordBatch:
    """The records of ``chunk`` as an Arrow record batch of :data:`RAW_SCHEMA`; the columns not
    in ``wanted`` are null."""
    n = chunk.records
    if n == 0:
        return pa.RecordBatch.from_pylist([], schema=RAW_SCHEMA)
    fields = _int_array(_record_fields(chunk), pa.int32())
    blob = pa.py_buffer(chunk.data)
    data = pa.Array.from_buffers(pa.uint8(), len(chunk.data), [None, blob])
    columns: dict[str, pa.Array] = {}
    if "partition" in wanted:
        columns["partition"] = _int_array(array("i", [chunk.partition]) * n, pa.int32())
    need_fields = bool({"record_offset", "timestamp", "key", "headers", "value"} & set(wanted))
    if need_fields:
        pos = pc.add(fields, 1)  # after the attributes byte
        if "timestamp" in wanted:
            ts_delta, pos = _read_varints(data, pos)
            columns["timestamp"] = _timestamps(chunk, ts_delta)
        else:
            pos = _skip_varints(data, pos)
        if "record_offset" in wanted:
            offset_delta, pos = _read_varints(data, pos)
            bases = _repeat(chunk.base_offsets, chunk.counts, "q", pa.int64())
            columns["record_offset"] = pc.add(bases, offset_delta)
        else:
            pos = _skip_varints(data, pos)
        key_length, pos = _read_varints(data, pos)
        key_length = pc.cast(key_length, pa.int32())
        if "key" in wanted:
            columns["key"] = as_text(_cut(blob, pos, key_length, n))
        pos = pc.add(pos, pc.max_element_wise(key_length, 0))
        value_length, pos = _read_varints(data, pos)
        value_length = pc.cast(value_length, pa.int32())
        if "value" in wanted:
            columns["value"] = _cut(blob, pos, value_length, n)
        if "headers" in wanted:
            pos = pc.add(pos, pc.max_element_wise(value_length, 0))
            columns["headers"] = _headers(chunk.data, data, pos, n)
    arrays = [
        columns[name] if name in columns else pa.nulls(n, RAW_SCHEMA.field(name).type)
        for name in RAW_SCHEMA.names
    ]
    return pa.RecordBatch.from_arrays(arrays, schema=RAW_SCHEMA)


def _timestamps(chunk: BatchChunk, deltas: pa.Array) -> pa.Array:
    bases = _repeat(chunk.base_timestamps, chunk.counts, "q", pa.int64())
    stamps = pc.add(bases, deltas)
    if any(t >= 0 for t in chunk.append_times):
        appended = _repeat(chunk.append_times, chunk.counts, "q", pa.int64())
        stamps = pc.if_else(pc.greater_equal(appended, 0), appended, stamps)
    return stamps.view(pa.timestamp("ms", tz="UTC"))


def _headers(buf: bytearray, data: pa.Array, pos: pa.Array, n: int) -> pa.Array:
    """Each record's headers: an empty list for the (usual) records without any; the others
    are read one by one."""
    first = pc.take(data, pos)
    having = pc.not_equal(first, 0)
    if not pc.any(having).as_py():
        offsets = pa.Array.from_buffers(pa.int32(), n + 1, [None, pa.py_buffer(bytes(4 * (n + 1)))])
        return pa.ListArray.from_arrays(offsets, pa.array([], _HEADER_TYPE))
    positions = pos.to_pylist()
    flags = having.to_pylist()
    rows: list[list[dict[str, object]]] = []
    for p, has in zip(positions, flags, strict=True):
        rows.append(_read_headers(buf, p) if has else [])
    return pa.array(rows, pa.list_(_HEADER_TYPE))


def _read_headers(buf: bytearray, pos: int) -> list[dict[str, object]]:
    count, pos = _varint(buf, pos)
    out: list[dict[str, object]] = []
    for _ in range(count):
        n, pos = _varint(buf, pos)
        name = bytes(buf[pos : pos + max(n, 0)]).decode("utf-8", "replace")
        pos += max(n, 0)
        n, pos = _varint(buf, pos)
        value = None if n < 0 else bytes(buf[pos : pos + n]).decode("utf-8", "replace")
        pos += max(n, 0)
        out.append({"key": name, "value": value})
    return out


def as_text(data: pa.Array) -> pa.Array:
    """A binary array as UTF-8 text (checked in C); the rare element that is not valid UTF-8
    is decoded with U+FFFD in place of its bad bytes."""
    try:
        return data.cast(pa.string())
    except pa.ArrowInvalid:
        fixed = [None if b is None else b.decode("utf-8", "replace") for b in data.to_pylist()]
        return pa.array(fixed, pa.string())
