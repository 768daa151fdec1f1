"""What the broker counts while it serves: :class:`BrokerMetrics`, rendered as Prometheus text.

The broker owns one :class:`BrokerMetrics`. The connection loop tells it of every connection
opened and closed and of every request answered (its API key and how long it took); the log
handlers tell it of the batches produced and fetched, per topic, counting records from the batch
headers (the records themselves are never parsed). Everything runs on the broker's event loop,
so the counters are plain dicts.

:meth:`BrokerMetrics.render` writes the Prometheus text exposition format 0.0.4, adding the
gauges the caller measures at scrape time (group count, log size per partition).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..log.batch import BATCH_OVERHEAD, HEADER_SIZE, read_header
from ..protocol import ApiKey

__all__ = ["CONTENT_TYPE", "LATENCY_BUCKETS_S", "BrokerMetrics", "Gauge", "batch_totals"]

LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
"""Upper bounds (seconds) of the request latency histogram's buckets; ``+Inf`` follows."""

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The media type of :meth:`BrokerMetrics.render`'s text."""


def batch_totals(records: bytes | bytearray | memoryview | None) -> tuple[int, int]:
    """``(bytes, records)`` of a run of record batches, from their headers alone.

    A short or truncated tail is counted in bytes only."""
    if not records:
        return 0, 0
    size = len(records)
    count = 0
    pos = 0
    while pos + HEADER_SIZE <= size:
        header = read_header(records, pos)
        count += header.record_count if header.record_count > 0 else 0
        pos += max(header.batch_length + BATCH_OVERHEAD, HEADER_SIZE)
    return size, count


@dataclass
class _Histogram:
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS_S))
    count: int = 0
    total: float = 0.0

    def observe(self, seconds: float) -> None:
        i = bisect.bisect_left(LATENCY_BUCKETS_S, seconds)
        if i < len(self.buckets):
            self.buckets[i] += 1
        self.count += 1
        self.total += seconds


@dataclass(frozen=True)
class Gauge:
    """A gauge measured at scrape time: its name, help, and ``(labels, value)`` samples."""

    name: str
    help: str
    samples: Iterable[tuple[dict[str, str], float]]


@dataclass
class _TopicTraffic:
    bytes_in: int = 0
    records_in: int = 0
    bytes_out: int = 0
    records_out: int = 0


class BrokerMetrics:
    """The broker's counters: traffic per topic, request latency per API, connections."""

    def __init__(self) -> None:
        self._topics: dict[str, _TopicTraffic] = {}
        self._latency: dict[int, _Histogram] = {}
        self.connections_open = 0
        """Client connections open now."""
        self.connections_opened = 0
        """Client connections accepted since the broker started."""

    # --- told by the broker ------------------------------------------------------------------

    def connection_opened(self) -> None:
        self.connections_open += 1
        self.connections_opened += 1

    def connection_closed(self) -> None:
        self.connections_open = max(0, self.connections_open - 1)

    def request_answered(self, api_key: int, seconds: float) -> None:
        """One request of ``api_key`` took ``seconds`` from decoding to its response."""
        histogram = self._latency.get(api_key)
        if histogram is None:
            histogram = self._latency[api_key] = _Histogram()
        histogram.observe(seconds)

    def produced(self, topic: str, records: bytes | bytearray | memoryview | None) -> None:
        """The batches ``records`` were appended to ``topic``."""
        size, count = batch_totals(records)
        traffic = self._traffic(topic)
        traffic.bytes_in += size
        traffic.records_in += count

    def fetched(self, response: Any) -> Any:
        """Count the batches of a Fetch ``response`` as sent; returns ``response``."""
        for topic in response.responses:
            for partition in topic.partitions:
                if partition.records:
                    size, count = batch_totals(partition.records)
                    traffic = self._traffic(topic.topic)
                    traffic.bytes_out += size
                    traffic.records_out += count
        return response

    def records_out(self, topic: str, size: int, count: int) -> None:
        """``count`` records of ``size`` bytes were sent from ``topic`` by another way than
        Fetch (the REST API)."""
        traffic = self._traffic(topic)
        traffic.bytes_out += size
        traffic.records_out += count

    def records_in(self, topic: str, size: int, count: int) -> None:
        """``count`` records of ``size`` bytes were appended to ``topic`` by another way than
        Produce (the REST API)."""
        traffic = self._traffic(topic)
        traffic.bytes_in += size
        traffic.records_in += count

    def topic_deleted(self, topic: str) -> None:
        """Forget a deleted topic's counters."""
        self._topics.pop(topic, None)

    def _traffic(self, topic: str) -> _TopicTraffic:
        traffic = self._topics.get(topic)
        if traffic is None:
            traffic = self._topics[topic] = _TopicTraffic()
        return traffic

    # --- read --------------------------------------------------------------------------------

    def traffic(self, topic: str) -> tuple[int, int, int, int]:
        """``(bytes in, records in, bytes out, records out)`` of ``topic`` so far."""
        t = self._topics.get(topic, _TopicTraffic())
        return t.bytes_in, t.records_in, t.bytes_out, t.records_out

    def render(self, gauges: Iterable[Gauge] = ()) -> str:
        """Every counter, and ``gauges``, in the Prometheus text format 0.0.4."""
        out: list[str] = []
        topics = sorted(self._topics.items())
        for name, help_text, attr in (
            ("millstream_broker_bytes_in_total", "Bytes of record batches appended", "bytes_in"),
            ("millstream_broker_records_in_total", "Records appended", "records_in"),
            ("millstream_broker_bytes_out_total", "Bytes of record batches sent", "bytes_out"),
            ("millstream_broker_records_out_total", "Records sent", "records_out"),
        ):
            _head(out, name, help_text + ", per topic.", "counter")
            for topic, traffic in topics:
                out.append(f"{name}{_labels({'topic': topic})} {getattr(traffic, attr)}")
        name = "millstream_broker_request_duration_seconds"
        help_text = "Time from a Kafka request's arrival to its response, per API."
        _head(out, name, help_text, "histogram")
        for key, histogram in sorted(self._latency.items()):
            api = _api_name(key)
            cumulative = 0
            for bound, n in zip(LATENCY_BUCKETS_S, histogram.buckets, strict=True):
                cumulative += n
                labels = _labels({"api": api, "le": _number(bound)})
                out.append(f"{name}_bucket{labels} {cumulative}")
            out.append(f"{name}_bucket{_labels({'api': api, 'le': '+Inf'})} {histogram.count}")
            out.append(f"{name}_sum{_labels({'api': api})} {_number(histogram.total)}")
            out.append(f"{name}_count{_labels({'api': api})} {histogram.count}")
        _head(out, "millstream_broker_connections", "Client connections open now.", "gauge")
        out.append(f"millstream_broker_connections {self.connections_open}")
        name = "millstream_broker_connections_opened_total"
        _head(out, name, "Client connections accepted since the broker started.", "counter")
        out.append(f"{name} {self.connections_opened}")
        for gauge in gauges:
            _head(out, gauge.name, gauge.help, "gauge")
            for sample_labels, value in gauge.samples:
                out.append(f"{gauge.name}{_labels(sample_labels)} {_number(value)}")
        return "\n".join(out) + "\n"


def _api_name(key: int) -> str:
    try:
        return ApiKey(key).name
    except ValueError:
        return str(key)


def _head(out: list[str], name: str, help_text: str, kind: str) -> None:
    out.append(f"# HELP {name} {help_text}")
    out.append(f"# TYPE {name} {kind}")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{k}="{_escape(str(v))}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, int) or float(value).is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(float(value))
    return repr(float(value))
