"""The ``generator`` source: readings of simulated sensor devices, for demos and load tests.

Every event is a reading of one of ``devices`` devices, taken in turn::

    {"device_id": "sensor-0003", "temp": 21.4, "humidity": 48.1, "battery": 97.2,
     "location": {"lat": 48.85341, "lon": 2.3488}, "ts": 1732590000123}

Event ``n`` is a function of ``seed`` and ``n`` alone (each device has a base temperature that
wanders by up to ``drift`` degrees along a slow wave, a battery that drains, a fixed place),
so the source is *resumable*: its position is the number of events made, and a restart from
it continues exactly where the acknowledged events end. Only ``ts``, the wall-clock time the
reading was made (also the event's timestamp), differs from one run to the next.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections.abc import Callable
from typing import Any, ClassVar

from pydantic import Field

from millstream.core import (
    ConnectorConfig,
    ConnectorContext,
    ConnectorError,
    Event,
    Source,
    SourceBatch,
)

__all__ = ["GeneratorConfig", "GeneratorSource"]

_CHUNK = 256
"""Events share one random stream per chunk of this many, so that event n can be made without
making the n before it."""
_DRAWS = 4
"""Random numbers drawn per event, faulty or not, so that every event's draws are at a fixed
place in its chunk's stream."""


class GeneratorConfig(ConnectorConfig):
    devices: int = Field(10, ge=1, le=1_000_000, description="how many devices take turns")
    rate: float = Field(
        100.0, ge=0, description="events per second, all devices together; 0: as fast as possible"
    )
    count: int | None = Field(
        None, ge=0, description="how many events to make in all, then end; null: never end"
    )
    seed: int = Field(0, description="the seed of the readings: the same seed, the same events")
    drift: float = Field(
        2.0, ge=0, description="how far (°C) a device's temperature wanders from its base"
    )
    faulty: float = Field(
        0.0,
        ge=0,
        le=1,
        description="the fraction of faulty readings: a missing temp (null) or an absurd one",
    )
    batch_size: int = Field(500, ge=1, le=100_000, description="the most events in one batch")


class _Device:
    """What stays the same for one device: its id, base readings, wave and place."""

    __slots__ = ("base_humidity", "base_temp", "battery", "drain", "id", "lat", "lon", "period")

    def __init__(self, index: int, rng: random.Random) -> None:
        self.id = f"sensor-{index:04d}"
        self.base_temp = rng.uniform(15.0, 25.0)
        self.base_humidity = rng.uniform(30.0, 60.0)
        self.period = rng.uniform(200.0, 2000.0)  # readings per wave of the drift
        self.battery = rng.uniform(60.0, 100.0)
        self.drain = rng.uniform(0.0005, 0.005)  # percent per reading
        self.lat = round(rng.uniform(-60.0, 70.0), 5)
        self.lon = round(rng.uniform(-180.0, 180.0), 5)


class GeneratorSource(Source):
    """Readings of simulated sensor devices, deterministic from ``seed``; resumable."""

    name = "generator"
    Config: ClassVar[type[ConnectorConfig]] = GeneratorConfig
    resumable = True

    def __init__(self, config: GeneratorConfig, context: ConnectorContext) -> None:
        super().__init__(config, context)
        self.config: GeneratorConfig = config
        rng = random.Random(config.seed)
        self._devices = [_Device(i, rng) for i in range(config.devices)]
        self._position = 0
        self._made = 0  # since open: what the rate is measured against
        self._started = 0.0
        self._chunk = -1
        self._rng = random.Random()
        self._drawn = 0  # numbers drawn from the current chunk's stream

    @property
    def bounded(self) -> bool:
        return self.config.count is not None

    async def open(self, position: Any) -> None:
        if position is None:
            position = 0
        if type(position) is not int or position < 0:
            raise ConnectorError(
                f"generator {self.context.name!r}: a position is a count of events, "
                f"not {position!r}"
            )
        self._position = position
        self._made = 0
        self._started = asyncio.get_running_loop().time()

    async def read(self) -> SourceBatch | None:
        config = self.config
        size = config.batch_size
        if config.count is not None:
            size = min(size, config.count - self._position)
            if size <= 0:
                return None
        if config.rate > 0:
            loop = asyncio.get_running_loop()
            elapsed = loop.time() - self._started
            due = int(elapsed * config.rate) + 1 - self._made
            if due <= 0:
                await asyncio.sleep(self._made / config.rate - elapsed)
                due = 1
            size = min(size, due)
        else:
            await asyncio.sleep(0)  # as fast as possible, but never starving the loop
        now = int(time.time() * 1000)
        events = self._readings(self._position, size, now)
        self._position += size
        self._made += size
        return SourceBatch(events, self._position)

    def _readings(self, first: int, size: int, now: int) -> list[Event]:
        """Events ``first`` .. ``first + size - 1`` (one loop, locals only: this is the hot
        path of a load test)."""
        devices, count = self._devices, len(self._devices)
        drift, faulty = self.config.drift, self.config.faulty
        sin, tau = math.sin, 2 * math.pi
        events: list[Event] = []
        append = events.append
        n = first
        end = first + size
        while n < end:
            chunk, place = divmod(n, _CHUNK)
            random = self._stream(chunk, place)
            stop = min(end, (chunk + 1) * _CHUNK)
            while n < stop:
                u_temp, u_humidity, u_fault, u_kind = random(), random(), random(), random()
                device = devices[n % count]
                turn = n // count  # the how-manieth reading of this device
                wave = sin(tau * turn / device.period)
                temp: float | None = round(device.base_temp + drift * wave + u_temp - 0.5, 2)
                if u_fault < faulty:
                    temp = None if u_kind < 0.5 else (999.9 if u_kind < 0.75 else -300.0)
                battery = device.battery - device.drain * turn
                value = {
                    "device_id": device.id,
                    "temp": temp,
                    "humidity": round(device.base_humidity + 10 * wave + 4 * u_humidity - 2, 1),
                    "battery": round(battery, 1) if battery > 0 else 0.0,
                    "location": {"lat": device.lat, "lon": device.lon},
                    "ts": now,
                }
                append(Event(value, timestamp=now))
                n += 1
            self._drawn = (n - chunk * _CHUNK) * _DRAWS
        return events

    def _stream(self, chunk: int, place: int) -> Callable[[], float]:
        """The random numbers of ``chunk``, positioned at event ``place`` of it."""
        rng = self._rng
        if chunk != self._chunk or self._drawn > place * _DRAWS:
            rng.seed(f"{self.config.seed}/{chunk}")
            self._chunk, self._drawn = chunk, 0
        for _ in range(place * _DRAWS - self._drawn):
            rng.random()
        self._drawn = place * _DRAWS
        return rng.random
