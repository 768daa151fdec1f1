"""Kafka's RecordBatch v2 ("magic 2"), byte for byte.

A batch is a 61-byte header followed by the records section, which may be compressed::

    offset  size  field
     0      8     baseOffset             rewritten by the log on append (not under the CRC)
     8      4     batchLength            bytes after this field
    12      4     partitionLeaderEpoch   rewritten by the log on append (not under the CRC)
    16      1     magic                  always 2
    17      4     crc                    CRC-32C of bytes 21..end
    21      2     attributes             bits 0-2 codec, 3 timestamp type, 4 transactional,
                                         5 control, 6 delete horizon
    23      4     lastOffsetDelta
    27      8     baseTimestamp
    35      8     maxTimestamp
    43      8     producerId
    51      2     producerEpoch
    53      4     baseSequence
    57      4     recordCount
    61      ...   records

Each record is ``length(varint) attributes(int8) timestampDelta(varlong) offsetDelta(varint)
keyLength(varint) key valueLength(varint) value headerCount(varint) headers``, where a length of
-1 means null and every varint is zig-zag encoded.

This module is pure: it checks a batch's framing, rewrites the fields the log owns, and decodes
records; :mod:`.encoder` turns records into batches. It is written for speed: the log appends
and serves whole batches without looking inside them, and the per-record loop of
:func:`decode_records` is the hottest Python of a consumer.
"""

from __future__ import annotations

import bisect
import gc
import struct
from collections.abc import Iterator, Sequence
from typing import NamedTuple

from crc32c import crc32c

from ..errors import CorruptBatchError
from ..record import Header, RecordBlock, StoredRecord
from .compression import Compression, decompress

__all__ = [
    "BATCH_OVERHEAD",
    "HEADER_SIZE",
    "MAGIC",
    "BatchHeader",
    "decode_columns",
    "decode_records",
    "iter_batches",
    "read_header",
    "set_base_offset",
    "set_partition_leader_epoch",
    "validate_batch",
]

HEADER_SIZE = 61
"""Bytes before the records section."""

BATCH_OVERHEAD = 12
"""Bytes before and including ``batchLength``: the whole batch is ``batchLength + 12`` bytes."""

MAGIC = 2

_CRC_START = 21
_HEADER = struct.Struct(">qiibIhiqqqhii")
_BASE_OFFSET = struct.Struct(">q")
_INT32 = struct.Struct(">i")
_UINT32 = struct.Struct(">I")

_COMPRESSION_MASK = 0x07
_TIMESTAMP_TYPE_BIT = 0x08
_TRANSACTIONAL_BIT = 0x10
_CONTROL_BIT = 0x20


class BatchHeader(NamedTuple):
    """The 61-byte header of a batch, decoded."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    record_count: int

    @property
    def size(self) -> int:
        """Bytes the whole batch occupies."""
        return self.batch_length + BATCH_OVERHEAD

    @property
    def last_offset(self) -> int:
        """Offset of the batch's last record."""
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """The offset that follows this batch."""
        return self.base_offset + self.last_offset_delta + 1

    @property
    def compression(self) -> Compression:
        return Compression(self.attributes & _COMPRESSION_MASK)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & _CONTROL_BIT)

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & _TRANSACTIONAL_BIT)

    @property
    def log_append_time(self) -> bool:
        """True when the timestamps are the broker's append time, not the producer's."""
        return bool(self.attributes & _TIMESTAMP_TYPE_BIT)


def read_header(buf: bytes | bytearray | memoryview, pos: int = 0) -> BatchHeader:
    """Decode the header of the batch that starts at ``pos`` (no checks beyond its size)."""
    if len(buf) - pos < HEADER_SIZE:
        raise CorruptBatchError(
            f"batch header needs {HEADER_SIZE} bytes, only {len(buf) - pos} remain"
        )
    return BatchHeader._make(_HEADER.unpack_from(buf, pos))


def validate_batch(
    buf: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None
) -> BatchHeader:
    """Check the framing of the batch at ``pos``: length, magic and CRC-32C.

    Returns its header. Raises :class:`CorruptBatchError` naming what is wrong. Nothing after
    ``end`` (default: the end of ``buf``) is read.
    """
    if end is None:
        end = len(buf)
    if end - pos < HEADER_SIZE:
        raise CorruptBatchError(f"truncated batch: {end - pos} bytes, a header is {HEADER_SIZE}")
    header = BatchHeader._make(_HEADER.unpack_from(buf, pos))
    if header.magic != MAGIC:
        raise CorruptBatchError(f"batch magic is {header.magic}; only RecordBatch v2 (2) is valid")
    if header.batch_length < HEADER_SIZE - BATCH_OVERHEAD:
        raise CorruptBatchError(f"batch length {header.batch_length} is shorter than its header")
    stop = pos + header.batch_length + BATCH_OVERHEAD
    if stop > end:
        raise CorruptBatchError(
            f"truncated batch: length says {header.size} bytes, {end - pos} remain"
        )
    actual = crc32c(memoryview(buf)[pos + _CRC_START : stop])
    if actual != header.crc:
        raise CorruptBatchError(
            f"batch CRC mismatch at offset {header.base_offset}: "
            f"stored {header.crc:#010x}, computed {actual:#010x}"
        )
    if header.last_offset_delta < 0 or header.record_count < 0:
        raise CorruptBatchError("batch has a negative record count or last offset delta")
    return header


def iter_batches(
    buf: bytes | bytearray | memoryview, pos: int = 0, end: int | None = None
) -> Iterator[tuple[int, BatchHeader]]:
    """Yield ``(position, header)`` of each valid batch from ``pos``; stop at the first bad one.

    The caller learns where the valid bytes end from the last position plus its size.
    """
    if end is None:
        end = len(buf)
    while pos < end:
        try:
            header = validate_batch(buf, pos, end)
        except CorruptBatchError:
            return
        yield pos, header
        pos += header.batch_length + BATCH_OVERHEAD


def set_base_offset(buf: bytearray | memoryview, base_offset: int, pos: int = 0) -> None:
    """Rewrite the batch's baseOffset in place (it is not under the CRC)."""
    _BASE_OFFSET.pack_into(buf, pos, base_offset)


def set_partition_leader_epoch(buf: bytearray | memoryview, epoch: int, pos: int = 0) -> None:
    """Rewrite the batch's partitionLeaderEpoch in place (it is not under the CRC)."""
    _INT32.pack_into(buf, pos + 12, epoch)


# --- varints --------------------------------------------------------------------------------


def _decode_varint(buf: bytes, pos: int) -> tuple[int, int]:
    shift = 0
    result = 0
    while True:
        try:
            b = buf[pos]
        except IndexError:
            raise CorruptBatchError("record varint runs past the end of the batch") from None
        pos += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return (result >> 1) ^ -(result & 1), pos
        shift += 7
        if shift > 63:
            raise CorruptBatchError("record varint longer than 10 bytes")


# --- decoding -------------------------------------------------------------------------------

# The zig-zag decoding of every varint of one or two bytes, indexed by its 14 payload bits: the
# varint bytes b0 (< 0x80) and b0, b1 (b0 >= 0x80, b1 < 0x80) give ``_ZIGZAG[b0]`` and
# ``_ZIGZAG[(b1 << 7) + b0 - 0x80]``. Record lengths, deltas and key and value sizes nearly always
# fit in two bytes, and a tuple index is far cheaper than the arithmetic.
_ZIGZAG = tuple((z >> 1) ^ -(z & 1) for z in range(1 << 14))


def _records_section(
    batch: bytes | bytearray | memoryview,
) -> tuple[bytes, int, int, int, int, int, int, int] | None:
    """The records section of a batch as ``(buf, pos, end, count, base_offset, base_ts, max_ts,
    attributes)``: the bytes, decompressed, where its records start and end; None for a control
    batch."""
    if len(batch) < HEADER_SIZE:
        raise CorruptBatchError(f"truncated batch: {len(batch)} bytes, a header is {HEADER_SIZE}")
    (
        base_offset,
        batch_length,
        _epoch,
        magic,
        _crc,
        attributes,
        _last_offset_delta,
        base_ts,
        max_ts,
        _producer_id,
        _producer_epoch,
        _base_sequence,
        count,
    ) = _HEADER.unpack_from(batch, 0)
    if magic != MAGIC:
        raise CorruptBatchError(f"batch magic is {magic}; only RecordBatch v2 (2) is valid")
    if attributes & _CONTROL_BIT:
        return None
    end = batch_length + BATCH_OVERHEAD
    if len(batch) < end:
        raise CorruptBatchError(
            f"truncated batch at offset {base_offset}: length says {end} bytes, {len(batch)} remain"
        )
    codec = attributes & _COMPRESSION_MASK
    if codec:
        buf = decompress(codec, memoryview(batch)[HEADER_SIZE:end])
        pos = 0
        end = len(buf)
    else:
        buf = batch if type(batch) is bytes else bytes(batch[:end])
        pos = HEADER_SIZE
    if count < 0:
        raise CorruptBatchError(f"batch at offset {base_offset} has a negative record count")
    return buf, pos, end, count, base_offset, base_ts, max_ts, attributes


def decode_records(
    batch: bytes | bytearray | memoryview,
    topic: str = "",
    partition: int = 0,
    *,
    min_offset: int = 0,
) -> list[StoredRecord]:
    """Decode the records of one batch (framing already validated), skipping control batches.

    Records with an offset below ``min_offset`` are left out: a fetch returns the whole batch
    that holds the requested offset, and the consumer drops what comes before it.

    Raises :class:`CorruptBatchError` when the records do not fill the batch exactly as its
    header and their own length fields say, the checks Kafka's clients make.
    """
    section = _records_section(batch)
    if section is None:
        return []
    buf, pos, end, count, base_offset, base_ts, max_ts, attributes = section
    zigzag = _ZIGZAG
    varint = _decode_varint
    record = StoredRecord
    new = object.__new__
    out: list[StoredRecord] = []
    append = out.append
    # Each field below is a zig-zag varint, read inline when it is one or two bytes long and by
    # _decode_varint otherwise. The record's own length is checked against where it ends.
    # The cyclic garbage collector is paused while the records are built: they hold no cycles,
    # and a batch of thousands of new objects would otherwise set off several collections
    # (about a sixth of the decoding time).
    collecting = gc.isenabled()
    if collecting:
        gc.disable()
    try:
        for _ in range(count):
            # length, then the attributes byte (unused in v2)
            b = buf[pos]
            if b < 0x80:
                record_end = pos + 1 + zigzag[b]
                pos += 2
            else:
                b1 = buf[pos + 1]
                if b1 < 0x80:
                    record_end = pos + 2 + zigzag[(b1 << 7) + b - 0x80]
                    pos += 3
                else:
                    n, pos = varint(buf, pos)
                    record_end = pos + n
                    pos += 1
            # timestampDelta (three bytes cover a batch that spans up to 17 minutes)
            b = buf[pos]
            if b < 0x80:
                td = zigzag[b]
                pos += 1
            else:
                b1 = buf[pos + 1]
                if b1 < 0x80:
                    td = zigzag[(b1 << 7) + b - 0x80]
                    pos += 2
                else:
                    b2 = buf[pos + 2]
                    if b2 < 0x80:
                        z = (b2 << 14) + ((b1 - 0x80) << 7) + b - 0x80
                        td = (z >> 1) ^ -(z & 1)
                        pos += 3
                    else:
                        td, pos = varint(buf, pos)
            # offsetDelta (three bytes cover batches of up to a million records)
            b = buf[pos]
            if b < 0x80:
                od = zigzag[b]
                pos += 1
            else:
                b1 = buf[pos + 1]
                if b1 < 0x80:
                    od = zigzag[(b1 << 7) + b - 0x80]
                    pos += 2
                else:
                    b2 = buf[pos + 2]
                    if b2 < 0x80:
                        z = (b2 << 14) + ((b1 - 0x80) << 7) + b - 0x80
                        od = (z >> 1) ^ -(z & 1)
                        pos += 3
                    else:
                        od, pos = varint(buf, pos)
            # key (null, the varint 1, is the common case)
            b = buf[pos]
            if b == 1:
                key = None
                pos += 1
            else:
                if b < 0x80:
                    n = zigzag[b]
                    pos += 1
                else:
                    n, pos = varint(buf, pos)
                if n < 0:
                    raise CorruptBatchError(f"record key length {n} in batch at {base_offset}")
                key = buf[pos : pos + n]
                pos += n
            # value
            b = buf[pos]
            if b < 0x80:
                n = zigzag[b]
                pos += 1
            else:
                b1 = buf[pos + 1]
                if b1 < 0x80:
                    n = zigzag[(b1 << 7) + b - 0x80]
                    pos += 2
                else:
                    n, pos = varint(buf, pos)
            if n >= 0:
                value = buf[pos : pos + n]
                pos += n
            elif n == -1:
                value = None
            else:
                raise CorruptBatchError(f"record value length {n} in batch at {base_offset}")
            # headers
            if buf[pos] == 0:
                headers: tuple[Header, ...] = ()
                pos += 1
            else:
                headers, pos = _decode_headers(buf, pos)
            if pos != record_end:
                raise CorruptBatchError(
                    f"record at offset {base_offset + od} says it is "
                    f"{record_end - pos} bytes longer than its fields"
                )
            # Filling the slots of a bare instance is a third cheaper than calling the class.
            r = new(record)
            r.topic = topic
            r.partition = partition
            r.offset = base_offset + od
            r.timestamp = base_ts + td if td else base_ts  # one int for all: no new one
            r.key = key
            r.value = value
            r.headers = headers
            append(r)
    except IndexError:
        raise CorruptBatchError(f"batch at offset {base_offset} ends inside a record") from None
    finally:
        if collecting:
            gc.enable()
    if pos != end:
        raise CorruptBatchError(
            f"batch at offset {base_offset} holds {end - pos} bytes after its {count} records"
        )
    if attributes & _TIMESTAMP_TYPE_BIT:
        # Log append time: the broker's time, stored once as the batch's max timestamp.
        for r in out:
            r.timestamp = max_ts
    if min_offset > base_offset:
        return [r for r in out if r.offset >= min_offset]
    return out


def decode_columns(
    batch: bytes | bytearray | memoryview,
    topic: str = "",
    partition: int = 0,
    *,
    min_offset: int = 0,
) -> RecordBlock:
    """:func:`decode_records` laid out field by field: the records of one batch as a
    :class:`RecordBlock`, with no object per record but its value and key.

    The same checks, the same records left out (control batches, offsets below
    ``min_offset``). The loop is :func:`decode_records`' own, kept apart because a function call
    per record would cost more than what it shares.
    """
    section = _records_section(batch)
    if section is None:
        return RecordBlock(topic, partition, range(0), [], [], [], [])
    buf, pos, end, count, base_offset, base_ts, max_ts, attributes = section
    zigzag = _ZIGZAG
    varint = _decode_varint
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    deltas: list[int] = []  # offset deltas
    stamps: list[int] = []  # timestamp deltas
    headed: list[tuple[int, tuple[Header, ...]]] = []
    add_key, add_value, add_delta, add_stamp = (
        keys.append,
        values.append,
        deltas.append,
        stamps.append,
    )
    try:
        for i in range(count):
            # length, then the attributes byte (unused in v2)
            b = buf[pos]
            if b < 0x80:
                record_end = pos + 1 + zigzag[b]
                pos += 2
            else:
                b1 = buf[pos + 1]
                if b1 < 0x80:
                    record_end = pos + 2 + zigzag[(b1 << 7) + b - 0x80]
                    pos += 3
                else:
                    n, pos = varint(buf, pos)
                    record_end = pos + n
                    pos += 1
            # timestampDelta (three bytes cover a batch that spans up to 17 minutes)
            b = buf[pos]
            if b < 0x80:
                td = zigzag[b]
                pos += 1
            else:
                b1 = buf[pos + 1]
                if b1 < 0x80:
                    td = zigzag[(b1 << 7) + b - 0x80]
                    pos += 2
                else:
                    b2 = buf[pos + 2]
                    if b2 < 0x80:
                        z = (b2 << 14) + ((b1 - 0x80) << 7) + b - 0x80
                        td = (z >> 1) ^ -(z & 1)
                        pos += 3
                    else:
                        td, pos = varint(buf, pos)
            # offsetDelta (three bytes cover batches of up to a million records)
            b = buf[pos]
            if b < 0x80:
                od = zigzag[b]
                pos += 1
            else:
                b1 = buf[pos + 1]
                if b1 < 0x80:
                    od = zigzag[(b1 << 7) + b - 0x80]
                    pos += 2
                else:
                    b2 = buf[pos + 2]
                    if b2 < 0x80:
                        z = (b2 << 14) + ((b1 - 0x80) << 7) + b - 0x80
                        od = (z >> 1) ^ -(z & 1)
                        pos += 3
                    else:
                        od, pos = varint(buf, pos)
            # key (null, the varint 1, is the common case)
            b = buf[pos]
            if b == 1:
                key = None
                pos += 1
            else:
                if b < 0x80:
                    n = zigzag[b]
                    pos += 1
                else:
                    n, pos = varint(buf, pos)
                if n < 0:
                    raise CorruptBatchError(f"record key length {n} in batch at {base_offset}")
                key = buf[pos : pos + n]
                pos += n
            # value
            b = buf[pos]
            if b < 0x80:
                n = zigzag[b]
                pos += 1
            else:
                b1 = buf[pos + 1]
                if b1 < 0x80:
                    n = zigzag[(b1 << 7) + b - 0x80]
                    pos += 2
                else:
                    n, pos = varint(buf, pos)
            if n >= 0:
                value = buf[pos : pos + n]
                pos += n
            elif n == -1:
                value = None
            else:
                raise CorruptBatchError(f"record value length {n} in batch at {base_offset}")
            # headers
            if buf[pos] == 0:
                pos += 1
            else:
                found, pos = _decode_headers(buf, pos)
                headed.append((i, found))
            if pos != record_end:
                raise CorruptBatchError(
                    f"record at offset {base_offset + od} says it is "
                    f"{record_end - pos} bytes longer than its fields"
                )
            add_key(key)
            add_value(value)
            add_delta(od)
            add_stamp(td)
    except IndexError:
        raise CorruptBatchError(f"batch at offset {base_offset} ends inside a record") from None
    if pos != end:
        raise CorruptBatchError(
            f"batch at offset {base_offset} holds {end - pos} bytes after its {count} records"
        )
    offsets: Sequence[int]
    if deltas == list(range(count)):
        offsets = range(base_offset, base_offset + count)
    else:
        offsets = [base_offset + od for od in deltas]
    timestamps: list[int]
    if attributes & _TIMESTAMP_TYPE_BIT:  # log append time: the batch's max timestamp
        timestamps = [max_ts] * count
    elif any(stamps):
        timestamps = [base_ts + td if td else base_ts for td in stamps]
    else:
        timestamps = [base_ts] * count
    headers: list[tuple[Header, ...]] = [()] * count
    for i, found in headed:
        headers[i] = found
    block = RecordBlock(topic, partition, offsets, timestamps, keys, values, headers)
    if min_offset > base_offset:
        start = bisect.bisect_left(block.offsets, min_offset)
        return block.slice(start, count)
    return block


def _decode_headers(buf: bytes, pos: int) -> tuple[tuple[Header, ...], int]:
    zigzag = _ZIGZAG
    b = buf[pos]
    if b < 0x80:
        count = zigzag[b]
        pos += 1
    else:
        count, pos = _decode_varint(buf, pos)
    if count < 0:
        raise CorruptBatchError(f"record header count {count} is negative")
    # Kafka allows a null header value; Header's annotation does not say so yet.
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(count):
        b = buf[pos]
        if b < 0x80:
            n = zigzag[b]
            pos += 1
        else:
            n, pos = _decode_varint(buf, pos)
        if n < 0:
            raise CorruptBatchError(f"record header name length {n} is negative")
        name = buf[pos : pos + n].decode("utf-8", "replace")
        pos += n
        b = buf[pos]
        if b < 0x80:
            n = zigzag[b]
            pos += 1
        else:
            n, pos = _decode_varint(buf, pos)
        if n >= 0:
            headers.append((name, buf[pos : pos + n]))
            pos += n
        elif n == -1:
            headers.append((name, None))
        else:
            raise CorruptBatchError(f"record header value length {n} is negative")
    return tuple(headers), pos  # type: ignore[arg-type]
