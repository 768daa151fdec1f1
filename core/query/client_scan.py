"""Topics read through the client interface: queries over a ``millstream://`` broker.

The embedded store is read from its files (:mod:`.scan`). A broker is read as any consumer reads
it: :class:`ClientStore` describes its topics and :class:`ClientScan` assigns the partitions a
query needs, seeks to where its bounds start (``record_offset`` by offset, a lower ``timestamp``
bound through ``list_offsets``), fetches up to the end offsets it saw when the scan began, and
turns each fetch into an Arrow record batch.

The connection lives on an asyncio event loop; DuckDB pulls record batches from its own threads.
Each call into the client is handed to that loop (``run_coroutine_threadsafe``), so the engine
must run in a thread other than the loop's (``await asyncio.to_thread(run_query, …)``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection, Coroutine, Iterator
from typing import Any, TypeVar

import pyarrow as pa

from ..client import Connection, TopicDescription, redact_url
from ..errors import QueryError
from ..record import StoredRecord, TopicPartition
from .columns import COLUMNS, RAW_SCHEMA, as_text
from .scan import ScanBounds, ScanStats
from .stopping import QueryStop

__all__ = ["ClientScan", "ClientStore"]

T = TypeVar("T")
_SAMPLE = 1_000


class ClientStore:
    """A store reached through a client :class:`~millstream.core.client.Connection` whose
    event loop is ``loop``."""

    read_only = True

    def __init__(
        self,
        conn: Connection,
        loop: asyncio.AbstractEventLoop,
        stop: QueryStop | None = None,
    ) -> None:
        self.conn = conn
        self.loop = loop
        self.stop = stop
        self._topics: dict[str, TopicDescription] = {}
        self._names: list[str] | None = None

    @property
    def url(self) -> str:
        """The broker's URL as it may be shown (no password)."""
        return redact_url(self.conn.url)

    def stopping(self, stop: QueryStop) -> ClientStore:
        """The same store for one query: every wait for the broker ends when ``stop`` says
        the query stopped (its time limit, an interrupt)."""
        return ClientStore(self.conn, self.loop, stop)

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the connection's loop and wait for it (from another thread); with
        a :attr:`stop`, QueryError once the query is stopped (``coro`` is cancelled)."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise QueryError(
                "a query over a broker must run outside the connection's event loop; "
                "call it with asyncio.to_thread"
            )
        future = asyncio.run_coroutine_threadsafe(coro, self.loop)
        if self.stop is None:
            return future.result()
        return self.stop.wait(future)

    def call_soon(self, coro: Coroutine[Any, Any, Any]) -> None:
        """Run ``coro`` on the connection's loop without waiting for it."""
        asyncio.run_coroutine_threadsafe(coro, self.loop)

    def refresh(self) -> None:
        self._topics.clear()
        self._names = None

    def topic_names(self) -> list[str]:
        if self._names is None:
            self._names = self.call(self._list())
        return self._names

    async def _list(self) -> list[str]:
        async with self.conn.admin() as admin:
            return await admin.list_topics(internal=True)

    def describe(self, name: str) -> TopicDescription:
        if name not in self._topics:
            self._topics[name] = self.call(self._describe(name))
        return self._topics[name]

    async def _describe(self, name: str) -> TopicDescription:
        async with self.conn.admin() as admin:
            return await admin.describe_topic(name)

    def codec(self, name: str) -> str:
        return str(self.describe(name).configs.get("codec", "json"))

    def sample(self, name: str) -> pa.Array:
        """Up to 1,000 values from the start of each partition, as text."""
        topic = self.describe(name)
        bounds = {
            p.partition: (p.earliest_offset, min(p.latest_offset, p.earliest_offset + _SAMPLE))
            for p in topic.partitions
        }
        records = self.call(_fetch_all(self.conn, name, bounds))
        values = pa.array([r.value for r in records], pa.binary())
        return as_text(values)


class ClientScan:
    """The records of one topic of a :class:`ClientStore` within ``bounds``, as Arrow record
    batches (the same stream :class:`~.scan.TopicScan` gives for the embedded store)."""

    def __init__(
        self,
        store: ClientStore,
        name: str,
        bounds: ScanBounds = ScanBounds(),  # noqa: B008 - frozen, shared safely
        *,
        wanted: Collection[str] = COLUMNS,
        text_value: bool = False,
        start_offsets: dict[int, int] | None = None,
        on_records: Callable[[int], None] | None = None,
    ) -> None:
        self.store = store
        self.name = name
        self.bounds = bounds
        self.wanted = frozenset(wanted)
        self.text_value = text_value
        self.on_records = on_records
        self.failure: QueryError | None = None
        """Why reading the topic failed (the query then fails with it), or None."""
        self.stats = ScanStats(name, bounds.describe())
        self.schema = RAW_SCHEMA.set(
            RAW_SCHEMA.get_field_index("value"),
            pa.field("value", pa.string() if text_value else pa.binary()),
        )
        topic = store.describe(name)
        self.stats.partitions_total = len(topic.partitions)
        self.stats.records_total = sum(
            p.latest_offset - p.earliest_offset for p in topic.partitions
        )
        self.ranges = store.call(self._ranges(topic, start_offsets or {}))

    async def _ranges(
        self, topic: TopicDescription, start_offsets: dict[int, int]
    ) -> dict[int, tuple[int, int]]:
        """Partition → [start, stop) offsets to read."""
        bounds = self.bounds
        ranges = {}
        async with self.store.conn.admin() as admin:
            for p in topic.partitions:
                if bounds.partitions is not None and p.partition not in bounds.partitions:
                    continue
                start = max(p.earliest_offset, bounds.min_offset or 0)
                start = max(start, start_offsets.get(p.partition, 0))
                if bounds.min_timestamp is not None:
                    tp = TopicPartition(self.name, p.partition)
                    start = max(start, await admin.list_offsets(tp, bounds.min_timestamp))
                stop = p.latest_offset
                if bounds.max_offset is not None:
                    stop = min(stop, bounds.max_offset + 1)
                ranges[p.partition] = (start, stop)
        return ranges

    @property
    def records_to_read(self) -> int:
        if self.bounds.empty:
            return 0
        return sum(max(0, stop - start) for start, stop in self.ranges.values())

    def ends(self) -> dict[int, int]:
        return {p: stop for p, (_start, stop) in self.ranges.items()}

    def plan(self) -> ScanStats:
        planned = ScanStats(self.name, self.stats.bounds)
        planned.partitions_total = self.stats.partitions_total
        planned.records_total = self.stats.records_total
        wanted = {p: r for p, r in self.ranges.items() if r[1] > r[0]}
        planned.partitions_read = 0 if self.bounds.empty else len(wanted)
        planned.records_read = self.records_to_read
        return planned

    def batches(self) -> Iterator[pa.RecordBatch]:
        with self.stats._lock:
            self.stats.passes += 1
        if self.bounds.empty:
            return
        ranges = {p: r for p, r in self.ranges.items() if r[1] > r[0]}
        if not ranges:
            return
        self.stats.partitions_read += len(ranges)
        fetcher = _Fetcher(self.store.conn, self.name, ranges)
        try:
            while True:
                records = self._call(fetcher.next())
                if records is None:
                    return
                if not records:
                    continue
                batch = self._batch(records)
                with self.stats._lock:
                    self.stats.records_read += batch.num_rows
                    self.stats.batches_read += 1
                if self.on_records is not None:
                    self.on_records(batch.num_rows)
                yield batch
        finally:
            if self.store.stop is not None and self.store.stop.stopped:
                self.store.call_soon(fetcher.close())  # the broker may not answer
            else:
                self._call(fetcher.close())

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        """:meth:`ClientStore.call`, a failure kept in :attr:`failure` as a QueryError that
        names the topic and the broker (DuckDB, which pulls the batches, reports only that the
        stream failed)."""
        try:
            return self.store.call(coro)
        except QueryError as exc:
            self.failure = exc
            raise
        except Exception as exc:
            self.failure = QueryError(
                f"reading topic {self.name!r} from {self.store.url} failed: "
                f"{str(exc) or type(exc).__name__}"
            )
            raise self.failure from exc

    def _batch(self, records: list[StoredRecord]) -> pa.RecordBatch:
        n = len(records)
        wanted = self.wanted
        columns: dict[str, pa.Array] = {}
        if "partition" in wanted:
            columns["partition"] = pa.array([r.partition for r in records], pa.int32())
        if "record_offset" in wanted:
            columns["record_offset"] = pa.array([r.offset for r in records], pa.int64())
        if "timestamp" in wanted:
            stamps = pa.array([r.timestamp for r in records], pa.int64())
            columns["timestamp"] = stamps.view(pa.timestamp("ms", tz="UTC"))
        if "key" in wanted:
            columns["key"] = as_text(pa.array([r.key for r in records], pa.binary()))
        if "headers" in wanted:
            columns["headers"] = pa.array(
                [
                    [
                        {"key": k, "value": None if v is None else v.decode("utf-8", "replace")}
                        for k, v in r.headers
                    ]
                    for r in records
                ],
                RAW_SCHEMA.field("headers").type,
            )
        if "value" in wanted:
            values = pa.array([r.value for r in records], pa.binary())
            columns["value"] = as_text(values) if self.text_value else values
        arrays = [
            columns[name] if name in columns else pa.nulls(n, self.schema.field(name).type)
            for name in self.schema.names
        ]
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object:
        reader = pa.RecordBatchReader.from_batches(self.schema, self.batches())
        return reader.__arrow_c_stream__(requested_schema)


class _Fetcher:
    """A consumer over assigned partitions, read from each start to each stop."""

    def __init__(self, conn: Connection, topic: str, ranges: dict[int, tuple[int, int]]) -> None:
        self.conn = conn
        self.topic = topic
        self.ranges = ranges
        self.consumer: Any = None
        self.left: set[int] = set(ranges)

    async def next(self) -> list[StoredRecord] | None:
        """The next records within the ranges; None when every partition is done."""
        if self.consumer is None:
            self.consumer = self.conn.consumer(client_id="millstream-query")
            tps = [TopicPartition(self.topic, p) for p in self.ranges]
            self.consumer.assign(tps)
            for tp in tps:
                self.consumer.seek(tp, self.ranges[tp.partition][0])
        if not self.left:
            return None
        fetched = await self.consumer.getmany(timeout_ms=1000, max_records=50_000)
        out: list[StoredRecord] = []
        for tp, records in fetched.items():
            stop = self.ranges[tp.partition][1]
            kept = [r for r in records if r.offset < stop]
            out.extend(kept)
            if len(kept) < len(records) or (records and records[-1].offset >= stop - 1):
                self.left.discard(tp.partition)
        for p in list(self.left):
            if self.consumer.position(TopicPartition(self.topic, p)) >= self.ranges[p][1]:
                self.left.discard(p)
        return out

    async def close(self) -> None:
        if self.consumer is not None:
            await self.consumer.close()


async def _fetch_all(
    conn: Connection, topic: str, ranges: dict[int, tuple[int, int]]
) -> list[StoredRecord]:
    fetcher = _Fetcher(conn, topic, {p: r for p, r in ranges.items() if r[1] > r[0]})
    out: list[StoredRecord] = []
    try:
        while (records := await fetcher.next()) is not None:
            out.extend(records)
    finally:
        await fetcher.close()
    return out
