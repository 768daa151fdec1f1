"""RecordBatch v2: encode/decode round trips, framing checks, and interop with kafka-python."""

from __future__ import annotations

import random
import struct

import pytest
from crc32c import crc32c
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from millstream.core.errors import CorruptBatchError
from millstream.core.log.batch import (
    BATCH_OVERHEAD,
    HEADER_SIZE,
    decode_columns,
    decode_records,
    iter_batches,
    read_header,
    set_base_offset,
    set_partition_leader_epoch,
    validate_batch,
)
from millstream.core.log.compression import Compression
from millstream.core.log.encoder import RecordColumns, encode_batch, encoded_record_size
from millstream.core.record import Record, StoredRecord

CODECS = list(Compression)
NOW = 1_700_000_000_000
CONTROL_BIT = 0x20


def _blob(seed: int, size: int, compressible: bool) -> bytes:
    rng = random.Random(seed)
    if not compressible:
        return rng.randbytes(size)
    words = [rng.randbytes(rng.randint(1, 9)) for _ in range(32)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words)
    return bytes(out[:size])


large_bytes = st.builds(_blob, st.integers(0, 2**32 - 1), st.integers(300, 70_000), st.booleans())
maybe_bytes = st.one_of(st.none(), st.binary(max_size=200), large_bytes)
headers = st.lists(
    st.tuples(st.text(max_size=12), st.one_of(st.none(), st.binary(max_size=40))), max_size=4
).map(tuple)
timestamps = st.one_of(st.just(0), st.integers(1, 2**50))
records = st.builds(
    Record, key=maybe_bytes, value=maybe_bytes, headers=headers, timestamp=timestamps
)
record_lists = st.lists(records, min_size=1, max_size=12)
stamped_record_lists = st.lists(
    st.builds(
        Record, key=maybe_bytes, value=maybe_bytes, headers=headers, timestamp=st.integers(1, 2**50)
    ),
    min_size=1,
    max_size=12,
)
small_records = st.builds(
    Record,
    key=st.one_of(st.none(), st.binary(max_size=20)),
    value=st.one_of(st.none(), st.binary(max_size=60)),
    headers=headers,
    timestamp=st.integers(1, 2**45),
)


def _expected(
    recs: list[Record], base_offset: int = 0, topic: str = "t", partition: int = 0
) -> list[StoredRecord]:
    return [
        StoredRecord(
            topic, partition, base_offset + i, r.timestamp or NOW, r.key, r.value, r.headers
        )
        for i, r in enumerate(recs)
    ]


def _reseal(buf: bytearray) -> bytearray:
    """Recompute the CRC after a deliberate edit under it."""
    struct.pack_into(">I", buf, 17, crc32c(bytes(buf[21:])))
    return buf


# --- round trips -----------------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name.lower())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=record_lists, base_offset=st.integers(0, 2**62))
def test_encode_validate_decode_is_the_identity(
    codec: Compression, recs: list[Record], base_offset: int
) -> None:
    buf = encode_batch(recs, base_offset=base_offset, compression=codec, now_ms=NOW)
    header = validate_batch(buf)
    assert header.size == len(buf)
    assert header.compression == codec
    assert header.record_count == len(recs)
    assert header.base_offset == base_offset
    assert header.last_offset == base_offset + len(recs) - 1
    stamps = [r.timestamp or NOW for r in recs]
    assert (header.base_timestamp, header.max_timestamp) == (min(stamps), max(stamps))
    assert decode_records(bytes(buf), "t", 0) == _expected(recs, base_offset)


@pytest.mark.parametrize("codec", [Compression.NONE, Compression.LZ4], ids=lambda c: c.name.lower())
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    recs=record_lists,
    base_offset=st.integers(0, 2**40),
    skip=st.integers(0, 13),
    append_time=st.booleans(),
)
def test_decoding_field_by_field_gives_the_same_records(
    codec: Compression, recs: list[Record], base_offset: int, skip: int, append_time: bool
) -> None:
    buf = bytes(
        encode_batch(
            recs,
            base_offset=base_offset,
            compression=codec,
            now_ms=NOW,
            log_append_time=append_time,
        )
    )
    start = base_offset + skip
    block = decode_columns(buf, "t", 4, min_offset=start)
    assert block.records() == decode_records(buf, "t", 4, min_offset=start)
    assert len(block) == max(0, len(recs) - skip)
    assert list(block.offsets) == [r.offset for r in block.records()]


def test_decoding_field_by_field_shares_what_records_have_in_common() -> None:
    buf = encode_batch([Record(None, b"%d" % i) for i in range(300)], base_offset=7, now_ms=NOW)
    block = decode_columns(buf, "t", 0)
    assert block.offsets == range(7, 307)
    assert block.values == [b"%d" % i for i in range(300)]
    assert set(map(id, block.timestamps)) == {id(block.timestamps[0])}
    assert block.timestamps[0] == NOW and block.keys == [None] * 300
    assert block.headers == [()] * 300
    assert decode_columns(buf, "t", 0, min_offset=300).offsets == range(300, 307)


@settings(max_examples=40, deadline=None)
@given(recs=st.lists(small_records, min_size=1, max_size=20), topic=st.text(max_size=10))
def test_decode_accepts_bytes_bytearray_and_memoryview(recs: list[Record], topic: str) -> None:
    buf = encode_batch(recs, now_ms=NOW)
    want = _expected(recs, topic=topic, partition=3)
    assert decode_records(bytes(buf), topic, 3) == want
    assert decode_records(buf, topic, 3) == want
    assert decode_records(memoryview(buf), topic, 3) == want


def test_a_thousand_records_of_every_codec_round_trip() -> None:
    recs = [
        Record(
            key=b"device-%d" % (i % 17),
            value=_blob(i, 100, True),
            headers=(("source", b"sensor"),) if i % 3 == 0 else (),
            timestamp=NOW + i * 7,
        )
        for i in range(1000)
    ]
    for codec in CODECS:
        buf = encode_batch(recs, base_offset=5000, compression=codec)
        assert decode_records(buf, "readings", 2) == _expected(recs, 5000, "readings", 2)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name.lower())
@pytest.mark.parametrize("count", [1, 64, 65, 8193])
def test_values_laid_out_unchecked_make_the_batch_records_make(
    codec: Compression, count: int
) -> None:
    rng = random.Random(count)
    values = [rng.randbytes(rng.choice([0, 1, 63, 64, 100, 9000])) for _ in range(count)]
    rows = RecordColumns.of_values(values)
    raw = rows.encode(0, rows.count, codec, NOW)
    assert raw == encode_batch([Record(None, v) for v in values], compression=codec, now_ms=NOW)
    assert [r.value for r in decode_records(bytes(raw))] == values


def test_timestamp_zero_means_now() -> None:
    buf = encode_batch([Record(b"k", b"v"), Record(b"k", b"w", timestamp=NOW - 5)], now_ms=NOW)
    assert [r.timestamp for r in decode_records(buf)] == [NOW, NOW - 5]


def test_log_append_time_gives_every_record_the_batch_max_timestamp() -> None:
    recs = [Record(b"k", b"v", timestamp=NOW + d) for d in (30, 10, 20)]
    buf = encode_batch(recs, log_append_time=True)
    header = validate_batch(buf)
    assert header.log_append_time
    assert [r.timestamp for r in decode_records(buf)] == [NOW + 30] * 3


def test_producer_fields_are_kept() -> None:
    buf = encode_batch(
        [Record(b"k", b"v", timestamp=NOW)] * 3,
        producer_id=42,
        producer_epoch=3,
        base_sequence=17,
        partition_leader_epoch=9,
        transactional=True,
    )
    header = validate_batch(buf)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (42, 3, 17)
    assert header.partition_leader_epoch == 9
    assert header.is_transactional
    assert not header.is_control
    assert read_header(buf) == header


def test_an_empty_batch_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        encode_batch([])


@settings(max_examples=100, deadline=None)
@given(recs=st.lists(small_records, min_size=1, max_size=30))
def test_encoded_record_size_is_an_upper_bound(recs: list[Record]) -> None:
    # Producers size their batches with it; an underestimate would overflow max.message.bytes.
    bound = HEADER_SIZE + sum(encoded_record_size(r.key, r.value, r.headers) for r in recs)
    assert len(encode_batch(recs, now_ms=NOW)) <= bound


# --- offsets -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    recs=st.lists(small_records, min_size=1, max_size=10),
    codec=st.sampled_from(CODECS),
    new_base=st.integers(0, 2**63 - 1),
    epoch=st.integers(-(2**31), 2**31 - 1),
)
def test_rewriting_base_offset_and_epoch_keeps_the_crc_valid(
    recs: list[Record], codec: Compression, new_base: int, epoch: int
) -> None:
    buf = encode_batch(recs, compression=codec, now_ms=NOW)
    crc_before = read_header(buf).crc
    set_base_offset(buf, new_base)
    set_partition_leader_epoch(buf, epoch)
    header = validate_batch(buf)
    assert header.crc == crc_before
    assert (header.base_offset, header.partition_leader_epoch) == (new_base, epoch)
    assert [r.offset for r in decode_records(buf)] == [new_base + i for i in range(len(recs))]


def test_base_offset_is_rewritten_in_place_inside_a_larger_buffer() -> None:
    first = encode_batch([Record(b"a", b"1", timestamp=NOW)])
    second = encode_batch([Record(b"b", b"2", timestamp=NOW)] * 2)
    log = first + second
    set_base_offset(log, 1, pos=len(first))
    set_partition_leader_epoch(memoryview(log), 4, pos=len(first))
    (_, h1), (pos2, h2) = iter_batches(log)
    assert (h1.base_offset, h2.base_offset, h2.partition_leader_epoch) == (0, 1, 4)
    assert decode_records(log[pos2:])[1].offset == 2


@settings(max_examples=60, deadline=None)
@given(
    recs=st.lists(small_records, min_size=1, max_size=15),
    codec=st.sampled_from(CODECS),
    base=st.integers(0, 10**12),
    skip=st.integers(-3, 20),
)
def test_min_offset_drops_the_records_before_it(
    recs: list[Record], codec: Compression, base: int, skip: int
) -> None:
    buf = encode_batch(recs, base_offset=base, compression=codec, now_ms=NOW)
    got = decode_records(buf, "t", 0, min_offset=base + skip)
    assert got == [r for r in _expected(recs, base) if r.offset >= base + skip]


# --- framing: corruption and truncation ------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name.lower())
@settings(max_examples=8, deadline=None)
@given(recs=st.lists(small_records, min_size=1, max_size=4), mask=st.integers(1, 255))
def test_every_byte_flip_under_the_crc_is_detected(
    codec: Compression, recs: list[Record], mask: int
) -> None:
    buf = encode_batch(recs, compression=codec, now_ms=NOW)
    for pos in range(21, len(buf)):
        bad = bytearray(buf)
        bad[pos] ^= mask
        with pytest.raises(CorruptBatchError, match="CRC mismatch"):
            validate_batch(bad)


def test_flips_in_length_magic_or_crc_are_detected_too() -> None:
    buf = encode_batch([Record(b"key", b"value" * 20, timestamp=NOW)] * 5)
    log = buf + encode_batch([Record(b"next", b"batch", timestamp=NOW)])
    for pos in range(8, 21):
        if 12 <= pos < 16:  # partitionLeaderEpoch: rewritten by the log, not checked
            continue
        for mask in (0x01, 0x80, 0xFF):
            bad = bytearray(log)
            bad[pos] ^= mask
            with pytest.raises(CorruptBatchError):
                validate_batch(bad)


def test_wrong_magic_is_named() -> None:
    buf = encode_batch([Record(b"k", b"v", timestamp=NOW)])
    buf[16] = 1
    with pytest.raises(CorruptBatchError, match="magic is 1"):
        validate_batch(buf)


@settings(max_examples=100, deadline=None)
@given(
    groups=st.lists(st.lists(small_records, min_size=1, max_size=5), min_size=1, max_size=5),
    codec=st.sampled_from(CODECS),
    cut=st.floats(0, 1),
)
def test_truncation_stops_iteration_at_the_last_whole_batch(
    groups: list[list[Record]], codec: Compression, cut: float
) -> None:
    log, ends, offset = bytearray(), [], 0
    for recs in groups:
        batch = encode_batch(recs, base_offset=offset, compression=codec, now_ms=NOW)
        offset += len(recs)
        log += batch
        ends.append(len(log))
    n = int(cut * len(log))
    truncated = bytes(log[:n])
    whole = [end for end in ends if end <= n]
    found = list(iter_batches(truncated))
    assert [pos + h.size for pos, h in found] == whole
    got = [r for pos, h in found for r in decode_records(truncated[pos : pos + h.size], "t")]
    assert got == _expected([r for recs in groups for r in recs])[: len(got)]
    assert len(got) == sum(len(recs) for recs, end in zip(groups, ends, strict=True) if end <= n)


@settings(max_examples=60, deadline=None)
@given(recs=st.lists(small_records, min_size=1, max_size=8), codec=st.sampled_from(CODECS))
def test_a_truncated_batch_never_validates(recs: list[Record], codec: Compression) -> None:
    buf = bytes(encode_batch(recs, compression=codec, now_ms=NOW))
    for n in range(len(buf)):
        with pytest.raises(CorruptBatchError, match="truncated"):
            validate_batch(buf[:n])


def test_validate_reads_nothing_past_end() -> None:
    buf = encode_batch([Record(b"k", b"v", timestamp=NOW)])
    validate_batch(buf + b"trailing bytes of the next batch")
    with pytest.raises(CorruptBatchError, match="truncated"):
        validate_batch(buf, end=len(buf) - 1)


def test_iter_batches_stops_at_a_corrupt_batch_and_everything_after() -> None:
    batches = [
        encode_batch([Record(b"k", b"%d" % i, timestamp=NOW)], base_offset=i) for i in range(4)
    ]
    log = bytearray(b"".join(batches))
    log[len(batches[0]) + len(batches[1]) + 30] ^= 0x10  # inside the third batch
    assert [h.base_offset for _, h in iter_batches(log)] == [0, 1]


def test_decoding_bytes_that_are_no_batch_raises_corrupt_batch() -> None:
    buf = encode_batch([Record(b"k", b"v", timestamp=NOW)])
    with pytest.raises(CorruptBatchError, match="truncated"):
        decode_records(buf[: HEADER_SIZE - 1])
    with pytest.raises(CorruptBatchError, match="truncated"):
        decode_records(buf[:-1])
    buf[16] = 1
    with pytest.raises(CorruptBatchError, match="magic is 1"):
        decode_records(buf)


def test_records_running_past_the_batch_raise_corrupt_batch() -> None:
    # A CRC-valid batch that claims more records than it holds (a broken producer).
    buf = encode_batch([Record(b"k", b"v", timestamp=NOW)] * 2)
    struct.pack_into(">i", buf, 57, 3)
    validate_batch(_reseal(buf))
    with pytest.raises(CorruptBatchError):
        decode_records(buf)


def test_bytes_left_after_the_last_record_raise_corrupt_batch() -> None:
    buf = encode_batch([Record(b"k", b"v", timestamp=NOW)] * 3)
    struct.pack_into(">i", buf, 57, 2)
    validate_batch(_reseal(buf))
    with pytest.raises(CorruptBatchError):
        decode_records(buf)


def test_a_record_whose_length_disagrees_with_its_fields_is_corrupt() -> None:
    buf = encode_batch([Record(b"k", b"v", timestamp=NOW)])
    assert buf[HEADER_SIZE] == 2 * 8  # zig-zag varint of the record's 8 bytes
    buf[HEADER_SIZE] = 2 * 7
    with pytest.raises(CorruptBatchError):
        decode_records(_reseal(buf))


def test_a_negative_key_length_other_than_null_is_corrupt() -> None:
    buf = encode_batch([Record(b"kk", b"v", timestamp=NOW)])
    key_len_at = HEADER_SIZE + 4  # length, attributes, timestampDelta, offsetDelta
    assert buf[key_len_at] == 2 * 2
    buf[key_len_at] = 3  # zig-zag -2
    with pytest.raises(CorruptBatchError):
        decode_records(_reseal(buf))


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name.lower())
@settings(max_examples=150, deadline=None)
@given(section=st.binary(max_size=300), count=st.integers(0, 40), seed=st.integers(0, 2**16))
def test_garbage_records_with_a_valid_crc_raise_only_corrupt_batch(
    codec: Compression, section: bytes, count: int, seed: int
) -> None:
    # Start from a real batch so the garbage sits behind a plausible header and prefix.
    recs = [Record(b"k%d" % i, b"v" * i, timestamp=NOW + i) for i in range(1 + seed % 5)]
    real = encode_batch(recs, compression=codec)
    keep = HEADER_SIZE + seed % max(1, len(real) - HEADER_SIZE)
    buf = bytearray(real[:keep]) + section
    struct.pack_into(">i", buf, 8, len(buf) - BATCH_OVERHEAD)
    struct.pack_into(">i", buf, 57, count)
    validate_batch(_reseal(buf))
    try:
        got = decode_records(buf, min_offset=-(2**63))
    except CorruptBatchError:
        with pytest.raises(CorruptBatchError):
            decode_columns(buf, min_offset=-(2**63))
        return
    assert len(got) == count
    assert decode_columns(buf, min_offset=-(2**63)).records() == got


# --- control batches -------------------------------------------------------------------------


def _control_batch(base_offset: int, commit: bool) -> bytearray:
    """A transaction marker as a broker writes it: key (version, type), value (version, epoch)."""
    key = struct.pack(">hh", 0, 1 if commit else 0)
    value = struct.pack(">hi", 0, 5)
    buf = encode_batch(
        [Record(key, value, timestamp=NOW)],
        base_offset=base_offset,
        producer_id=7,
        producer_epoch=0,
        transactional=True,
    )
    (attributes,) = struct.unpack_from(">h", buf, 21)
    struct.pack_into(">h", buf, 21, attributes | CONTROL_BIT)
    return _reseal(buf)


@pytest.mark.parametrize("commit", [True, False])
def test_control_batches_are_valid_but_yield_no_records(commit: bool) -> None:
    data = encode_batch([Record(b"k", b"v", timestamp=NOW)] * 2, producer_id=7, transactional=True)
    log = data + _control_batch(2, commit)
    (_, first), (pos, marker) = iter_batches(log)
    assert marker.is_control and marker.is_transactional and not first.is_control
    assert decode_records(log[pos:]) == []
    assert [r.offset for r in decode_records(log[:pos])] == [0, 1]
    # An independent reader agrees that what we built is a control batch.
    theirs = DefaultRecordBatch(bytes(log[pos:]))
    assert theirs.validate_crc() and theirs.is_control_batch
    assert next(iter(theirs)).commit is commit


# --- interop with kafka-python ---------------------------------------------------------------


def _kafka_python_records(buf: bytes | bytearray) -> tuple[DefaultRecordBatch, list[StoredRecord]]:
    batch = DefaultRecordBatch(bytes(buf))
    assert batch.validate_crc()
    got = [
        StoredRecord("t", 0, r.offset, r.timestamp, r.key, r.value, tuple(r.headers)) for r in batch
    ]
    return batch, got


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name.lower())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=record_lists, base_offset=st.integers(0, 2**40))
def test_kafka_python_reads_our_batches(
    codec: Compression, recs: list[Record], base_offset: int
) -> None:
    buf = encode_batch(recs, base_offset=base_offset, compression=codec, now_ms=NOW)
    batch, got = _kafka_python_records(buf)
    assert batch.compression_type == codec
    assert batch.base_offset == base_offset
    assert got == _expected(recs, base_offset)


def test_kafka_python_reads_log_append_time_as_we_do() -> None:
    recs = [Record(b"k", b"v", timestamp=NOW + d) for d in (5, 1, 3)]
    buf = encode_batch(recs, log_append_time=True)
    batch, got = _kafka_python_records(buf)
    assert batch.timestamp_type == 1
    assert got == decode_records(buf, "t")


def _kafka_python_batch(recs: list[Record], codec: Compression) -> bytearray:
    builder = DefaultRecordBatchBuilder(
        magic=2,
        compression_type=int(codec),
        is_transactional=False,
        producer_id=-1,
        producer_epoch=-1,
        base_sequence=-1,
        batch_size=1 << 30,
    )
    for i, r in enumerate(recs):
        builder.append(i, timestamp=r.timestamp, key=r.key, value=r.value, headers=list(r.headers))
    return builder.build()


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name.lower())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=stamped_record_lists, base=st.integers(0, 2**40))
def test_we_read_kafka_python_batches(codec: Compression, recs: list[Record], base: int) -> None:
    # kafka-python sends a batch uncompressed when compressing would not make it smaller: one
    # repetitive record makes sure it compresses.
    recs = [*recs, Record(b"padding", b"abcd" * 1000, (), NOW)]
    buf = _kafka_python_batch(recs, codec)
    assert read_header(buf).compression == codec
    set_base_offset(buf, base)
    header = validate_batch(buf)
    assert header.record_count == len(recs)
    assert decode_records(buf, "t", 0) == _expected(recs, base)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name.lower())
def test_we_read_a_large_compressed_kafka_python_batch(codec: Compression) -> None:
    recs = [
        Record(b"user-%d" % (i % 50), _blob(i, 200, True), (("trace", b"%d" % i),), NOW + i)
        for i in range(2000)
    ]
    buf = _kafka_python_batch(recs, codec)
    assert validate_batch(buf).compression == codec
    assert decode_records(buf, "t", 0) == _expected(recs)
