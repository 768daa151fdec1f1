"""Key partitioning must match Kafka's clients; keyless records stick to a partition per batch."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_python_murmur2

from millstream.core.client import partitioner
from millstream.core.client.partitioner import StickyPartitioner, murmur2, partition_for_key


def _signed(h: int) -> int:
    return h - (1 << 32) if h & 0x80000000 else h


# Apache Kafka, clients/src/test/java/org/apache/kafka/common/utils/UtilsTest.java (testMurmur2).
KAFKA_UTILS_TEST = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}

# librdkafka, src/rdmurmur2.c (unittest_murmur2: java_murmur2_results, as int32).
LIBRDKAFKA_UNITTEST = {
    b"kafka": 0xD067CF64,
    b"giberish123456789": 0x8F552B0C,
    b"1234": 0x9FC97B14,
    b"234": 0xE7C009CA,
    b"34": 0x873930DA,
    b"4": 0x5A4B5CA1,
    b"PreAmbleWillBeRemoved,ThePrePartThatIs": 0x78424F1C,
    b"reAmbleWillBeRemoved,ThePrePartThatIs": 0x4A62B377,
    b"eAmbleWillBeRemoved,ThePrePartThatIs": 0xE0E4E09E,
    b"AmbleWillBeRemoved,ThePrePartThatIs": 0x62B8B43F,
    b"": 0x106E08D9,
}

# librdkafka, tests/0048-partitioner.c: the positive murmur2 of each key (computed there with the
# Java implementation); the murmur2 partitioner must put the key on that value % partition count.
LIBRDKAFKA_PARTITIONER_TEST = {
    b"": 0x106E08D9,
    b"23456": 0x058D780F,
    b"this is another string with more length to it perhaps": 0x4F7703DA,
    b"hejsan": 0x5EC19395,
}


@pytest.mark.parametrize(("key", "expected"), KAFKA_UTILS_TEST.items(), ids=repr)
def test_murmur2_matches_kafkas_own_test_vectors(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


@pytest.mark.parametrize(("key", "expected"), LIBRDKAFKA_UNITTEST.items(), ids=repr)
def test_murmur2_matches_librdkafkas_java_results(key: bytes, expected: int) -> None:
    assert murmur2(key) == _signed(expected)


@pytest.mark.parametrize("partitions", [7, 17])
@pytest.mark.parametrize(("key", "positive"), LIBRDKAFKA_PARTITIONER_TEST.items(), ids=repr)
def test_keys_land_where_librdkafkas_murmur2_partitioner_puts_them(
    key: bytes, positive: int, partitions: int
) -> None:
    assert partition_for_key(key, partitions) == positive % partitions


def test_sign_bit_is_cleared_not_negated() -> None:
    # Java's Utils.toPositive masks the sign bit; abs() would put negative hashes elsewhere.
    key = b"foobar"
    assert murmur2(key) < 0
    assert partition_for_key(key, 1000) == (murmur2(key) & 0x7FFFFFFF) % 1000
    assert partition_for_key(key, 1000) != abs(murmur2(key)) % 1000


@settings(max_examples=500)
@given(key=st.binary(max_size=600))
def test_murmur2_agrees_with_kafka_python(key: bytes) -> None:
    assert murmur2(key) == _signed(kafka_python_murmur2(key))


@settings(max_examples=300)
@given(key=st.binary(max_size=64), partitions=st.integers(1, 10_000))
def test_partition_for_key_agrees_with_kafka_pythons_default_partitioner(
    key: bytes, partitions: int
) -> None:
    expected = (kafka_python_murmur2(key) & 0x7FFFFFFF) % partitions
    assert partition_for_key(key, partitions) == expected
    assert 0 <= partition_for_key(key, partitions) < partitions


def test_murmur2_reads_any_bytes_like_key() -> None:
    key = b"customer-1234567"
    assert murmur2(bytearray(key)) == murmur2(memoryview(key)) == murmur2(key)


@pytest.mark.parametrize("partitions", [0, -3])
def test_a_partition_count_below_one_is_refused(partitions: int) -> None:
    with pytest.raises(ValueError, match="at least one partition"):
        partition_for_key(b"k", partitions)
    with pytest.raises(ValueError, match="at least one partition"):
        StickyPartitioner(partitions)


# --- sticky partitioning of keyless records ----------------------------------------------------


def test_the_sticky_partition_holds_until_a_batch_is_sealed() -> None:
    sticky = StickyPartitioner(8, rng=random.Random(1))
    first = sticky.partition
    assert 0 <= first < 8
    assert {sticky.partition for _ in range(100)} == {first}
    assert sticky.next_batch() == sticky.partition != first


@settings(max_examples=100)
@given(partitions=st.integers(2, 50), seed=st.integers(0, 2**32), batches=st.integers(1, 200))
def test_a_sealed_batch_always_moves_keyless_records_elsewhere(
    partitions: int, seed: int, batches: int
) -> None:
    sticky = StickyPartitioner(partitions, rng=random.Random(seed))
    previous = sticky.partition
    for _ in range(batches):
        current = sticky.next_batch()
        assert current != previous
        assert 0 <= current < partitions
        previous = current


def test_keyless_load_spreads_evenly_over_batches() -> None:
    sticky = StickyPartitioner(6, rng=random.Random(7))
    counts = Counter(sticky.next_batch() for _ in range(60_000))
    assert sorted(counts) == [0, 1, 2, 3, 4, 5]
    assert all(9_000 < c < 11_000 for c in counts.values()), counts


def test_a_single_partition_topic_stays_on_partition_zero() -> None:
    sticky = StickyPartitioner(1)
    assert sticky.partition == 0
    assert [sticky.next_batch() for _ in range(5)] == [0] * 5


def test_the_first_partition_is_random_across_producers() -> None:
    firsts = {StickyPartitioner(10, rng=random.Random(seed)).partition for seed in range(200)}
    assert firsts == set(range(10))


def test_resize_follows_a_topic_that_gained_partitions() -> None:
    sticky = StickyPartitioner(2, rng=random.Random(3))
    before = sticky.partition
    sticky.resize(5)
    assert sticky.partition == before  # the open batch stays where it is
    assert {sticky.next_batch() for _ in range(200)} == set(range(5))


def test_resize_below_the_current_partition_moves_it() -> None:
    sticky = StickyPartitioner(50, rng=random.Random(4))
    while sticky.partition < 10:
        sticky.next_batch()
    sticky.resize(3)
    assert 0 <= sticky.partition < 3
    with pytest.raises(ValueError):
        sticky.resize(0)


def test_public_names_are_listed_and_sorted() -> None:
    public = {
        name
        for name, obj in vars(partitioner).items()
        if not name.startswith("_") and getattr(obj, "__module__", None) == partitioner.__name__
    }
    assert partitioner.__all__ == sorted(partitioner.__all__)
    assert set(partitioner.__all__) == public
