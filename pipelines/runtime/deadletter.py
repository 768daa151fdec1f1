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
===========================  =====================================================

``millstream replay`` reads these headers to send dead letters back through a route.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from millstream.core.client import BatchDelivery, Producer
from millstream.core.errors import PipelineError
from millstream.core.record import Header, Record

__all__ = ["HEADER_PREFIX", "DeadLetterWriter", "Failure", "strip_dead_letter_headers"]

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
        return self.producer.send_batch(self.topic, records)

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


def _one_line(text: str, limit: int = 1000) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def strip_dead_letter_headers(headers: Sequence[Header]) -> tuple[Header, ...]:
    """The original headers of a dead letter (without the ``millstream.*`` ones)."""
    return tuple(h for h in headers if not h[0].startswith(HEADER_PREFIX))
