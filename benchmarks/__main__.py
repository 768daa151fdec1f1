"""``python -m benchmarks [suite ...] [--runs N] [--records N]``: run, print, record."""

from __future__ import annotations

import argparse
import sys

from . import (
    broker,
    connectors_db,
    connectors_files,
    connectors_http,
    connectors_mqtt,
    embedded,
    expressions,
    pipelines,
    protocol,
    query,
)
from ._harness import render, write_section

SUITES = {
    "embedded": (
        "Embedded store (append, read, CLI produce, latency)",
        embedded.run,
    ),
    "pipelines": (
        "Pipelines (route throughput, source-to-sink latency, memory with a blocked sink)",
        pipelines.run,
    ),
    "expressions": ("Pipeline expressions and steps (filter, set)", expressions.run),
    "connectors-files": ("Connectors: file source into a topic", connectors_files.run),
    "connectors-http": (
        "Connectors: http-server source (NDJSON batches, single-event POSTs)",
        connectors_http.run,
    ),
    "connectors-mqtt": (
        "Connectors: MQTT source at QoS 1 into the embedded store",
        connectors_mqtt.run,
    ),
    "connectors-db": (
        "Connectors: database sinks (sqlite upsert, postgres COPY)",
        connectors_db.run,
    ),
    "protocol": ("Kafka protocol codec (decode Produce, encode Fetch and Metadata)", protocol.run),
    "query": ("Query engine (SQL over a topic, time-window push-down)", query.run),
    "broker": (
        "Broker (Kafka clients and our network client over the Kafka protocol)",
        broker.run,
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Run benchmarks beside their baselines; write the medians to BENCHMARKS.md.",
        epilog="example: python -m benchmarks embedded --runs 5 --records 1000000",
    )
    parser.add_argument("suites", nargs="*", choices=[*SUITES, []], default=[])
    parser.add_argument("--runs", type=int, default=5, help="rounds per benchmark (median)")
    parser.add_argument("--records", type=int, default=1_000_000, help="records per round")
    parser.add_argument(
        "--no-write", action="store_true", help="print only; leave BENCHMARKS.md as it is"
    )
    args = parser.parse_args(argv)
    for suite in args.suites or list(SUITES):
        title, fn = SUITES[suite]
        print(f"== {title}: {args.runs} runs of {args.records:,} records", file=sys.stderr)
        results = fn(args.runs, args.records)
        how = f"make bench (python -m benchmarks {suite} --runs {args.runs})"
        section = render(suite, title, results, args.runs, how)
        print(section)
        if not args.no_write:
            write_section(suite, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
