"""The generator source: sensor readings, deterministic from the seed, resumable, paced."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from millstream.connectors.generator import GeneratorConfig, GeneratorSource
from millstream.core import ConnectorContext, Event
from millstream.core.testing import SourceConformance


class TestGeneratorConformance(SourceConformance):
    source = GeneratorSource

    def prepare(self, count: int) -> dict[str, Any]:
        return {"count": count, "rate": 0, "seed": 3, "faulty": 0.2, "batch_size": 7}

    def identity(self, event: Event) -> Any:
        return {k: v for k, v in event.value.items() if k != "ts"}  # ts is the wall clock

    def invalid_settings(self) -> list[tuple[dict[str, Any], str]]:
        return [({"rate": -1}, "rate"), ({"faulty": 1.5}, "faulty"), ({"devices": 0}, "devices")]


def read_all(settings: dict[str, Any], position: Any = None) -> list[Event]:
    async def run() -> list[Event]:
        source = GeneratorSource(GeneratorConfig(**settings), ConnectorContext("p", "sensors"))
        await source.open(position)
        events: list[Event] = []
        while (batch := await source.read()) is not None:
            events.extend(batch.events)
        await source.close()
        return events

    return asyncio.run(run())


def without_ts(events: list[Event]) -> list[dict[str, Any]]:
    return [{k: v for k, v in e.value.items() if k != "ts"} for e in events]


def test_a_reading_has_the_sensor_fields() -> None:
    [event] = read_all({"count": 1, "rate": 0})
    value = event.value
    assert set(value) == {"device_id", "temp", "humidity", "battery", "location", "ts"}
    assert value["device_id"] == "sensor-0000"
    assert isinstance(value["temp"], float) and -30 < value["temp"] < 60
    assert 0 <= value["humidity"] <= 100 and 0 <= value["battery"] <= 100
    assert set(value["location"]) == {"lat", "lon"}
    assert abs(value["ts"] - time.time() * 1000) < 60_000
    assert event.timestamp == value["ts"]


def test_devices_take_turns_and_count_bounds_the_source() -> None:
    events = read_all({"count": 25, "devices": 5, "rate": 0, "batch_size": 4})
    assert [e.value["device_id"] for e in events[:6]] == [
        "sensor-0000",
        "sensor-0001",
        "sensor-0002",
        "sensor-0003",
        "sensor-0004",
        "sensor-0000",
    ]
    assert len(events) == 25


def test_the_same_seed_gives_the_same_readings_and_another_seed_others() -> None:
    settings = {"count": 300, "rate": 0, "seed": 11, "faulty": 0.1}
    assert without_ts(read_all(settings)) == without_ts(read_all(settings))
    assert without_ts(read_all({**settings, "seed": 12})) != without_ts(read_all(settings))


def test_a_restart_at_any_position_continues_exactly() -> None:
    settings = {"count": 700, "rate": 0, "seed": 5, "faulty": 0.3, "batch_size": 100}
    whole = without_ts(read_all(settings))
    for position in (1, 255, 256, 257, 599):
        assert without_ts(read_all(settings, position)) == whole[position:], position


def test_faulty_readings_are_missing_or_absurd_in_about_the_fraction_asked() -> None:
    events = read_all({"count": 4000, "rate": 0, "faulty": 0.25, "drift": 5})
    temps = [e.value["temp"] for e in events]
    faulty = [t for t in temps if t is None or not -50 < t < 150]
    assert 0.2 < len(faulty) / len(temps) < 0.3
    assert None in faulty and any(t is not None for t in faulty)
    healthy = [e.value["temp"] for e in read_all({"count": 4000, "rate": 0})]
    assert all(t is not None and -50 < t < 150 for t in healthy)


def test_drift_moves_a_device_around_its_base() -> None:
    calm = read_all({"count": 2000, "devices": 1, "rate": 0, "drift": 0})
    drifting = read_all({"count": 2000, "devices": 1, "rate": 0, "drift": 10})

    def spread(events: list[Event]) -> float:
        temps = [e.value["temp"] for e in events]
        return max(temps) - min(temps)

    assert spread(calm) <= 1.0  # the noise alone
    assert spread(drifting) > 10


def test_rate_paces_the_events() -> None:
    started = time.monotonic()
    events = read_all({"count": 60, "rate": 200, "batch_size": 500})
    elapsed = time.monotonic() - started
    assert len(events) == 60
    assert 0.25 <= elapsed < 2.0  # 60 events at 200/s: 0.3 s


def test_a_position_that_is_not_a_count_is_refused() -> None:
    async def run() -> str:
        source = GeneratorSource(GeneratorConfig(), ConnectorContext("p", "sensors"))
        try:
            await source.open({"offset": 3})
        except Exception as exc:
            return str(exc)
        return ""

    assert "a position is a count of events" in asyncio.run(run())
