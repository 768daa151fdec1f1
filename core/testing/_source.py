"""The conformance suite for sources."""

from __future__ import annotations

import asyncio
import tracemalloc
from typing import Any, ClassVar

import orjson
import pytest

from ..connector import Source, SourceBatch
from ..event import Event
from ._common import ConformanceBase, canonical

__all__ = ["SourceConformance"]


class SourceConformance(ConformanceBase):
    """Checks that a source keeps the :class:`~millstream.core.Source` contract.

    Subclass it in a test module as ``TestMySource``, name the class in ``source`` and
    implement :meth:`prepare`::

        class TestLines(SourceConformance):
            source = LinesSource

            def prepare(self, count):
                folder = self.tmp_path / "in"
                folder.mkdir()
                (folder / "a.txt").write_text("".join(f"line {i}\\n" for i in range(count)))
                return {"path": str(folder), "batch_size": 7}

    Each check gets fresh ``self.tmp_path`` and ``self.monkeypatch`` (pytest's fixtures)
    and runs on its own event loop, so the suite needs no asyncio plugin. The checks:

    - the Config model describes every setting, and the prepared settings are valid;
    - wrong settings are refused with a one-line error naming the setting;
    - a bounded source ends: ``read`` returns None after exactly the prepared events;
    - a resumable source, restarted from its last acknowledged position, continues with the
      first event after it: nothing skipped, nothing acknowledged read again; its positions
      survive a round trip through JSON (the runtime stores them so);
    - a read cancelled while it waits, then ``close``, finish in time, and a resumable source
      restarted after that still misses nothing;
    - backpressure: a batch is at most ``max_batch`` events, and between reads the source
      does not keep reading into memory.
    """

    source: ClassVar[type[Source]]
    """The Source class under test."""
    events: ClassVar[int] = 60
    """How many events :meth:`prepare` is asked for in most checks."""
    backpressure_events: ClassVar[int] = 20_000
    """How many events :meth:`prepare` is asked for in the backpressure check."""
    max_batch: ClassVar[int] = 10_000
    """The most events one ``read`` may return."""
    idle_growth_limit: ClassVar[int] = 4 * 1024 * 1024
    """Bytes a source may allocate while nobody reads it (``idle_seconds``)."""
    idle_seconds: ClassVar[float] = 0.3
    read_timeout: ClassVar[float] = 10.0
    """Seconds one ``read`` may take when events are there to read."""

    def prepare(self, count: int) -> dict[str, Any]:
        """Arrange for ``count`` events to be there to read (write files, fill a channel,
        point ``sys.stdin`` somewhere…) and return the source's settings, as a pipeline
        file's ``config:`` would give them. A source that makes its own events is given
        settings that make ``count``. Batches should be small enough (a few events) that
        ``count`` events take several of them."""
        raise NotImplementedError(f"{type(self).__name__} must implement prepare(count)")

    def identity(self, event: Event) -> Any:
        """What makes an event the same event in two runs: key, value and headers by
        default; drop what legitimately differs between runs (a wall-clock field)."""
        return (event.key, event.value, event.headers)

    def _connector(self) -> type[Source]:
        return self.source

    # -- the checks ------------------------------------------------------------------------

    def test_config_describes_every_setting(self) -> None:
        self._check_config_model(self.prepare(self.events))

    def test_invalid_settings_are_named(self) -> None:
        async def open_source(source: Source) -> None:
            await source.open(None)

        self._check_invalid_settings(self.prepare(self.events), open_source)

    def test_bounded_source_ends(self) -> None:
        settings = self.prepare(self.events)
        source = self._new(settings)
        if not source.bounded:
            pytest.skip(f"{self.source.name} is not bounded with the prepared settings")

        async def check() -> None:
            await source.open(None)
            try:
                got = await self._read(source, None)
                assert len(got) == self.events, (
                    f"read returned None after {len(got)} events; {self.events} were prepared"
                )
                assert await self._next(source) is None, "read gave more after returning None"
            finally:
                await source.close()

        self._run(check())

    def test_restart_resumes_after_the_acknowledged_position(self) -> None:
        if not self.source.resumable:
            pytest.skip(f"{self.source.name} is not resumable")
        settings = self.prepare(self.events)

        async def check() -> None:
            reference = await self._reference(settings)
            first = self._new(settings)
            await first.open(None)
            taken: list[Event] = []
            acked, position = 0, None
            try:
                while len(taken) < self.events // 3:
                    batch = await self._next(first)
                    assert batch is not None, f"ended after {len(taken)} of {self.events}"
                    taken.extend(batch.events)
                    position = _round_trip(batch.position)
                    acked = len(taken)
                    await first.ack(batch.position)
                assert acked < self.events, (
                    f"{self.events} events came in one batch; make prepare() set a smaller "
                    "batch so that a restart can begin in the middle"
                )
                await self._next(first)  # read, never acknowledged: must come again
            finally:
                await first.close()
            second = self._new(settings)
            await second.open(position)
            try:
                rest = await self._read(second, self.events - acked)
            finally:
                await second.close()
            got = [self.identity(e) for e in taken[:acked] + rest]
            _same_events(got, reference, acked)

        self._run(check())

    def test_cancelled_read_then_close(self) -> None:
        settings = self.prepare(self.events)

        async def check() -> None:
            reference = await self._reference(settings) if self.source.resumable else None
            source = self._new(settings)
            await source.open(None)
            position, acked = None, 0
            try:
                batch = await self._next(source)
                assert batch is not None, "a source with prepared events ended at once"
                acked, position = len(batch.events), _round_trip(batch.position)
                await source.ack(batch.position)
                reading = asyncio.ensure_future(source.read())
                await asyncio.sleep(0)
                reading.cancel()
                await asyncio.wait([reading])  # done: cancelled, or it had its batch
            finally:
                await asyncio.wait_for(source.close(), self.read_timeout)
            if reference is None:
                return
            again = self._new(settings)
            await again.open(position)
            try:
                rest = await self._read(again, self.events - acked)
            finally:
                await again.close()
            got = reference[:acked] + [self.identity(e) for e in rest]
            _same_events(got, reference, acked)

        self._run(check())

    def test_read_respects_backpressure(self) -> None:
        settings = self.prepare(self.backpressure_events)

        async def check() -> None:
            source = self._new(settings)
            await source.open(None)
            try:
                batch = await self._next(source)
                assert batch is not None and batch.events, "the first read gave nothing"
                assert len(batch.events) <= self.max_batch, (
                    f"one read returned {len(batch.events)} events; at most {self.max_batch}"
                )
                del batch
                tracemalloc.start()
                try:
                    await asyncio.sleep(self.idle_seconds)
                    grown, _ = tracemalloc.get_traced_memory()
                finally:
                    tracemalloc.stop()
                assert grown <= self.idle_growth_limit, (
                    f"while nobody read it for {self.idle_seconds}s the source took "
                    f"{grown} bytes more; it must read only when read() is called"
                )
                batch = await self._next(source)
                assert batch is None or len(batch.events) <= self.max_batch
            finally:
                await source.close()

        self._run(check())

    # -- helpers ----------------------------------------------------------------------------

    def _new(self, settings: dict[str, Any]) -> Source:
        return self.source(self._config(settings), self.context())

    async def _next(self, source: Source) -> SourceBatch | None:
        try:
            batch = await asyncio.wait_for(source.read(), self.read_timeout)
        except TimeoutError:
            raise AssertionError(
                f"read() took more than {self.read_timeout}s with events left to read"
            ) from None
        if batch is not None:
            assert isinstance(batch, SourceBatch), f"read() returned {batch!r}"
            assert all(isinstance(e, Event) for e in batch.events), "a batch holds a non-Event"
        return batch

    async def _read(self, source: Source, count: int | None) -> list[Event]:
        """Events until ``count`` (None: until the source ends)."""
        got: list[Event] = []
        while count is None or len(got) < count:
            batch = await self._next(source)
            if batch is None:
                break
            got.extend(batch.events)
        return got

    async def _reference(self, settings: dict[str, Any]) -> list[Any]:
        """Every prepared event, read in one run from the start."""
        source = self._new(settings)
        await source.open(None)
        try:
            events = await self._read(source, self.events)
        finally:
            await source.close()
        assert len(events) == self.events, f"{len(events)} events of {self.events} prepared"
        return [self.identity(e) for e in events]


def _round_trip(position: Any) -> Any:
    """``position`` as the runtime gives it back: stored as JSON and read again."""
    try:
        return orjson.loads(orjson.dumps(position))
    except TypeError as exc:
        raise AssertionError(f"position {position!r} is not JSON: {exc}") from None


def _same_events(got: list[Any], reference: list[Any], acked: int) -> None:
    if got == reference:
        return
    wanted = [canonical(x) for x in reference]
    for i, (a, b) in enumerate(zip(got, reference, strict=False)):
        if a != b:
            what = "repeated or out of place" if canonical(a) in wanted[:i] else "not expected"
            raise AssertionError(
                f"after a restart at event {acked}, event {i} is {what}: got {a!r}, wanted {b!r}"
            )
    raise AssertionError(
        f"after a restart at event {acked}: {len(got)} events, wanted {len(reference)}"
    )
