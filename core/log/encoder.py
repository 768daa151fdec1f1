"""Encoding records into RecordBatch v2 batches, column by column.

:class:`RecordColumns` checks a sequence of records once and lays their fields out as columns
(values, lengths, keys, timestamps, encoded headers). Every varint of a batch is then produced by
a C-level ``map`` over a column, with the varints taken from small caches, and the columns are
interleaved into the batch with one ``join``: two to three times cheaper per record than a loop
that encodes one record after another. :meth:`RecordColumns.cut` splits the records into runs
that fit a batch size, and :meth:`RecordColumns.encode` makes one run a batch.

:func:`encode_batch` is the one-call form for a list of records that make one batch.
"""

from __future__ import annotations

import struct
import time
from collections.abc import Callable, Sequence
from itertools import accumulate, repeat
from operator import add, sub
from typing import Any, Generic, TypeVar

from crc32c import crc32c

from ..record import Header, Record
from .batch import _HEADER as _BATCH_HEADER
from .batch import BATCH_OVERHEAD, HEADER_SIZE, MAGIC
from .compression import Compression, compress

__all__ = [
    "RecordColumns",
    "as_bytes",
    "check_headers",
    "encode_batch",
    "encoded_record_size",
]


def encode_batch(
    records: Sequence[Record],
    *,
    base_offset: int = 0,
    compression: Compression = Compression.NONE,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    partition_leader_epoch: int = 0,
    log_append_time: bool = False,
    transactional: bool = False,
    now_ms: int | None = None,
) -> bytearray:
    """Encode ``records`` as one RecordBatch v2, returned as a bytearray ready to append.

    A record timestamp of 0 means "now" (``now_ms``, default the wall clock). ``records`` must not
    be empty. Fields of the wrong type raise TypeError naming the field.
    """
    if not records:
        raise ValueError("a batch needs at least one record")
    now = int(time.time() * 1000) if now_ms is None else now_ms
    columns = RecordColumns.of(records, now)
    return columns.encode(
        0,
        columns.count,
        compression,
        now,
        base_offset=base_offset,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=base_sequence,
        partition_leader_epoch=partition_leader_epoch,
        log_append_time=log_append_time,
        transactional=transactional,
    )


def encoded_record_size(key: bytes | None, value: bytes | None, headers: Sequence[Header]) -> int:
    """An upper bound of the bytes a record adds to a batch (for batch-size accounting)."""
    size = 21 + (len(key) if key else 0) + (len(value) if value else 0)
    for name, hval in headers:
        size += 10 + len(name) * 3 + (len(hval) if hval else 0)
    return size


def as_bytes(data: object, what: str) -> bytes:
    """``data`` as bytes when it is bytes-like; TypeError naming ``what`` otherwise."""
    if isinstance(data, bytes | bytearray | memoryview):
        return bytes(data)
    raise TypeError(
        f"record {what} must be bytes or None, not {type(data).__name__}; "
        "encode text with .encode() first"
    )


def check_headers(headers: Sequence[Header]) -> tuple[Header, ...]:
    """Headers as a tuple of ``(text, bytes or None)`` pairs; TypeError naming a bad one."""
    out = []
    for header in headers:
        try:
            name, hval = header
        except (TypeError, ValueError):
            raise TypeError(
                f"record header {header!r} is not a (name, value) pair; e.g. ('source', b'x')"
            ) from None
        if not isinstance(name, str):
            raise TypeError(f"record header name {name!r} must be text")
        if hval is not None and hval.__class__ is not bytes:
            hval = as_bytes(hval, f"header {name!r}")
        out.append((name, hval))
    return tuple(out)


_T = TypeVar("_T")

_MEMO_LIMIT = 1 << 16


class _Memo(dict[int, _T], Generic[_T]):
    """``make(n)`` for every int looked up, made once (all forgotten past a limit).

    Looked up with ``map(memo.__getitem__, ints)``, it turns a column of lengths into a column
    of varints at C speed.
    """

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[int], _T]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, n: int) -> _T:
        if len(self) >= _MEMO_LIMIT:
            self.clear()
        made = self[n] = self._make(n)
        return made


def _zigzag(value: int) -> bytes:
    """The zig-zag varint of ``value`` (the encoding of every length and delta in a batch)."""
    z = (value << 1) ^ (value >> 63)
    out = bytearray()
    while z >= 0x80:
        out.append((z & 0x7F) | 0x80)
        z >>= 7
    out.append(z)
    return bytes(out)


_VARINT: _Memo[bytes] = _Memo(_zigzag)
# a key or value field: its length varint and its bytes (-1 is null: the varint alone)
_FIELD_SIZE: _Memo[int] = _Memo(lambda n: len(_zigzag(n)) + max(n, 0))
# a keyless record's null key and its value's length
_NULL_KEY_VALUE_LENGTH: _Memo[bytes] = _Memo(lambda n: b"\x01" + _zigzag(n))
# (extra, now) -> size -> the record's length varint (size + extra) and attributes byte, and
# with ``now`` its zero timestamp delta: see _heads
_HEAD_TABLES: dict[tuple[int, bool, bool], _Memo[bytes]] = {}

_OFFSET_DELTAS = [_zigzag(delta) for delta in range(1 << 14)]

# the offset deltas whose varints have the same width: [start, stop) and the width
_DELTA_WIDTHS = ((0, 64, 1), (64, 8192, 2), (8192, 1 << 20, 3), (1 << 20, 1 << 27, 4))

_CRC = struct.Struct(">I")
_CRC_START = 21
_NO_HEADER = bytes(HEADER_SIZE)
_TIMESTAMP_TYPE_BIT = 0x08
_TRANSACTIONAL_BIT = 0x10


def _offset_deltas(count: int) -> list[bytes]:
    if count > len(_OFFSET_DELTAS):
        _OFFSET_DELTAS.extend(map(_zigzag, range(len(_OFFSET_DELTAS), count)))
    return _OFFSET_DELTAS[:count]


class RecordColumns:
    """Records checked and laid out field by field, ready to be cut into batches.

    ``keys`` and ``values`` hold bytes (b"" for null), ``klens`` and ``vlens`` their lengths
    (-1 for null); ``keys`` is None when no record has a key, ``stamps`` when every timestamp
    is "now" (else "now" is filled in), ``headers`` (each record's encoded header section)
    when no record has any. A record's key, value and headers take ``sizes[i] + fixed`` bytes
    (``fixed`` counts the null key and empty header section that ``sizes`` leaves out).
    """

    __slots__ = (
        "count",
        "fixed",
        "headers",
        "keys",
        "klens",
        "sizes",
        "stamps",
        "values",
        "vlens",
    )

    def __init__(
        self,
        values: list[bytes],
        vlens: list[int],
        keys: list[bytes] | None,
        klens: list[int] | None,
        stamps: list[int] | None,
        headers: list[bytes] | None,
        sizes: list[int],
        fixed: int,
    ) -> None:
        self.count = len(values)
        self.values = values
        self.vlens = vlens
        self.keys = keys
        self.klens = klens
        self.stamps = stamps
        self.headers = headers
        self.sizes = sizes
        self.fixed = fixed

    @classmethod
    def of(cls, records: Sequence[Record], now: int) -> RecordColumns:
        """Check the records' fields (raising as ``send`` does) and lay them out."""
        if not isinstance(records, list | tuple):
            records = list(records)  # read field by field: it must iterate more than once
        try:
            values: list[Any] = [r.value for r in records]
            keys: list[Any] = [r.key for r in records]
            # most calls have neither headers nor timestamps: one pass tells
            special = any([r.headers or r.timestamp for r in records])
            headers: list[Any] | None = [r.headers for r in records] if special else None
            stamps: list[Any] | None = [r.timestamp for r in records] if special else None
        except AttributeError:
            bad = next(r for r in records if not isinstance(r, Record))
            raise TypeError(
                f"send_batch takes Record objects, not {type(bad).__name__}; "
                "e.g. Record(key, value)"
            ) from None
        return cls.of_columns(values, keys, headers, stamps, now)

    @classmethod
    def of_columns(
        cls,
        values: list[Any],
        keys: list[Any],
        headers: list[Any] | None,
        stamps: list[Any] | None,
        now: int,
    ) -> RecordColumns:
        """Records given field by field (``headers`` and ``stamps`` None when no record has
        any), checked as :meth:`of` checks them. The lists are taken over."""
        keys_: list[Any] | None = keys
        if set(map(type, values)) <= {bytes}:
            vlens = list(map(len, values))
        else:
            values, vlens = _column(values, "value")
        sizes = list(map(_FIELD_SIZE.__getitem__, vlens))
        fixed = 0
        klens: list[int] | None = None
        if keys.count(None) == len(keys):
            keys_ = None
            fixed += 1  # each null key's length
        else:
            if set(map(type, keys)) <= {bytes}:
                klens = list(map(len, keys))
            else:
                keys_, klens = _column(keys, "key")
            sizes = list(map(add, sizes, map(_FIELD_SIZE.__getitem__, klens)))
        if headers is not None and any(headers):
            headers = [_encode_headers(check_headers(h)) if h else b"\x00" for h in headers]
            sizes = list(map(add, sizes, map(len, headers)))
        else:
            headers = None
            fixed += 1  # each header count, 0
        if stamps is not None and any(stamps):
            if not (set(map(type, stamps)) <= {int} and min(stamps) >= 0):
                for stamp in stamps:
                    if stamp and (type(stamp) is not int or stamp < 0):
                        raise ValueError(
                            f"record timestamp {stamp!r} is not valid; give milliseconds since "
                            "the epoch (an int >= 0), or 0 for now"
                        )
            stamps = [stamp or now for stamp in stamps]
        else:
            stamps = None
        return cls(values, vlens, keys_, klens, stamps, headers, sizes, fixed)

    @classmethod
    def of_values(cls, values: list[bytes]) -> RecordColumns:
        """Records that are ``bytes`` values alone (no key, headers or timestamp), already
        checked by the caller: the layout of :meth:`of` without its checks."""
        vlens = list(map(len, values))
        sizes = list(map(_FIELD_SIZE.__getitem__, vlens))
        return cls(values, vlens, None, None, None, None, sizes, 2)

    def largest_alone(self) -> int:
        """The bytes of the largest record as a batch of its own (what max.message.bytes
        limits): 61 bytes of header, its length varint, its attributes, timestamp delta and
        offset delta (a byte each when alone), then its key on."""
        length = max(self.sizes, default=0) + self.fixed + 3
        return HEADER_SIZE + len(_VARINT[length]) + length

    def take(self, places: list[int]) -> RecordColumns:
        """The records at ``places``, in that order."""

        def column(items: list[_T]) -> list[_T]:
            return list(map(items.__getitem__, places))

        return RecordColumns(
            column(self.values),
            column(self.vlens),
            None if self.keys is None else column(self.keys),
            None if self.klens is None else column(self.klens),
            None if self.stamps is None else column(self.stamps),
            None if self.headers is None else column(self.headers),
            column(self.sizes),
            self.fixed,
        )

    def cut(self, limit: int) -> list[tuple[int, int]]:
        """Split the records into runs whose batches stay within ``limit`` bytes of records.

        A record is counted by an upper bound of its size: its exact size from its key on,
        its timestamp delta from the earliest timestamp of all (a batch's own is never
        earlier), and 11 bytes for its length varint, attributes and offset delta. A record
        over the limit alone gets a batch of its own.
        """
        if self.stamps is None:
            sums = list(accumulate(self.sizes))
            each = self.fixed + 12  # the zero timestamp delta is one byte
        else:
            first = min(self.stamps)
            deltas = map(len, map(_VARINT.__getitem__, map(sub, self.stamps, repeat(first))))
            sums = list(accumulate(map(add, self.sizes, deltas)))
            each = self.fixed + 11
        # runs[lo:hi] is bounded by sums[hi - 1] - sums[lo - 1] + each * (hi - lo), which
        # grows with hi: find the longest run that fits by bisection
        runs = []
        lo, count, before = 0, self.count, 0
        while lo < count:
            budget = before + limit + each * lo
            good, bad = lo + 1, count + 1  # a run has at least one record
            while bad - good > 1:
                mid = (good + bad) >> 1
                if sums[mid - 1] + each * mid <= budget:
                    good = mid
                else:
                    bad = mid
            runs.append((lo, good))
            before = sums[good - 1]
            lo = good
        return runs

    def encode(
        self,
        lo: int,
        hi: int,
        compression: Compression,
        now: int,
        *,
        base_offset: int = 0,
        producer_id: int = -1,
        producer_epoch: int = -1,
        base_sequence: int = -1,
        partition_leader_epoch: int = 0,
        log_append_time: bool = False,
        transactional: bool = False,
    ) -> bytearray:
        """Records ``lo`` to ``hi`` as one RecordBatch v2 (``now`` is the time of records whose
        timestamp is 0)."""
        count = hi - lo
        sizes = self.sizes[lo:hi]
        # Without headers, each record but the last ends with the header count 0: that byte
        # leads the next record's head instead of being a piece of its own (fewer to join).
        lead = self.headers is None
        columns: list[Any]
        if self.stamps is None:
            base_ts = max_ts = now
            columns = [_heads(sizes, self.fixed, now=True, lead=lead)]
        else:
            stamps = self.stamps[lo:hi]
            base_ts, max_ts = min(stamps), max(stamps)
            deltas = list(map(_VARINT.__getitem__, map(sub, stamps, repeat(base_ts))))
            sizes = list(map(add, sizes, map(len, deltas)))
            columns = [_heads(sizes, self.fixed, now=False, lead=lead), deltas]
        columns.append(_offset_deltas(count))
        vlens = self.vlens[lo:hi]
        if self.keys is None or self.klens is None:
            columns.append(list(map(_NULL_KEY_VALUE_LENGTH.__getitem__, vlens)))
        else:
            columns.append(list(map(_VARINT.__getitem__, self.klens[lo:hi])))
            columns.append(self.keys[lo:hi])
            columns.append(list(map(_VARINT.__getitem__, vlens)))
        columns.append(self.values[lo:hi])
        if not lead:
            columns.append(self.headers[lo:hi])  # type: ignore[index]
        width = len(columns)
        # the records' pieces, after room for the header when they are stored as they are (and
        # before the last record's header count, when the heads carry the others)
        parts = [b""] * (1 + count * width + lead)
        for i, column in enumerate(columns, 1):
            parts[i : 1 + count * width : width] = column
        if lead:
            parts[-1] = b"\x00"
        if compression == Compression.NONE:
            parts[0] = _NO_HEADER
            out = bytearray().join(parts)
            length = len(out) - HEADER_SIZE
        else:
            section = compress(compression, b"".join(parts))
            length = len(section)
            out = bytearray(HEADER_SIZE + length)
            out[HEADER_SIZE:] = section
        attributes = int(compression)
        if log_append_time:
            attributes |= _TIMESTAMP_TYPE_BIT
        if transactional:
            attributes |= _TRANSACTIONAL_BIT
        _BATCH_HEADER.pack_into(
            out,
            0,
            base_offset,
            HEADER_SIZE - BATCH_OVERHEAD + length,
            partition_leader_epoch,
            MAGIC,
            0,  # crc, below
            attributes,
            count - 1,
            base_ts,
            max_ts,
            producer_id,
            producer_epoch,
            base_sequence,
            count,
        )
        _CRC.pack_into(out, 17, crc32c(memoryview(out)[_CRC_START:]))
        return out


def _heads(sizes: list[int], fixed: int, *, now: bool, lead: bool = False) -> list[bytes]:
    """Each record's length varint and attributes byte (and, ``now``, its zero timestamp
    delta); with ``lead``, each but the first after a 0 byte (the header count of the record
    before). ``sizes[i] + fixed`` is the record's size from its key on (with its timestamp
    delta unless ``now``); its offset delta's width is known from its place."""
    out: list[bytes] = []
    count = len(sizes)
    for start, stop, width in _DELTA_WIDTHS:
        if start >= count:
            break
        extra = fixed + width + (2 if now else 1)
        table = _HEAD_TABLES.get((extra, now, lead))
        if table is None:
            table = _HEAD_TABLES[extra, now, lead] = _head_table(extra, now, lead)
        out += map(table.__getitem__, sizes[start:stop])
    if lead and out:
        out[0] = out[0][1:]
    return out


def _head_table(extra: int, now: bool, lead: bool) -> _Memo[bytes]:
    head = b"\x00" if lead else b""
    tail = b"\x00\x00" if now else b"\x00"
    return _Memo(lambda size: head + _zigzag(size + extra) + tail)


def _column(items: list[Any], what: str) -> tuple[list[bytes], list[int]]:
    """A key or value column with bytes-likes made bytes and nulls made b"", and its lengths
    (-1 for null); TypeError for anything else."""
    out: list[bytes] = []
    lengths: list[int] = []
    for item in items:
        if item is None:
            out.append(b"")
            lengths.append(-1)
        else:
            if item.__class__ is not bytes:
                item = as_bytes(item, what)
            out.append(item)
            lengths.append(len(item))
    return out, lengths


def _encode_headers(headers: tuple[Header, ...]) -> bytes:
    out = [_VARINT[len(headers)]]
    for name, hval in headers:
        raw_name = name.encode()
        out.append(_VARINT[len(raw_name)])
        out.append(raw_name)
        if hval is None:
            out.append(b"\x01")
        else:
            out.append(_VARINT[len(hval)])
            out.append(hval)
    return b"".join(out)
