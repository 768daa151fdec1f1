"""``millstream query``: SQL over the topics of a store.

The store is opened read-only, so a query runs while a pipeline writes the store. Results go to
stdout (or ``--output FILE``) as a table, JSON lines or CSV; ``--export parquet:FILE`` or
``csv:FILE`` streams them to a file with no row limit. ``--follow`` keeps running the query over
the records that arrive. A long scan shows a progress bar on stderr when it is a terminal.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import csv
import datetime as dt
import decimal
import functools
import io
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any, TextIO, TypedDict

import orjson

from ..client import redact_url
from ..errors import QueryError
from ._args import HelpFormatter, UsageError, non_negative_int, open_store, store_url
from ._output import human_bytes, render_table

__all__ = ["register"]

_EXPORT_FORMATS = ("parquet", "csv")


def register(commands: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    query = commands.add_parser(
        "query",
        parents=parents,
        help="run SQL over topics (every topic is a table)",
        description="Run a read-only SQL query (DuckDB's dialect) over the store's topics. Every "
        "topic is a table with the columns topic, partition, record_offset, timestamp, key, "
        "headers and value; a JSON topic's value is a STRUCT (value.temp). WHERE conditions on "
        "partition, record_offset and timestamp limit what is read. The store is opened "
        "read-only, so a pipeline may be writing it.",
        epilog="examples:\n"
        '  millstream query "SELECT count(*), avg(value.temp) FROM readings"\n'
        '  millstream query "SELECT key, max(value.temp) FROM readings WHERE timestamp > now() - '
        'INTERVAL 1 HOUR GROUP BY key ORDER BY 2 DESC LIMIT 10"\n'
        '  millstream query --format json "SELECT * FROM dead LIMIT 5"\n'
        '  millstream query --follow "SELECT key, value.temp FROM readings WHERE value.temp > 30"\n'
        '  millstream query --export parquet:readings.parquet "SELECT value.* FROM readings"',
        formatter_class=HelpFormatter,
    )
    query.add_argument("sql", metavar="SQL", help="one SELECT statement (or EXPLAIN SELECT)")
    query.add_argument(
        "--format",
        choices=("table", "json", "csv"),
        default="table",
        help="table for people (default); json: one JSON object per row and line; csv",
    )
    query.add_argument(
        "--output", metavar="FILE", type=Path, help="write the result to FILE instead of stdout"
    )
    query.add_argument(
        "--export",
        metavar="FORMAT:FILE",
        type=_export_target,
        help="stream the whole result to a parquet:FILE or csv:FILE (no --max-rows limit)",
    )
    query.add_argument(
        "--max-rows",
        type=non_negative_int,
        default=10_000,
        metavar="N",
        help="stop with an error when the result has more than N rows (default 10000; 0: no limit)",
    )
    query.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        help="stop the query after this many seconds, connecting to a broker included "
        "(default: no limit)",
    )
    query.add_argument(
        "--max-memory",
        type=_size,
        metavar="SIZE",
        help="the memory the query may use, e.g. 512MiB or 2GB (default: a quarter of the "
        "machine's); what does not fit goes to temporary files, up to --max-temp-disk",
    )
    query.add_argument(
        "--max-temp-disk",
        type=_size,
        metavar="SIZE",
        help="the disk the query may fill with temporary files for what does not fit in "
        "--max-memory (default 4GiB; 0: none)",
    )
    query.add_argument(
        "--allow",
        action="append",
        default=None,
        metavar="DIR",
        help="a folder whose files (CSV, Parquet, JSON) the query may read, repeatable "
        "(default: the current folder)",
    )
    query.add_argument(
        "--stats",
        action="store_true",
        help="print what was read per topic (partitions, segments, batches, records) on stderr",
    )
    query.add_argument(
        "--follow",
        action="store_true",
        help="keep printing the rows of records as they arrive (queries without aggregates); "
        "Ctrl-C ends",
    )
    query.set_defaults(run=_query, interrupt_status=0)


def _export_target(text: str) -> tuple[str, Path]:
    kind, sep, path = text.partition(":")
    if not sep or kind not in _EXPORT_FORMATS or not path:
        raise argparse.ArgumentTypeError(
            f"expected parquet:FILE or csv:FILE, e.g. parquet:out.parquet; got {text!r}"
        )
    return kind, Path(path)


_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}


def _size(text: str) -> int:
    """``512MiB`` → 536870912: a size in bytes, with KB/MB/GB/TB (1000s) or KiB/MiB/GiB/TiB
    (1024s), or none (bytes)."""
    number = text.strip().rstrip("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
    unit = text.strip()[len(number) :].strip().lower()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if unit not in _UNITS or not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected a size such as 512MiB, 2GB or 0, got {text!r} (units: B, KB, MB, GB, "
            "TB, KiB, MiB, GiB, TiB)"
        )
    return int(value * _UNITS[unit])


class _Limits(TypedDict, total=False):
    max_memory: int
    max_temp_disk: int


def _limits(args: argparse.Namespace) -> _Limits:
    """The engine's memory and temporary disk limits the command line gives."""
    limits: _Limits = {}
    if args.max_memory is not None:
        if args.max_memory < 1024 * 1024:
            raise UsageError(f"--max-memory must be at least 1MiB, got {args.max_memory} bytes")
        limits["max_memory"] = args.max_memory
    if args.max_temp_disk is not None:
        limits["max_temp_disk"] = args.max_temp_disk
    return limits


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, got {text}")
    return value


async def _query(args: argparse.Namespace) -> int:
    if args.follow and args.export:
        raise UsageError("query: give --follow or --export, not both")
    from ..query import engine_for  # DuckDB and pyarrow load only for this command

    allow = args.allow if args.allow is not None else ["."]
    started = time.monotonic()
    async with await _open(args) as conn:
        engine = engine_for(conn, allow=allow, **_limits(args))
        if args.follow:
            await _follow(engine, args)
            return 0
        progress = _ProgressBar() if sys.stderr.isatty() else None
        try:
            if args.export:
                await _in_thread(engine, _export, engine, args, progress, started)
                return 0
            max_rows = args.max_rows or None
            result = await _in_thread(
                engine,
                functools.partial(
                    engine.run,
                    args.sql,
                    max_rows=max_rows,
                    timeout=args.timeout,
                    progress=progress,
                    started=started,
                ),
            )
        finally:
            if progress is not None:
                progress.clear()
        with _destination(args.output) as out:
            _write(out, args.format, result.columns, result.rows, header=True)
        if args.stats:
            _print_stats(result.stats, result.elapsed_s)
    return 0


async def _open(args: argparse.Namespace) -> Any:
    """The store, opened read-only within ``--timeout``: a broker that takes connections but
    does not answer stops the query at its time limit, as any other wait does."""
    if args.timeout is None:
        return await open_store(args, read_only=True)
    from ..query.stopping import time_limit_message

    try:
        async with asyncio.timeout(args.timeout) as limit:
            return await open_store(args, read_only=True)
    except TimeoutError:
        if not limit.expired():
            raise
        doing = f" while connecting to {redact_url(store_url(args))}"
        raise QueryError(time_limit_message(args.timeout, doing)) from None


async def _in_thread(engine: Any, fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn`` in a thread, so that Ctrl-C (which cancels this coroutine) is heard at once;
    the query is then interrupted too."""
    try:
        return await asyncio.to_thread(fn, *args)
    except asyncio.CancelledError:
        engine.interrupt()
        raise


async def _follow(engine: Any, args: argparse.Namespace) -> None:
    follower = await _in_thread(engine, engine.follower, args.sql)
    where = "from its end" if follower.from_end else "from where the WHERE starts"
    print(f"following {follower.topic} {where}; Ctrl-C ends", file=sys.stderr, flush=True)
    header = True
    with _destination(args.output) as out:
        while True:
            result = await _in_thread(engine, follower.poll)
            if result is not None:
                _write(out, args.format, result.columns, result.rows, header=header)
                header = False
            await asyncio.sleep(0.5)


def _export(
    engine: Any, args: argparse.Namespace, progress: _ProgressBar | None, began: float
) -> None:
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    kind, path = args.export
    started = time.perf_counter()
    rows = 0
    writer: Any = None
    try:
        for batch in engine.stream(
            args.sql, timeout=args.timeout, progress=progress, started=began
        ):
            if kind == "csv":
                batch = _flat(batch)
            if writer is None:
                if kind == "parquet":
                    writer = pq.ParquetWriter(path, batch.schema)
                else:
                    writer = pcsv.CSVWriter(path, batch.schema)
            writer.write_batch(batch)
            rows += batch.num_rows
        if writer is None:  # no rows: still a valid, empty file
            path.write_bytes(b"")
    except (OSError, pa.ArrowException) as exc:
        raise QueryError(f"cannot write {str(path)!r}: {exc}") from exc
    finally:
        if writer is not None:
            writer.close()
        if progress is not None:
            progress.clear()
    print(
        f"wrote {rows:,} rows to {str(path)!r} ({kind}) in {time.perf_counter() - started:.2f} s",
        file=sys.stderr,
    )


def _flat(batch: Any) -> Any:
    """Nested columns (structs, lists, maps) as JSON text, which CSV can hold."""
    import pyarrow as pa

    arrays, fields = [], []
    for field, column in zip(batch.schema, batch.columns, strict=True):
        if pa.types.is_nested(field.type):
            texts = [None if v is None else _json_text(v) for v in column.to_pylist()]
            column = pa.array(texts, pa.string())
            field = pa.field(field.name, pa.string())
        arrays.append(column)
        fields.append(field)
    return pa.RecordBatch.from_arrays(arrays, schema=pa.schema(fields))


class _destination:
    """stdout, or the ``--output`` file (written as UTF-8)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.file: TextIO | None = None

    def __enter__(self) -> TextIO:
        if self.path is None:
            return sys.stdout
        try:
            self.file = open(self.path, "w", encoding="utf-8", newline="")
        except OSError as exc:
            raise QueryError(f"cannot write {str(self.path)!r}: {exc.strerror or exc}") from None
        return self.file

    def __exit__(self, *exc: object) -> None:
        if self.file is not None:
            self.file.close()


# --- rendering ----------------------------------------------------------------------------


def _write(
    out: TextIO, fmt: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], *, header: bool
) -> None:
    if fmt == "json":
        text = "".join(
            orjson.dumps(dict(zip(columns, row, strict=True)), default=_json_default).decode()
            + "\n"
            for row in rows
        )
    elif fmt == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        if header:
            writer.writerow(columns)
        writer.writerows([_cell(v, csv=True) for v in row] for row in rows)
        text = buffer.getvalue()
    else:
        table = render_table(columns, ([_cell(v) for v in row] for row in rows))
        if not header:
            table = table.split("\n", 1)[1] if "\n" in table else ""
        text = table + "\n" if table else ""
    out.write(text)
    out.flush()


def _cell(value: Any, *, csv: bool = False) -> Any:
    """A value as a table or CSV cell: numbers stay numbers, the rest becomes text."""
    if value is None:
        return "" if csv else None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return value
    if isinstance(value, dt.datetime):
        return _timestamp(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes_text(bytes(value))
    if isinstance(value, dict | list | tuple):
        return _json_text(value)
    return str(value)


def _timestamp(value: dt.datetime) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC)
        return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.isoformat(sep=" ")


def _bytes_text(data: bytes) -> str:
    try:
        return data.decode()
    except UnicodeDecodeError:
        return "base64:" + base64.b64encode(data).decode("ascii")


def _json_text(value: Any) -> str:
    return orjson.dumps(value, default=_json_default).decode()


def _json_default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        return _bytes_text(bytes(value))
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | dt.date | dt.time):
        return str(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"cannot show {type(value).__name__} as JSON")


def _print_stats(stats: Iterable[Any], elapsed_s: float) -> None:
    for s in stats:
        print(
            f"{s.topic}: read {s.segments_read} of {s.segments_total} segments, "
            f"{s.batches_read:,} batches, {s.records_read:,} of {s.records_total:,} records "
            f"({human_bytes(s.bytes_read)}) from {s.partitions_read} of {s.partitions_total} "
            f"partitions; bounds: {s.bounds}",
            file=sys.stderr,
        )
    print(f"query took {elapsed_s:.3f} s", file=sys.stderr)


class _ProgressBar:
    """``scanned 1,234,567 of 5,000,000 records  1.2M/s  ETA 3 s`` on stderr, redrawn at most
    ten times a second once a scan has run for half a second."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.started = time.monotonic()
        self.drawn = 0.0
        self.shown = False

    def begin(self, total: int) -> None:
        self.total += total

    def advance(self, records: int) -> None:
        self.done += records
        now = time.monotonic()
        elapsed = now - self.started
        if elapsed < 0.5 or now - self.drawn < 0.1:
            return
        self.drawn = now
        rate = self.done / elapsed if elapsed else 0.0
        line = f"scanned {self.done:,}"
        if self.total:
            line += f" of {self.total:,} records ({min(100, 100 * self.done // self.total)}%)"
        line += f"  {rate:,.0f} records/s"
        if self.total and rate and self.done < self.total:
            line += f"  ETA {(self.total - self.done) / rate:.0f} s"
        sys.stderr.write("\r" + line + "\033[K")
        sys.stderr.flush()
        self.shown = True

    def clear(self) -> None:
        if self.shown:
            sys.stderr.write("\r\033[K")
            sys.stderr.flush()
            self.shown = False
