"""Dead letters: events that failed, written to a dead-letter topic with the reason.

A dead letter is the original record (its key and value bytes as they were read, or as a source
gave them) with the original headers, plus these headers, all UTF-8 text:

===========================  =====================================================
``millstream.pipeline``      the pipeline's name
``millstream.part``          the source, route or sink (``routes.clean``)
``millstream.step``          where it failed (``steps[0].filter``, ``decode``, ``write``…)
``millstream.error``         the error, one line
``millstream.topic``         the topic it was read from (absent for a source's event)
``millstream.partition``     its partition
``millstream.offset``        its offset
``millstream.attempts``      how many times it was tried
``millstream.truncated``     present when the value was cut to fit the topic: the
                             original length in bytes
===========================  =====================================================

``millstream replay`` reads these headers to send dead letters back through a route.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

from millstream.core.client import BatchDelivery, Producer, RecordMetadata
from millstream.core.errors import PipelineError, RecordTooLargeError
from millstream.core.record import Header, Record

__all__ = [
    "HEADER_PREFIX",
    "TRUNCATED_BYTES",
    "DeadLetterWriter",
    "Failure",
    "send_each",
    "strip_dead_letter_headers",
]

TRUNCATED_BYTES = 65_536
"""A dead letter too large for its topic keeps this many bytes of its value (and says so in a
``millstream.truncated`` header holding the original length)."""


def send_each(
    producer: Producer,
    topic: str,
    records: list[Record],
    refused: Callable[[int, Exception], None],
) -> list[BatchDelivery]:
    """Send ``records`` to ``topic`` in one batch; if the producer refuses the batch because a
    record is too large, send them one by one and report each refused record's index to
    ``refused`` instead of failing the rest."""
    if not records:
        return []
    try:
        return [producer.send_batch(topic, records)]
    except RecordTooLargeError:
        pass
    deliveries = []
    for index, record in enumerate(records):
        try:
            deliveries.append(producer.send_batch(topic, [record]))
        except RecordTooLargeError as exc:
            refused(index, exc)
    return deliveries


HEADER_PREFIX = "millstream."


@dataclass(slots=True)
class Failure:
    """One failed record: what it was, where it came from, where and why it failed."""

    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    timestamp: int
    step: str
    reason: str
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    attempts: int = 1

    @property
    def place(self) -> str:
        """`` (record TOPIC-PARTITION@OFFSET)`` for a record read from the log, else empty."""
        if self.topic is None:
            return ""
        return f" (record {self.topic}-{self.partition}@{self.offset})"


class DeadLetterWriter:
    """Writes the failures of one part (``routes.clean``) of one pipeline to its topic.

    With no topic (neither the part nor the pipeline names one), a failure cannot be kept, so
    :meth:`write` raises :class:`PipelineError` and the pipeline stops rather than lose it.
    """

    def __init__(self, producer: Producer, pipeline: str, part: str, topic: str | None) -> None:
        self.producer = producer
        self.pipeline = pipeline
        self.part = part
        self.topic = topic

    def write(self, failures: Sequence[Failure]) -> BatchDelivery | None:
        """Queue ``failures`` for the dead-letter topic; await the result for the acks."""
        if not failures:
            return None
        if self.topic is None:
            first = failures[0]
            raise PipelineError(
                f"{self.part}: an event failed in {first.step}{first.place}: {first.reason}; no "
                "dead_letter topic is set (set `dead_letter:` on the pipeline or on this part), "
                "so the pipeline stops rather than lose it"
            )
        records = [
            Record(f.key, f.value, f.headers + self._headers(f), f.timestamp) for f in failures
        ]
        try:
            return self.producer.send_batch(self.topic, records)
        except RecordTooLargeError:
            return _SentOneByOne([self._send_cut(record) for record in records])

    def _send_cut(self, record: Record) -> BatchDelivery:
        """Send one dead letter, its value cut to TRUNCATED_BYTES if the topic refuses it."""
        assert self.topic is not None
        try:
            return self.producer.send_batch(self.topic, [record])
        except RecordTooLargeError:
            value = record.value or b""
            headers = (*record.headers, ("millstream.truncated", str(len(value)).encode()))
            cut = Record(record.key, value[:TRUNCATED_BYTES], headers, record.timestamp)
            return self.producer.send_batch(self.topic, [cut])

    def _headers(self, f: Failure) -> tuple[Header, ...]:
        headers: list[Header] = [
            ("millstream.pipeline", self.pipeline.encode()),
            ("millstream.part", self.part.encode()),
            ("millstream.step", f.step.encode()),
            ("millstream.error", _one_line(f.reason).encode()),
        ]
        if f.topic is not None:
            headers += [
                ("millstream.topic", f.topic.encode()),
                ("millstream.partition", str(f.partition).encode()),
                ("millstream.offset", str(f.offset).encode()),
            ]
        headers.append(("millstream.attempts", str(f.attempts).encode()))
        return tuple(headers)


class _SentOneByOne(BatchDelivery):
    """Dead letters that had to be sent one by one, as one delivery."""

    def __init__(self, deliveries: list[BatchDelivery]) -> None:
        self._deliveries = deliveries

    def done(self) -> bool:
        return all(d.done() for d in self._deliveries)

    def __await__(self) -> Generator[Any, None, list[RecordMetadata]]:
        out: list[RecordMetadata] = []
        for delivery in self._deliveries:
            out += yield from delivery.__await__()
        return out


def _one_line(text: str, limit: int = 1000) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def strip_dead_letter_headers(headers: Sequence[Header]) -> tuple[Header, ...]:
    """The original headers of a dead letter (without the ``millstream.*`` ones)."""
    return tuple(h for h in headers if not h[0].startswith(HEADER_PREFIX))
