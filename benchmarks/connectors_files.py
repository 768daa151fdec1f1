"""The file connector: file source → topic on the embedded store.

- **file source → topic, lines**: a file of N lines of about 100 bytes, read by the ``file``
  source (``mode: once``, ``format: lines``) and written by the pipeline runtime into a
  ``text`` topic of the embedded store, positions acknowledged as in any run; against reading
  the same file line by line in plain Python (``for line in f``, counting), in the same round.
- **file source → topic, jsonl**: the same with ``format: jsonl`` lines into a ``json`` topic
  (each line parsed by the source and encoded again by the runtime), against the same baseline
  over the jsonl file.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from pathlib import Path

import orjson

from millstream.core.client import connect
from millstream.core.plugins import get_registry
from millstream.pipelines.runtime import Runtime, Stats, tune_gc
from millstream.pipelines.spec import load_pipeline

from ._harness import Result, median

TARGET = 200_000

PIPELINE = """
pipeline: bench-files
dead_letter: dead
topics:
  lines: {{partitions: 4, codec: {codec}}}
  dead: {{partitions: 1}}
sources:
  file:
    connector: file
    config: {{path: {path}, mode: once, format: {format}, headers: {headers}}}
    to: lines
"""


def _line(i: int, fmt: str) -> bytes:
    """About 100 bytes: a log line or a JSON reading."""
    if fmt == "jsonl":
        reading = {
            "device": f"dev-{i % 500:03d}",
            "seq": i,
            "temp": 20.5 + i % 17,
            "ok": True,
            "site": "north-building-4",
            "unit": "celsius",
        }
        return orjson.dumps(reading) + b"\n"
    stamp = (i // 60 % 60, i % 60, i % 1000)
    return b"2024-06-01T12:%02d:%02d.%03dZ INFO  api-gateway  GET /v1/orders/%08d 200 %4d ms " % (
        *stamp,
        i,
        i % 977,
    ) + b"user=u%05d host=web-%d\n" % (i % 50_000, i % 8)


def _write_file(path: Path, records: int, fmt: str) -> None:
    with path.open("wb") as f:
        chunk = 10_000
        for start in range(0, records, chunk):
            f.write(b"".join(_line(i, fmt) for i in range(start, min(records, start + chunk))))


async def _through_pipeline(
    work: Path, data: Path, fmt: str, records: int, headers: list[str]
) -> tuple[float, float]:
    """Lines per second through the pipeline, and per second of the event loop's CPU."""
    codec = "text" if fmt == "lines" else "json"
    spec = work / "pipeline.yaml"
    spec.write_text(
        PIPELINE.format(
            codec=codec, path=data.name, format=fmt, headers=orjson.dumps(headers).decode()
        )
    )
    pipeline = load_pipeline(spec)
    async with await connect(f"file:{work / 'store'}") as conn:
        runtime = Runtime([pipeline], conn, get_registry(), Stats())
        await runtime.prepare()
        start, cpu = time.perf_counter(), time.thread_time()
        ending = await runtime.run(asyncio.Event())
        elapsed, cpu = time.perf_counter() - start, time.thread_time() - cpu
        part = runtime.stats.find("source", "file")
        assert ending == "drained" and part is not None and part.events_out == records, (
            f"{ending}: {part.events_out if part else None} of {records} lines written"
        )
    return records / elapsed, records / cpu


def _plain_python(data: Path, records: int) -> float:
    start = time.perf_counter()
    count = 0
    with data.open("rb") as f:
        for _ in f:
            count += 1
    elapsed = time.perf_counter() - start
    assert count == records
    return records / elapsed


def file_to_topic(records: int, runs: int, fmt: str, headers: list[str] | None = None) -> Result:
    chosen = ["file"] if headers is None else headers
    rates, bases, cpus = [], [], []
    tune_gc()  # as `millstream run` does
    for _ in range(runs):
        work = Path(tempfile.mkdtemp(prefix="millstream-bench-"))
        try:
            data = work / f"input.{fmt}"
            _write_file(data, records, fmt)
            bases.append(_plain_python(data, records))
            rate, cpu = asyncio.run(_through_pipeline(work, data, fmt, records, chosen))
            rates.append(rate)
            cpus.append(cpu)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    rate, base, cpu = median(rates), median(bases), median(cpus)
    size = len(_line(records // 2, fmt))
    setting = (
        "default settings" if headers is None else f"headers: {orjson.dumps(headers).decode()}"
    )
    return Result(
        f"file source → topic ({fmt}, {setting}): {records:,} lines of ~{size} bytes",
        "lines/s",
        rate,
        f"≥ {TARGET:,} lines/s",
        rate >= TARGET,
        base,
        "`for line in f` over the same file, plain Python",
        rates,
        bases,
        note=(
            f"{1e6 / rate:.2f} µs per line from reading the file to the log's acknowledgement; "
            f"the event loop's thread used {1e6 / cpu:.2f} µs of CPU per line ({cpu:,.0f} "
            "lines per CPU-second: the rate on an idle core), the rest is waiting for the "
            "group commit's fsync and, on a busy machine, for a core. The runtime encodes each "
            "value with the topic's codec and each record's headers, builds the records and "
            "produces them, and stores the position per acknowledged batch; the baseline only "
            "splits lines."
        ),
    )


def run(runs: int, records: int) -> list[Result]:
    return [
        file_to_topic(records, runs, "lines"),
        file_to_topic(records, runs, "lines", headers=[]),
        file_to_topic(records, runs, "jsonl"),
    ]


if __name__ == "__main__":  # python -m benchmarks.connectors_files [records]
    import sys

    count = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    for result in run(3, count):
        print(
            f"{result.name}: {result.value:,.0f} {result.unit} "
            f"(baseline {result.baseline:,.0f}; target {result.target}; met {result.met}) "
            f"runs {[round(r) for r in result.runs]}; {result.note}"
        )
