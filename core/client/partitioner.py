"""Which partition a record goes to, the way Kafka's Java client decides.

A record with a key goes to ``(murmur2(key) & 0x7fffffff) % partitions``
(:func:`partition_for_key`), so keys land where a Java producer, kafka-python or librdkafka
with ``partitioner=murmur2_random`` would put them. :func:`murmur2` is exactly the Java
client's ``Utils.murmur2``: 32-bit signed arithmetic, seed ``0x9747b28c``, the key read as
little-endian 4-byte words.

A record without a key goes to a sticky partition (KIP-480): a :class:`StickyPartitioner` picks
one at random and keeps it until the batch being filled for it is sealed, so keyless records
make few, full batches instead of many small ones.
"""

from __future__ import annotations

import random
import struct

__all__ = ["StickyPartitioner", "murmur2", "partition_for_key"]

# Unpackers of 0..64 little-endian 32-bit words: keys up to 259 bytes find theirs here.
_WORDS = tuple(struct.Struct(f"<{n}I").unpack_from for n in range(65))


def murmur2(key: bytes) -> int:
    """Kafka's murmur2 hash of ``key``, as the signed 32-bit int the Java client returns.

    It runs once per keyed record, so it is written for CPython's speed: the words are unpacked
    by one :mod:`struct` call, the constants are literals and the 32-bit wrap-around is a mask
    applied as late as the arithmetic allows (``(a & m) ^ (b & m) == (a ^ b) & m``).
    """
    length = len(key)
    h = 0x9747B28C ^ length
    n4 = length >> 2
    if n4:
        words = _WORDS[n4](key) if n4 < 65 else struct.unpack_from(f"<{n4}I", key)
        for k in words:
            # Java: k *= m; k ^= k >>> 24; k *= m; h *= m; h ^= k  (m = 0x5bd1e995)
            k = (k * 0x5BD1E995) & 0xFFFFFFFF
            h = ((h * 0x5BD1E995) ^ ((k ^ (k >> 24)) * 0x5BD1E995)) & 0xFFFFFFFF
    tail = length & 3
    if tail:
        i = length - tail
        if tail == 3:
            h ^= key[i + 2] << 16
        if tail > 1:
            h ^= key[i + 1] << 8
        h = ((h ^ key[i]) * 0x5BD1E995) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0x5BD1E995) & 0xFFFFFFFF
    h ^= h >> 15
    return h - 0x100000000 if h & 0x80000000 else h


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition of ``partitions`` (a count, >= 1) that Kafka's clients pick for ``key``."""
    if partitions < 1:
        raise ValueError(f"a topic has at least one partition, not {partitions}")
    return (murmur2(key) & 0x7FFFFFFF) % partitions


class StickyPartitioner:
    """The partition for keyless records of one topic (KIP-480's sticky partitioning).

    The producer keeps one per topic. :attr:`partition` is where keyless records go now; the
    producer reads it for every such record and calls :meth:`next_batch` when the batch it was
    filling for that partition is sealed (full, or its linger time ran out). ``next_batch``
    moves to another partition chosen at random, never the same one twice in a row when there
    are two or more, so keyless load spreads over all partitions batch by batch.

    ``rng`` (a :class:`random.Random`) makes the choices repeatable in tests.
    """

    __slots__ = ("_rng", "partition", "partitions")

    partition: int
    """The partition keyless records go to until the current batch is sealed."""

    partitions: int
    """How many partitions the topic has."""

    def __init__(self, partitions: int, *, rng: random.Random | None = None) -> None:
        if partitions < 1:
            raise ValueError(f"a topic has at least one partition, not {partitions}")
        self._rng = rng if rng is not None else random.Random()
        self.partitions = partitions
        self.partition = self._rng.randrange(partitions)

    def next_batch(self) -> int:
        """Move to a new partition after a batch was sealed; return it."""
        n = self.partitions
        if n > 1:
            # A uniform choice among the n - 1 others: draw from 0..n-2 and skip the current.
            pick = self._rng.randrange(n - 1)
            self.partition = pick + 1 if pick >= self.partition else pick
        return self.partition

    def resize(self, partitions: int) -> None:
        """Follow a change of the topic's partition count (partitions only ever grow in Kafka)."""
        if partitions < 1:
            raise ValueError(f"a topic has at least one partition, not {partitions}")
        self.partitions = partitions
        if self.partition >= partitions:
            self.partition = self._rng.randrange(partitions)

    def __repr__(self) -> str:
        return f"StickyPartitioner(partition={self.partition}, partitions={self.partitions})"
