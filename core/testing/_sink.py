"""The conformance suite for sinks."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, ClassVar

import pytest

from ..connector import Sink
from ..event import Event
from ._common import ConformanceBase, canonical

__all__ = ["SinkConformance"]

TOPIC = "conformance"
EVENT_TIME_MS = (int(time.time()) - 3600) * 1000
"""The timestamp of the first event the checks write: an hour before the kit was imported,
so a store that applies retention by record timestamp (7 days by default in millstream and
Kafka) keeps the events, and the same within a run, so events written again are the same."""


class SinkConformance(ConformanceBase):
    """Checks that a sink keeps the :class:`~millstream.core.Sink` contract.

    Subclass it in a test module as ``TestMySink``, name the class in ``sink`` and implement
    :meth:`settings` and :meth:`read_back`::

        class TestJsonLines(SinkConformance):
            sink = JsonLinesSink

            def settings(self):
                return {"path": str(self.tmp_path / "out.jsonl")}

            def read_back(self):
                path = self.tmp_path / "out.jsonl"
                return [json.loads(line) for line in path.read_text().splitlines()]

    ``read_back`` returns what landed, one item per copy, each as :meth:`landed` gives it for
    the event written (its value, by default). It is called right after a ``flush`` with the
    sink still open, and again after the instances involved are closed; it is a plain
    function (called from inside the event loop, so it must not run one itself). Each check
    gets fresh ``self.tmp_path`` and ``self.monkeypatch`` and runs on its own event loop. The
    checks:

    - the Config model describes every setting, and :meth:`settings` are valid;
    - wrong settings are refused with a one-line error naming the setting;
    - once ``flush`` returns, the events are there (read back with the sink still open), and
      they still are after ``close`` and another instance's ``open`` and ``close`` (a sink
      must not truncate on open);
    - a crash between ``write`` and ``flush`` loses nothing: an instance writes and flushes
      some events, writes more, and is closed without flushing; a new instance is given the
      unflushed events again (as the runtime does after a restart) and flushes; every event
      is there, once each for an idempotent sink;
    - an idempotent sink keeps one copy of events written twice: the same events (values,
      keys, headers, timestamps) written again with other offsets, by the same instance and
      by a new one, as a route does after a restart (it writes its outputs again, and they
      are read back at new offsets). Among them is an event with other fields than the rest
      (:meth:`odd_event`), written beside the others and alone. A sink that keeps one copy
      per (topic, partition, offset) does not pass: it is at-least-once, not idempotent.
      Whether a sink is idempotent is asked of ``sink.idempotent_for(config)`` with the
      settings under test, so a sink idempotent in one mode only is checked in that mode;
    - an empty write and a flush with nothing written are harmless.

    A sink that keeps nothing (``keeps_events = False``) is checked for the contract only.
    """

    sink: ClassVar[type[Sink]]
    """The Sink class under test."""
    events: ClassVar[int] = 40
    """How many events each check writes."""
    keeps_events: ClassVar[bool] = True
    """False for a sink that discards what it is given: nothing is read back."""

    def settings(self) -> dict[str, Any]:
        """The sink's settings, as a pipeline file's ``config:`` would give them."""
        raise NotImplementedError(f"{type(self).__name__} must implement settings()")

    def read_back(self) -> list[Any]:
        """Everything that landed where the sink writes, one item per copy."""
        raise NotImplementedError(f"{type(self).__name__} must implement read_back()")

    def landed(self, event: Event) -> Any:
        """What :meth:`read_back` gives for ``event``: its value by default."""
        return event.value

    def make_events(self, count: int, start: int = 0) -> list[Event]:
        """The events the checks write: JSON values, keys and headers, as read from offsets
        ``start``… of partition 0 of topic ``conformance``; event ``n`` is stamped
        :data:`EVENT_TIME_MS` + ``n`` (recent, and the same each time it is made)."""
        return [
            Event(
                {"n": n, "text": f"event {n}", "even": n % 2 == 0, "tags": ["a", "b"][: n % 3]},
                key=f"key-{n}".encode(),
                headers=(("source", b"conformance"),),
                timestamp=EVENT_TIME_MS + n,
                topic=TOPIC,
                partition=0,
                offset=n,
            )
            for n in range(start, start + count)
        ]

    def odd_event(self, n: int) -> Event:
        """An event whose value has other fields than :meth:`make_events` gives (some of
        theirs missing, one of its own), as read from offset ``n``."""
        return Event(
            {"n": n, "text": f"event {n}", "note": "other fields"},
            key=f"key-{n}".encode(),
            headers=(("source", b"conformance"),),
            timestamp=EVENT_TIME_MS + n,
            topic=TOPIC,
            partition=0,
            offset=n,
        )

    def _connector(self) -> type[Sink]:
        return self.sink

    def _idempotent(self, settings: dict[str, Any]) -> bool:
        sink = self.sink
        return bool(sink.idempotent_for(self._config(settings)))

    # -- the checks ------------------------------------------------------------------------

    def test_config_describes_every_setting(self) -> None:
        self._check_config_model(self.settings())

    def test_invalid_settings_are_named(self) -> None:
        async def open_sink(sink: Sink) -> None:
            await sink.open()

        self._check_invalid_settings(self.settings(), open_sink)

    def test_flush_makes_writes_durable(self) -> None:
        settings = self.settings()
        events = self.make_events(self.events)
        half = len(events) // 2

        async def write() -> None:
            sink = await self._opened(settings)
            try:
                await sink.write(events[:half])
                await sink.write(events[half:])
                await sink.flush()
                self._expect(events, exactly=True, when="once flush() returned")
            finally:
                await sink.close()
            reopened = await self._opened(settings)
            await reopened.close()

        self._run(write())
        self._expect(events, exactly=True, when="after close() and another open()")

    def test_crash_between_write_and_flush_loses_nothing(self) -> None:
        settings = self.settings()
        events = self.make_events(self.events)
        half = len(events) // 2

        async def write() -> None:
            crashed = await self._opened(settings)
            try:
                await crashed.write(events[:half])
                await crashed.flush()
                await crashed.write(events[half:])
            finally:
                await crashed.close()  # no flush: what was not flushed may be lost
            again = await self._opened(settings)
            try:
                await again.write(events[half:])
                await again.flush()
            finally:
                await again.close()

        self._run(write())
        self._expect(events, exactly=self._idempotent(settings))

    def test_idempotent_sink_keeps_one_copy(self) -> None:
        settings = self.settings()
        if not self._idempotent(settings):
            pytest.skip(f"{self.sink.name} is not idempotent with these settings")
        events = self.make_events(self.events)
        events.insert(len(events) // 2, self.odd_event(len(events)))
        events = [replace(e, offset=n) for n, e in enumerate(events)]
        # the same events as they are read again after an upstream replay: new offsets
        later = [replace(e, offset=n) for n, e in enumerate(events, len(events))]
        again = [replace(e, offset=n) for n, e in enumerate(events[:3], 2 * len(events))]
        odd = events[len(events) // 2]
        alone = [replace(odd, offset=3 * len(events))]
        beside = [*again, replace(odd, offset=3 * len(events) + 1)]

        async def write() -> None:
            for batch in (events, later):
                sink = await self._opened(settings)
                try:
                    await sink.write(batch)
                    await sink.write(batch[:3])
                    await sink.flush()
                    await sink.write(alone)
                    await sink.flush()
                    await sink.write(beside)
                    await sink.flush()
                finally:
                    await sink.close()

        self._run(write())
        self._expect(events, exactly=True)

    def test_empty_write_and_flush(self) -> None:
        settings = self.settings()

        async def write() -> None:
            sink = await self._opened(settings)
            try:
                await sink.flush()
                await sink.write([])
                await sink.flush()
            finally:
                await sink.close()

        self._run(write())
        self._expect([], exactly=True)

    # -- helpers ----------------------------------------------------------------------------

    async def _opened(self, settings: dict[str, Any]) -> Sink:
        sink = self.sink(self._config(settings), self.context())
        await sink.open()
        return sink

    def _expect(self, events: Sequence[Event], *, exactly: bool, when: str = "") -> None:
        """Every event landed (once each when ``exactly``), and nothing else did."""
        if not self.keeps_events:
            return
        when = f" {when}" if when else ""
        wanted = Counter(canonical(self.landed(e)) for e in events)
        got = Counter(canonical(item) for item in self.read_back())
        missing = wanted - got
        assert not missing, (
            f"{sum(missing.values())} of {len(events)} events are not there{when}, the first: "
            f"{next(iter(missing)).decode()}"
        )
        extra = got - wanted
        unknown = [item for item in extra if item not in wanted]
        assert not unknown, f"there{when}, but never written: {unknown[0].decode()}"
        if exactly:
            assert not extra, (
                f"{sum(extra.values())} copies too many{when}, the first: "
                f"{next(iter(extra)).decode()}"
            )
