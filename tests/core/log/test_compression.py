"""The batch compression codecs: round trips, the shapes other clients write, corrupt input."""

from __future__ import annotations

import gzip
import random
import struct

import lz4.frame
import pytest
import snappy
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka import codec as kafka_codec

from millstream.core.errors import ConfigError, CorruptBatchError
from millstream.core.log.compression import Compression, compress, decompress

CODECS = list(Compression)
COMPRESSED = [c for c in Compression if c != Compression.NONE]

_XERIAL_MAGIC = b"\x82SNAPPY\x00"
_LZ4_MAGIC = 0x184D2204


def _payload(seed: int, size: int) -> bytes:
    """Bytes that look like a records section: repetitive enough to compress, not constant."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(1, 12)) for _ in range(64)]
    out = bytearray()
    while len(out) < size:
        out += rng.choice(words)
    return bytes(out[:size])


payloads = st.one_of(
    st.binary(max_size=2048),
    st.builds(_payload, st.integers(0, 2**32 - 1), st.integers(0, 300_000)),
)


@pytest.mark.parametrize("codec", CODECS, ids=lambda c: c.name.lower())
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=payloads)
def test_compress_then_decompress_is_the_identity(codec: Compression, data: bytes) -> None:
    assert decompress(codec, compress(codec, data)) == data


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name.lower())
def test_decompress_accepts_a_memoryview_slice(codec: Compression) -> None:
    data = _payload(1, 50_000)
    framed = b"junk" + compress(codec, data) + b"junk"
    assert decompress(codec, memoryview(framed)[4:-4]) == data


def test_compression_shrinks_repetitive_records() -> None:
    data = _payload(7, 100_000)
    for codec in COMPRESSED:
        assert len(compress(codec, data)) < len(data) // 2, codec


@pytest.mark.parametrize(
    ("name", "codec"),
    [
        ("none", Compression.NONE),
        ("gzip", Compression.GZIP),
        ("Snappy", Compression.SNAPPY),
        (" LZ4 ", Compression.LZ4),
        ("zstd", Compression.ZSTD),
    ],
)
def test_codec_names_resolve(name: str, codec: Compression) -> None:
    assert Compression.from_name(name) is codec


def test_unknown_codec_name_says_what_is_valid() -> None:
    with pytest.raises(ConfigError, match="none, gzip, snappy, lz4, zstd"):
        Compression.from_name("brotli")


def test_codec_numbers_are_kafkas() -> None:
    assert [int(c) for c in (Compression.NONE, Compression.GZIP, Compression.SNAPPY)] == [0, 1, 2]
    assert [int(c) for c in (Compression.LZ4, Compression.ZSTD)] == [3, 4]


# --- snappy: both shapes ---------------------------------------------------------------------


def test_compress_writes_the_xerial_frame_in_32k_blocks() -> None:
    data = _payload(3, 100_000)
    out = compress(Compression.SNAPPY, data)
    magic, version, compat = struct.unpack_from(">8sii", out)
    assert (magic, version, compat) == (_XERIAL_MAGIC, 1, 1)
    pos, blocks = 16, []
    while pos < len(out):
        (size,) = struct.unpack_from(">I", out, pos)
        blocks.append(snappy.decompress(out[pos + 4 : pos + 4 + size]))
        pos += 4 + size
    assert pos == len(out)
    assert [len(b) for b in blocks] == [32768, 32768, 32768, 1696]
    assert b"".join(blocks) == data


@pytest.mark.parametrize("size", [0, 1, 1000, 32768, 100_000])
def test_raw_snappy_as_librdkafka_sends_it_decodes(size: int) -> None:
    data = _payload(size, size)
    assert decompress(Compression.SNAPPY, snappy.compress(data)) == data


@pytest.mark.parametrize("size", [1, 1000, 32768, 100_000])
def test_xerial_snappy_as_the_java_client_sends_it_decodes(size: int) -> None:
    data = _payload(size, size)
    framed = kafka_codec.snappy_encode(data, xerial_compatible=True)
    assert framed.startswith(_XERIAL_MAGIC)
    assert decompress(Compression.SNAPPY, framed) == data


def test_our_snappy_is_read_by_another_xerial_reader() -> None:
    data = _payload(11, 80_000)
    assert kafka_codec.snappy_decode(compress(Compression.SNAPPY, data)) == data


# --- lz4 -------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [10, 60_000, 70_000, 500_000])
def test_lz4_frames_use_independent_blocks_as_kafka_requires(size: int) -> None:
    # Kafka's Java client refuses a frame without the block-independence flag ("Dependent
    # block stream is unsupported"), so every frame we write must carry it.
    out = compress(Compression.LZ4, _payload(size, size))
    (magic,) = struct.unpack_from("<I", out)
    flg, bd = out[4], out[5]
    assert magic == _LZ4_MAGIC
    assert flg >> 6 == 1, "frame version"
    assert flg & 0x20, "block independence flag"
    assert flg & 0x03 == 0, "reserved bits"
    assert 4 <= (bd >> 4) & 7 <= 7 and bd & 0x8F == 0, "block size descriptor"


def test_lz4_written_by_another_kafka_client_decodes() -> None:
    data = _payload(5, 200_000)
    assert decompress(Compression.LZ4, kafka_codec.lz4_encode(data)) == data


def test_lz4_with_linked_blocks_still_decodes() -> None:
    data = _payload(6, 300_000)
    linked = lz4.frame.compress(data, block_linked=True, content_checksum=True)
    assert decompress(Compression.LZ4, linked) == data


# --- gzip and zstd in the shapes other writers use --------------------------------------------


def test_gzip_from_the_gzip_module_decodes() -> None:
    data = _payload(8, 50_000)
    assert decompress(Compression.GZIP, gzip.compress(data, compresslevel=9)) == data


def test_gzip_with_several_members_decodes_every_member() -> None:
    first, second = _payload(9, 5000), _payload(10, 7000)
    assert decompress(Compression.GZIP, gzip.compress(first) + gzip.compress(second)) == (
        first + second
    )


def test_zstd_without_a_content_size_decodes() -> None:
    # Streaming writers (the Java client's ZstdOutputStream among them) leave the size out.
    data = _payload(12, 150_000)
    cobj = zstandard.ZstdCompressor().compressobj()
    streamed = cobj.compress(data) + cobj.flush()
    assert zstandard.get_frame_parameters(streamed).content_size == zstandard.CONTENTSIZE_UNKNOWN
    assert decompress(Compression.ZSTD, streamed) == data


def test_zstd_with_several_frames_decodes_every_frame() -> None:
    first, second = _payload(13, 5000), _payload(14, 9000)
    cctx = zstandard.ZstdCompressor()
    assert decompress(Compression.ZSTD, cctx.compress(first) + cctx.compress(second)) == (
        first + second
    )


# --- corrupt input ---------------------------------------------------------------------------


def _xerial_block_ends(blob: bytes) -> set[int]:
    ends, pos = {16}, 16
    while pos < len(blob):
        pos += 4 + struct.unpack_from(">I", blob, pos)[0]
        ends.add(pos)
    return ends


def _truncations(blob: bytes) -> list[int]:
    cuts = {1, 2, 4, 8, 12, 16, 20, len(blob) // 3, len(blob) // 2, len(blob) - 4, len(blob) - 1}
    if blob.startswith(_XERIAL_MAGIC):
        # The xerial frame has no end marker: a cut between two blocks is a shorter valid frame,
        # which only the records decoder (it knows the record count) can tell from the whole.
        cuts -= _xerial_block_ends(blob)
    return sorted(c for c in cuts if 0 < c < len(blob))


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name.lower())
def test_truncated_payloads_raise_corrupt_batch(codec: Compression) -> None:
    data = _payload(15, 100_000)
    blob = compress(codec, data)
    for cut in _truncations(blob):
        with pytest.raises(CorruptBatchError):
            decompress(codec, blob[:cut])


@pytest.mark.parametrize(
    ("codec", "blob"),
    [
        (Compression.ZSTD, None),
        (Compression.SNAPPY, snappy.compress(_payload(16, 20_000))),
    ],
    ids=["zstd-streamed", "snappy-raw"],
)
def test_truncated_payloads_in_other_shapes_raise_corrupt_batch(
    codec: Compression, blob: bytes | None
) -> None:
    if blob is None:
        cobj = zstandard.ZstdCompressor().compressobj()
        blob = cobj.compress(_payload(17, 20_000)) + cobj.flush()
    for cut in _truncations(blob):
        with pytest.raises(CorruptBatchError):
            decompress(codec, blob[:cut])


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name.lower())
@settings(max_examples=150, deadline=None)
@given(garbage=st.binary(max_size=400), prefix_len=st.integers(0, 64))
def test_garbage_raises_corrupt_batch_and_nothing_else(
    codec: Compression, garbage: bytes, prefix_len: int
) -> None:
    # A real frame's opening followed by garbage gets further into each decoder than pure noise.
    blob = compress(codec, _payload(18, 4000))[:prefix_len] + garbage
    try:
        out = decompress(codec, blob)
    except CorruptBatchError:
        return
    assert isinstance(out, bytes)


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name.lower())
@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), position=st.floats(0, 1, exclude_max=True))
def test_a_flipped_byte_never_escapes_as_another_exception(
    codec: Compression, seed: int, position: float
) -> None:
    blob = bytearray(compress(codec, _payload(seed, 3000)))
    blob[int(position * len(blob))] ^= 0xFF
    try:
        out = decompress(codec, bytes(blob))
    except CorruptBatchError:
        return
    assert isinstance(out, bytes)


@pytest.mark.parametrize("codec", [5, 6, 7])
def test_unknown_codec_numbers_raise_corrupt_batch(codec: int) -> None:
    with pytest.raises(CorruptBatchError, match="unknown compression codec"):
        decompress(codec, b"anything")


def test_empty_xerial_frame_decodes_to_nothing() -> None:
    assert decompress(Compression.SNAPPY, struct.pack(">8sii", _XERIAL_MAGIC, 1, 1)) == b""


@pytest.mark.parametrize("codec", COMPRESSED, ids=lambda c: c.name.lower())
def test_an_empty_payload_is_corrupt(codec: Compression) -> None:
    with pytest.raises(CorruptBatchError):
        decompress(codec, b"")
