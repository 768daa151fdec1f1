"""SQL over the topics of a store: :class:`QueryEngine` and :func:`run_query`.

Every topic is a table with the columns

=================  ===========================  ==============================================
``topic``          VARCHAR                      the topic's name
``partition``      INTEGER                      the record's partition
``record_offset``  BIGINT                       its offset (``offset`` is a reserved word)
``timestamp``      TIMESTAMP WITH TIME ZONE     its timestamp, UTC, millisecond precision
``key``            VARCHAR                      its key as text (NULL when it has none)
``headers``        STRUCT(key, value)[]         its headers, names and values as text
``value``          per the topic's codec        JSON: a STRUCT (``value.temp``); text: VARCHAR;
                                                bytes: BLOB
=================  ===========================  ==============================================

A query runs in three steps. The statement is checked (:mod:`.sandbox`: one read-only
statement) and parsed by DuckDB; the parse tells which topics it reads, which of their columns
and within which bounds (:mod:`.pushdown`). Each topic is then registered with a fresh, sandboxed
DuckDB connection as an Arrow stream (:class:`~.scan.TopicScan`) behind a view that gives its
value its type (:mod:`.schema`). Then DuckDB runs the statement, pulling record batches as it
goes; every scan counts what it read.

The engine reads an embedded store's log directly (it only reads, so the store may be open
read-only while a pipeline writes it), and a broker's topics through the network client
(:mod:`.client_scan`). It is synchronous: an asyncio caller runs it in a thread
(``await asyncio.to_thread(run_query, …)``). Each query runs within bounds: its time limit and
interruption (:mod:`.stopping`, which also ends the waits for a broker), and the memory and
temporary disk DuckDB may use (:mod:`.sandbox`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..client import Connection
from ..errors import QueryError
from ..log import LogStore
from .client_scan import ClientScan, ClientStore
from .columns import COLUMNS
from .pushdown import QueryShape, analyse, expression_sql
from .sandbox import (
    DEFAULT_MAX_MEMORY,
    DEFAULT_MAX_TEMP_DISK,
    check_statement,
    load_duckdb,
    sandboxed_connection,
)
from .scan import ScanStats, TopicScan
from .schema import ValueType, value_type, value_type_of
from .stopping import STOPPED, QueryStop

__all__ = [
    "Follower",
    "QueryEngine",
    "QueryResult",
    "ScanProgress",
    "engine_for",
    "not_embedded",
    "run_query",
]

DEFAULT_MAX_ROWS = 10_000
"""The most rows :func:`run_query` returns unless told otherwise."""


@dataclass
class QueryResult:
    """The answer to a query: column names and DuckDB types, the rows, and what was read."""

    columns: list[str]
    types: list[str]
    rows: list[tuple[Any, ...]]
    stats: list[ScanStats] = field(default_factory=list)
    elapsed_s: float = 0.0

    def as_dicts(self) -> list[dict[str, Any]]:
        """The rows as dicts keyed by column name."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


class ScanProgress(Protocol):
    """Told how many records a query's scans may read, then of each chunk read."""

    def begin(self, total: int) -> None: ...

    def advance(self, records: int) -> None: ...


@dataclass
class _Prepared:
    con: Any
    sql: str
    explain: bool
    shape: QueryShape
    scans: dict[str, TopicScan | ClientScan]
    store: LogStore | ClientStore
    stop: QueryStop


class QueryEngine:
    """Runs read-only SQL over the topics of one embedded store.

    ``allow`` lists the folders whose files (CSV, Parquet, JSON) queries may read beside the
    topics; by default none. ``threads`` caps DuckDB's worker threads. Each query may use
    ``max_memory`` bytes of memory and ``max_temp_disk`` bytes of temporary files for what does
    not fit in it (0: none); one that needs more raises QueryError saying so. A ``progress``
    given to :meth:`run` or :meth:`stream` hears how far the scans are (for a progress bar).
    """

    def __init__(
        self,
        store: LogStore | ClientStore,
        *,
        allow: Sequence[str | os.PathLike[str]] = (),
        threads: int | None = None,
        max_memory: int = DEFAULT_MAX_MEMORY,
        max_temp_disk: int = DEFAULT_MAX_TEMP_DISK,
    ) -> None:
        self.store = store
        self.allow = list(allow)
        self.threads = threads
        self.max_memory = max_memory
        self.max_temp_disk = max_temp_disk
        self._types: dict[str, ValueType] = {}
        self._running: dict[Any, QueryStop] = {}

    # --- the three ways to run a query ---------------------------------------------------------

    def run(
        self,
        sql: str,
        *,
        max_rows: int | None = DEFAULT_MAX_ROWS,
        timeout: float | None = None,
        progress: ScanProgress | None = None,
        started: float | None = None,
    ) -> QueryResult:
        """Run ``sql`` and return its rows.

        Raises QueryError when it is not valid or not allowed, when it returns more than
        ``max_rows`` rows (None: no limit), or when it runs longer than ``timeout`` seconds
        (counted from ``started``, a ``time.monotonic()``, when the caller spent part of them
        before: connecting to a broker). The time limit covers the waits for a broker too: a
        broker that stops answering does not hold the query past it.
        """
        started_perf = time.perf_counter()
        stop = QueryStop(timeout, started=started)
        prepared = self.prepare(sql, progress=progress, stop=stop)
        try:
            with self._guard(prepared):
                cursor = self._execute(prepared)
                columns, types = _describe(cursor)
                rows = cursor.fetchall() if max_rows is None else cursor.fetchmany(max_rows + 1)
            if max_rows is not None and len(rows) > max_rows:
                raise QueryError(
                    f"the query returns more than {max_rows:,} rows; add a LIMIT, narrow the "
                    f"WHERE, or raise the limit with --max-rows (0 for none)"
                )
            if prepared.explain:
                rows = [*rows, *_explain_rows(prepared, len(columns))]
            return QueryResult(
                columns, types, rows, self._stats(prepared), time.perf_counter() - started_perf
            )
        finally:
            self._close(prepared)

    def stream(
        self,
        sql: str,
        *,
        timeout: float | None = None,
        progress: ScanProgress | None = None,
        batch_rows: int = 65_536,
        started: float | None = None,
    ) -> Iterator[Any]:
        """Run ``sql`` and yield its result as Arrow record batches (for exports: no row
        limit, nothing held in memory but a batch); ``timeout`` and ``started`` as for
        :meth:`run`."""
        stop = QueryStop(timeout, started=started)
        prepared = self.prepare(sql, progress=progress, stop=stop)
        try:
            with self._guard(prepared):
                reader = prepared.con.sql(prepared.sql).to_arrow_reader(batch_rows)
                yield from reader
        finally:
            self._close(prepared)

    def follow(
        self,
        sql: str,
        *,
        interval_s: float = 0.5,
        stop: threading.Event | None = None,
    ) -> Iterator[QueryResult]:
        """A live tail: run ``sql`` over the records that arrive, again and again, yielding
        each round's rows (rounds without rows are not yielded), every ``interval_s`` seconds
        until ``stop`` is set (or the caller stops iterating). See :class:`Follower`."""
        follower = self.follower(sql)
        while stop is None or not stop.is_set():
            result = follower.poll()
            if result is not None:
                yield result
            if stop is not None:
                stop.wait(interval_s)
            else:
                time.sleep(interval_s)

    def follower(self, sql: str) -> Follower:
        """A :class:`Follower` of ``sql``, its starting point fixed now."""
        return Follower(self, sql)

    def interrupt(self) -> None:
        """Stop the queries this engine is running (in other threads): each raises
        QueryError."""
        for con, stop in list(self._running.items()):
            stop.interrupt()
            with contextlib.suppress(Exception):
                con.interrupt()

    # --- preparing -----------------------------------------------------------------------------

    def prepare(
        self,
        sql: str,
        *,
        start_offsets: dict[int, int] | None = None,
        progress: ScanProgress | None = None,
        stop: QueryStop | None = None,
    ) -> _Prepared:
        """Check and parse ``sql``, and register the topics it reads with a new connection;
        ``stop`` (default: none) ends the waits for a broker while preparing and running."""
        explain = check_statement(sql)
        stop = QueryStop() if stop is None else stop
        store = self.store.stopping(stop) if isinstance(self.store, ClientStore) else self.store
        con = sandboxed_connection(
            self.allow,
            self.threads,
            max_memory=self.max_memory,
            max_temp_disk=self.max_temp_disk,
        )
        self._running[con] = stop
        try:
            body = (
                re.sub(
                    r"^\s*explain\s*(\([^)]*\))?(\s*analy[sz]e\b)?", "", sql, count=1, flags=re.I
                )
                if explain
                else sql
            )
            tree = _parse(con, body)
            if store.read_only:
                store.refresh()
            topics = set(store.topic_names())
            shape = analyse(tree, topics, _aggregate_names(con), _evaluator(con))
            scans = {}
            for i, (name, need) in enumerate(sorted(shape.topics.items())):
                vtype = self._types.get(name)
                if vtype is None:
                    vtype = self._types[name] = self._value_type(con, store, name)
                options: dict[str, Any] = {
                    "wanted": need.columns & set(COLUMNS),
                    "text_value": vtype.text,
                    "start_offsets": start_offsets,
                    "on_records": None if progress is None else progress.advance,
                }
                scan: TopicScan | ClientScan
                if isinstance(store, ClientStore):
                    scan = ClientScan(store, name, need.bounds, **options)
                else:
                    scan = TopicScan(store.topic(name), need.bounds, **options)
                source = f"__millstream_scan_{i}"
                con.register(source, scan)
                value_sql = _narrowed(vtype, need.value_fields)
                quoted = '"' + name.replace('"', '""') + '"'
                literal = "'" + name.replace("'", "''") + "'"
                con.execute(
                    f"CREATE TEMP VIEW {quoted} AS SELECT {literal} AS topic, partition, "
                    f"record_offset, timestamp, key, headers, {value_sql} AS value FROM {source}"
                )
                scans[name] = scan
        except BaseException:
            self._running.pop(con, None)
            con.close()
            raise
        if progress is not None:
            progress.begin(sum(scan.records_to_read for scan in scans.values()))
        return _Prepared(con, sql, explain, shape, scans, store, stop)

    def _value_type(self, con: Any, store: LogStore | ClientStore, name: str) -> ValueType:
        if isinstance(store, ClientStore):
            return value_type_of(con, store.codec(name), lambda: store.sample(name))
        return value_type(con, store.topic(name))

    def _execute(self, prepared: _Prepared) -> Any:
        return prepared.con.execute(prepared.sql)

    @contextlib.contextmanager
    def _guard(self, prepared: _Prepared) -> Iterator[None]:
        """Run the prepared query's statement and fetches within: DuckDB is interrupted at the
        query's time limit, and its errors become one-line QueryErrors (a scan's own failure,
        such as a broker that stopped answering, rather than DuckDB's word for it)."""
        duckdb = load_duckdb()
        stop = prepared.stop
        timer = None
        remaining = stop.remaining()
        if remaining is not None:

            def expire() -> None:
                stop.expire()
                with contextlib.suppress(Exception):
                    prepared.con.interrupt()

            timer = threading.Timer(remaining, expire)
            timer.daemon = True
            timer.start()
        try:
            yield
        except duckdb.InterruptException:
            raise QueryError(stop.reason or STOPPED) from None
        except duckdb.OutOfMemoryException:
            raise QueryError(
                f"the query needs more memory than it may use (--max-memory "
                f"{_size_text(self.max_memory)}, with --max-temp-disk "
                f"{_size_text(self.max_temp_disk)} on disk for what does not fit); raise them, "
                "or narrow the query"
            ) from None
        except duckdb.Error as exc:
            failure = _scan_failure(prepared)
            if failure is not None:
                raise failure from None
            if stop.reason is not None:
                raise QueryError(stop.reason) from None
            raise _query_error(exc, prepared.store) from None
        finally:
            if timer is not None:
                timer.cancel()

    def _close(self, prepared: _Prepared) -> None:
        self._running.pop(prepared.con, None)
        prepared.con.close()

    def _stats(self, prepared: _Prepared) -> list[ScanStats]:
        return [prepared.scans[name].stats for name in sorted(prepared.scans)]

    def topic_scans(self, sql: str) -> dict[str, TopicScan | ClientScan]:
        """The scans ``sql`` would make, without running it (for plans and tests)."""
        prepared = self.prepare(sql)
        self._close(prepared)
        return prepared.scans


class Follower:
    """A live tail of one query: each :meth:`poll` runs it over the records that arrived since
    the last one.

    It starts at the end of the topic, or where the ``WHERE`` bounds the offsets or timestamps
    from below (``timestamp > now() - INTERVAL 5 MINUTE`` shows the last five minutes first).
    The query must read one topic and not aggregate: each record is matched on its own.
    Records written after the follower is made are sure to be seen.
    """

    def __init__(self, engine: QueryEngine, sql: str) -> None:
        self.engine = engine
        self.sql = sql
        prepared = engine.prepare(sql)
        try:
            if prepared.explain:
                raise QueryError("--follow cannot EXPLAIN; drop one of them")
            if len(prepared.shape.topics) != 1 or prepared.shape.aggregates:
                raise QueryError(
                    "--follow needs a query over one topic without aggregates, GROUP BY, "
                    "DISTINCT, window functions or UNION: each new record is matched on its own"
                )
            self.topic, scan = next(iter(prepared.scans.items()))
            bounds = scan.bounds
            self.from_end = bounds.min_offset is None and bounds.min_timestamp is None
            self.positions = scan.ends() if self.from_end else {}
        finally:
            engine._close(prepared)

    def poll(self) -> QueryResult | None:
        """The rows of the records that arrived since the last poll; None when there are
        none."""
        started = time.perf_counter()
        prepared = self.engine.prepare(self.sql, start_offsets=self.positions)
        try:
            scan = prepared.scans[self.topic]
            with self.engine._guard(prepared):
                cursor = self.engine._execute(prepared)
                columns, types = _describe(cursor)
                rows = cursor.fetchall()
            self.positions = {**self.positions, **scan.ends()}
        finally:
            self.engine._close(prepared)
        if not rows:
            return None
        return QueryResult(columns, types, rows, [scan.stats], time.perf_counter() - started)


def engine_for(
    store: Any,
    *,
    allow: Sequence[str | os.PathLike[str]] = (),
    loop: asyncio.AbstractEventLoop | None = None,
    max_memory: int = DEFAULT_MAX_MEMORY,
    max_temp_disk: int = DEFAULT_MAX_TEMP_DISK,
) -> QueryEngine:
    """A QueryEngine over ``store``: a :class:`~millstream.core.log.LogStore`, a connection to
    an embedded store (read from its files), or any other client connection (a
    ``millstream://`` broker, read as a consumer reads it). A client connection's queries are
    handed to its event loop, ``loop`` (default: the running one), so they must run in
    another thread. ``allow``, ``max_memory`` and ``max_temp_disk`` as for
    :class:`QueryEngine`."""
    limits: dict[str, Any] = {
        "allow": allow,
        "max_memory": max_memory,
        "max_temp_disk": max_temp_disk,
    }
    if isinstance(store, LogStore):
        return QueryEngine(store, **limits)
    log = getattr(store, "store", None)
    if isinstance(log, LogStore):
        return QueryEngine(log, **limits)
    if isinstance(store, Connection):
        if loop is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise QueryError(
                    "a query over a broker needs the connection's event loop: call "
                    "engine_for(conn, loop=...) or run_query(..., loop=...)"
                ) from None
        return QueryEngine(ClientStore(store, loop), **limits)
    url = getattr(store, "url", repr(store))
    raise QueryError(not_embedded(url))


def not_embedded(url: str) -> str:
    """Why a store at ``url`` (not ``file:``) cannot be queried yet."""
    return (
        f"queries read the log directly, so they need an embedded store (file:DIR); {url} is "
        "not one: querying through a broker (millstream://, kafka://) is not supported yet"
    )


def run_query(
    store: Any,
    sql: str,
    max_rows: int | None = DEFAULT_MAX_ROWS,
    timeout: float | None = None,
    *,
    allow: Sequence[str | os.PathLike[str]] = (),
    loop: asyncio.AbstractEventLoop | None = None,
    max_memory: int = DEFAULT_MAX_MEMORY,
    max_temp_disk: int = DEFAULT_MAX_TEMP_DISK,
) -> QueryResult:
    """Run one read-only query over ``store`` and return its rows: the function behind
    ``millstream query`` and, later, ``POST /query``.

    ``store`` is a connection (embedded, or to a broker: then ``loop`` is its event loop and
    this must run in another thread) or a LogStore. At most ``max_rows`` rows (None: no
    limit) and ``timeout`` seconds (None: no limit), else QueryError; ``allow`` lists the
    folders whose files the query may read; the query may use ``max_memory`` bytes of memory
    and ``max_temp_disk`` bytes of temporary files.
    """
    engine = engine_for(
        store, allow=allow, loop=loop, max_memory=max_memory, max_temp_disk=max_temp_disk
    )
    return engine.run(sql, max_rows=max_rows, timeout=timeout)


# --- helpers ----------------------------------------------------------------------------------


def _size_text(size: int) -> str:
    """1536 → ``1.5 KiB``."""
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _scan_failure(prepared: _Prepared) -> QueryError | None:
    """Why a scan of the query failed, when one did."""
    for name in sorted(prepared.scans):
        failure = getattr(prepared.scans[name], "failure", None)
        if failure is not None:
            return failure
    return None


def _narrowed(vtype: ValueType, fields: set[str] | None) -> str:
    """The value expression of a JSON topic, parsing only the fields the query reads (DuckDB
    parses a JSON text once per row whatever it keeps, but building fields costs too)."""
    if vtype.structure is None or not fields:
        return vtype.sql
    import json

    structure = json.loads(vtype.structure)
    if not isinstance(structure, dict) or not fields <= set(structure):
        return vtype.sql  # a field the sample never saw: DuckDB names it in its error
    kept = json.dumps({k: v for k, v in structure.items() if k in fields}, separators=(",", ":"))
    return "try(json_transform(value, '" + kept.replace("'", "''") + "'))"


def _describe(cursor: Any) -> tuple[list[str], list[str]]:
    description = cursor.description or []
    return [d[0] for d in description], [str(d[1]) for d in description]


def _parse(con: Any, sql: str) -> dict[str, Any]:
    """DuckDB's syntax tree of ``sql``'s one statement; QueryError with the position when it
    is not valid SQL."""
    import json

    raw = con.execute("SELECT json_serialize_sql($1)", [sql]).fetchall()[0][0]
    tree = json.loads(raw)
    if tree.get("error"):
        message = tree.get("error_message", "not valid SQL")
        position = tree.get("position")
        if position is not None and str(position).isdigit():
            line, column = _line_column(sql, int(position))
            near = sql.splitlines()[line - 1].strip() if sql.splitlines() else sql
            raise QueryError(f"SQL {message} at line {line}, column {column}: {near}")
        raise QueryError(f"SQL {message}")
    return tree["statements"][0]


def _line_column(text: str, position: int) -> tuple[int, int]:
    before = text[:position]
    line = before.count("\n") + 1
    column = position - (before.rfind("\n") + 1) + 1
    return line, column


_AGGREGATES: set[str] = set()


def _aggregate_names(con: Any) -> set[str]:
    if not _AGGREGATES:
        rows = con.execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
            "WHERE function_type = 'aggregate'"
        ).fetchall()
        _AGGREGATES.update(r[0] for r in rows)
    return _AGGREGATES


def _evaluator(con: Any) -> Callable[[dict[str, Any], str], float | int | None]:
    """Computes the constants of comparisons: microseconds for timestamps, else numbers."""
    import json

    duckdb = load_duckdb()
    template = json.loads(con.execute("SELECT json_serialize_sql('SELECT 1')").fetchall()[0][0])

    def evaluate(expr: dict[str, Any], column: str) -> float | int | None:
        tree = expression_sql(expr, template)
        try:
            select = con.execute("SELECT json_deserialize_sql($1)", [json.dumps(tree)])
            text = select.fetchall()[0][0]
            if column == "timestamp":
                query = f"SELECT epoch_us(CAST(x AS TIMESTAMPTZ)) FROM ({text}) AS t(x)"
            else:
                query = f"SELECT CAST(x AS DOUBLE) FROM ({text}) AS t(x)"
            value = con.execute(query).fetchall()[0][0]
        except duckdb.Error:
            return None  # the query itself will say what is wrong with it
        if value is None or (isinstance(value, float) and value != value):
            return None
        return value

    return evaluate


_MISSING_TABLE = re.compile(r"Table with name (\S+?) does not exist")


def _query_error(exc: Exception, store: LogStore | ClientStore) -> QueryError:
    """DuckDB's error as one line, an unknown table named with the topics there are."""
    text = str(exc)
    first = text.splitlines()[0] if text else type(exc).__name__
    missing = _MISSING_TABLE.search(first)
    if missing:
        name = missing.group(1)
        known = [t for t in store.topic_names() if not t.startswith("__")]
        listed = ", ".join(known) if known else "none yet"
        return QueryError(f"unknown topic {name!r}; known topics: {listed}")
    where = re.search(r"^LINE (\d+): ", text, re.MULTILINE)
    if where:
        first += f" (line {where.group(1)})"
    return QueryError(first)


def _explain_rows(prepared: _Prepared, width: int) -> list[tuple[Any, ...]]:
    """What each topic's scan would read, as rows that fit EXPLAIN's columns."""
    rows = []
    for name in sorted(prepared.scans):
        plan = prepared.scans[name].plan()
        text = (
            f"topic {name}: {plan.bounds}; reads {plan.segments_read} of "
            f"{plan.segments_total} segments, {plan.batches_read} batches, "
            f"{plan.records_read} of {plan.records_total} records, "
            f"{plan.partitions_read} of {plan.partitions_total} partitions"
        )
        row = ["millstream_scan", text][:width]
        rows.append(tuple(row + [None] * (width - len(row))))
    return rows
