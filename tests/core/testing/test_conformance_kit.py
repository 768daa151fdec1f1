"""The conformance kit catches connectors that break the contract, and passes good ones.

Each case is a small connector with one flaw, in a test module of its own; one pytest run (a
subprocess, as an author would run it) checks them all with the kit, and each test here
asserts which checks failed for its case.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET

import pytest

HEADER = """
import asyncio
import json
import time
from dataclasses import replace
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from millstream.core import ConnectorConfig, ConnectorError, Event, Sink, Source, SourceBatch
from millstream.core.testing import SinkConformance, SourceConformance


class CountConfig(ConnectorConfig):
    count: int = Field(description="how many events")
    batch: int = Field(5, ge=1, description="events per batch")


class CountSource(Source):
    '''Events 0..count-1, resumable; the flaws below override one part of it.'''

    name = "count"
    Config: ClassVar[type[ConnectorConfig]] = CountConfig
    resumable = True

    async def open(self, position: Any) -> None:
        self.next = position or 0

    @property
    def bounded(self) -> bool:
        return True

    async def read(self) -> SourceBatch | None:
        if self.next >= self.config.count:
            return None
        end = min(self.config.count, self.next + self.config.batch)
        events = [Event({"n": n}) for n in range(self.next, end)]
        self.next = end
        return SourceBatch(events, end)


class FileConfig(ConnectorConfig):
    path: str = Field(description="the file")


class FileSink(Sink):
    '''JSON lines appended to a file on flush; the flaws below override one part of it.'''

    name = "jsonfile"
    Config: ClassVar[type[ConnectorConfig]] = FileConfig

    async def open(self) -> None:
        self.held: list[Event] = []

    async def write(self, events) -> None:
        self.held.extend(events)

    async def flush(self) -> None:
        with open(self.config.path, "a") as out:
            out.writelines(json.dumps(e.value) + "\\n" for e in self.held)
        self.held = []


class KeyedSink(FileSink):
    '''Keeps the last event written under each key: idempotent.'''

    name = "keyed"
    idempotent = True

    async def flush(self) -> None:
        path = self.config.path
        try:
            with open(path) as f:
                rows = {row["key"]: row for row in map(json.loads, f)}
        except FileNotFoundError:
            rows = {}
        for e in self.held:
            rows[e.key.decode()] = {"key": e.key.decode(), "value": e.value}
        with open(path, "w") as out:
            out.writelines(json.dumps(row) + "\\n" for row in rows.values())
        self.held = []


class RetainingSink(FileSink):
    '''Keeps only events of the last 7 days, as a store's retention by record timestamp.'''

    name = "retaining"

    async def flush(self) -> None:
        oldest = time.time() * 1000 - 7 * 24 * 3600 * 1000
        self.held = [e for e in self.held if e.timestamp >= oldest]
        await super().flush()


class SourceSuite(SourceConformance):
    source = CountSource
    backpressure_events = 2000
    read_timeout = 1.0

    def prepare(self, count):
        return {"count": count, "batch": 5}


class SinkSuite(SinkConformance):
    sink = FileSink

    def settings(self):
        return {"path": str(self.tmp_path / "out.jsonl")}

    def read_back(self):
        path = self.tmp_path / "out.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
"""

SOURCE_CHECKS = {
    "test_config_describes_every_setting",
    "test_invalid_settings_are_named",
    "test_bounded_source_ends",
    "test_restart_resumes_after_the_acknowledged_position",
    "test_cancelled_read_then_close",
    "test_read_respects_backpressure",
}
SINK_CHECKS = {
    "test_config_describes_every_setting",
    "test_invalid_settings_are_named",
    "test_flush_makes_writes_durable",
    "test_crash_between_write_and_flush_loses_nothing",
    "test_idempotent_sink_keeps_one_copy",
    "test_empty_write_and_flush",
}


SOURCE_FLAWS = {
    "ignores_its_position": (
        """
        class Flawed(CountSource):
            async def open(self, position):
                self.next = 0  # forgets where it was
        """,
        {"test_restart_resumes_after_the_acknowledged_position", "test_cancelled_read_then_close"},
    ),
    "skips_an_event_on_restart": (
        """
        class Flawed(CountSource):
            async def read(self):
                batch = await super().read()
                if batch is not None:
                    batch.position += 1  # one past what it handed out
                return batch
        """,
        {"test_restart_resumes_after_the_acknowledged_position", "test_cancelled_read_then_close"},
    ),
    "position_not_json": (
        """
        class Flawed(CountSource):
            async def read(self):
                batch = await super().read()
                if batch is not None:
                    batch.position = {self.next}  # a set: not JSON
                return batch
        """,
        {"test_restart_resumes_after_the_acknowledged_position", "test_cancelled_read_then_close"},
    ),
    "never_ends": (
        """
        class Flawed(CountSource):
            async def read(self):
                batch = await super().read()
                if batch is None:
                    await asyncio.Event().wait()  # says bounded, never ends
                return batch
        """,
        {"test_bounded_source_ends"},
    ),
    "reads_ahead_without_bound": (
        """
        class Flawed(CountSource):
            async def open(self, position):
                await super().open(position)
                self.ahead = []
                self.task = asyncio.ensure_future(self.pump())

            async def pump(self):  # reads everything ahead, asked or not
                for n in range(self.config.count):
                    self.ahead.append(Event({"n": n, "pad": "x" * 10_000}))
                    if n % 100 == 0:
                        await asyncio.sleep(0)

            async def close(self):
                self.task.cancel()
        """,
        {"test_read_respects_backpressure"},
    ),
    "undescribed_and_lax_config": (
        """
        class FlawedConfig(CountConfig):
            model_config = ConfigDict(extra="ignore")
            label: str = "x"

        class Flawed(CountSource):
            Config = FlawedConfig
        """,
        {"test_config_describes_every_setting", "test_invalid_settings_are_named"},
    ),
}

SINK_FLAWS = {
    "truncates_on_open": (
        """
        class Flawed(FileSink):
            async def open(self):
                await super().open()
                open(self.config.path, "w").close()  # drops what is there
        """,
        {"test_flush_makes_writes_durable", "test_crash_between_write_and_flush_loses_nothing"},
    ),
    "durable_only_on_close": (
        """
        class Flawed(FileSink):
            async def flush(self):
                pass

            async def close(self):
                await FileSink.flush(self)
        """,
        {"test_flush_makes_writes_durable"},
    ),
    "loses_a_crashed_write": (
        """
        SEEN = set()

        class Flawed(FileSink):
            async def write(self, events):  # marks events done before they are durable
                fresh = [e for e in events if e.offset not in SEEN]
                SEEN.update(e.offset for e in events)
                await super().write(fresh)
        """,
        {"test_crash_between_write_and_flush_loses_nothing"},
    ),
    "claims_idempotence": (
        """
        class Flawed(FileSink):
            idempotent = True  # but keeps every copy
        """,
        {"test_idempotent_sink_keeps_one_copy"},
    ),
    "idempotent_by_offset_only": (
        """
        class Flawed(FileSink):
            idempotent = True  # keeps one copy of a record read twice, not of an event
                               # written twice (a route writing it again after a restart)

            async def flush(self):
                path = self.config.path
                seen = set()
                try:
                    with open(path + ".offsets") as done:
                        seen = {int(line) for line in done}
                except FileNotFoundError:
                    pass
                fresh = []
                for event in self.held:
                    if event.offset not in seen:
                        seen.add(event.offset)
                        fresh.append(event)
                self.held = fresh
                await super().flush()
                with open(path + ".offsets", "a") as done:
                    done.writelines(f"{e.offset}\\n" for e in fresh)
        """,
        {"test_idempotent_sink_keeps_one_copy"},
    ),
    "idempotent_as_configured_but_keeps_every_copy": (
        """
        class Flawed(FileSink):
            @classmethod
            def idempotent_for(cls, config):
                return True  # as configured; the class flag says False
        """,
        {"test_idempotent_sink_keeps_one_copy"},
    ),
    "columns_of_the_first_event": (
        """
        class Flawed(KeyedSink):
            async def flush(self):  # every row gets the fields of the first event it is given
                names = list(self.held[0].value) if self.held else []
                self.held = [
                    replace(e, value={n: e.value.get(n) for n in names}) for e in self.held
                ]
                await super().flush()
        """,
        {"test_idempotent_sink_keeps_one_copy"},
    ),
    "raw_error_for_a_bad_setting": (
        """
        class Flawed(FileSink):
            async def open(self):
                await super().open()
                if "/" not in self.config.path:
                    raise ValueError("relative")  # not an error naming the setting
        """,
        {"test_invalid_settings_are_named"},
    ),
}

EXTRA = {
    "columns_of_the_first_event": """
    def read_back(self):
        return [row["value"] for row in super().read_back()]
""",
    "raw_error_for_a_bad_setting": """
    def invalid_settings(self):
        return [({"path": "out.jsonl"}, "path")]
""",
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, str]]:
    """Per case (module name), each check's outcome: passed, failed or skipped."""
    folder = tmp_path_factory.mktemp("kit")
    cases = {"good_source": "class TestIt(SourceSuite): pass\n"}
    cases["good_sink"] = "class TestIt(SinkSuite): pass\n"
    cases["good_keyed_sink"] = (
        "class TestIt(SinkSuite):\n    sink = KeyedSink\n\n"
        "    def read_back(self):\n        return [row['value'] for row in super().read_back()]\n"
    )
    cases["good_retaining_sink"] = "class TestIt(SinkSuite):\n    sink = RetainingSink\n"
    for name, (flaw, _) in SOURCE_FLAWS.items():
        cases[name] = textwrap.dedent(flaw) + "\nclass TestIt(SourceSuite):\n    source = Flawed\n"
    for name, (flaw, _) in SINK_FLAWS.items():
        cases[name] = textwrap.dedent(flaw) + "\nclass TestIt(SinkSuite):\n    sink = Flawed\n"
        cases[name] += EXTRA.get(name, "")
    for name, body in cases.items():
        (folder / f"test_{name}.py").write_text(HEADER + body)
    (folder / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    report = folder / "report.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=folder,
        env=env,
        capture_output=True,
        timeout=120,
    )
    found: dict[str, dict[str, str]] = {name: {} for name in cases}
    for case in ET.parse(report).iter("testcase"):
        module = case.get("classname", "").split(".")[0].removeprefix("test_")
        result = "passed"
        for child in case:
            if child.tag in ("failure", "error"):
                result = "failed"
            elif child.tag == "skipped":
                result = "skipped"
        found[module][case.get("name", "")] = result
    return found


def checks(results: dict[str, str], outcome: str) -> set[str]:
    return {name for name, result in results.items() if result == outcome}


def test_a_good_source_passes_every_check(outcomes: dict[str, dict[str, str]]) -> None:
    assert outcomes["good_source"] == dict.fromkeys(SOURCE_CHECKS, "passed")


def test_a_good_sink_passes_and_is_not_asked_to_be_idempotent(
    outcomes: dict[str, dict[str, str]],
) -> None:
    results = outcomes["good_sink"]
    assert checks(results, "skipped") == {"test_idempotent_sink_keeps_one_copy"}
    assert checks(results, "passed") == SINK_CHECKS - {"test_idempotent_sink_keeps_one_copy"}


def test_a_sink_that_keeps_one_copy_per_key_passes_every_check(
    outcomes: dict[str, dict[str, str]],
) -> None:
    assert outcomes["good_keyed_sink"] == dict.fromkeys(SINK_CHECKS, "passed")


def test_a_sink_that_applies_seven_days_retention_keeps_every_event_it_is_given(
    outcomes: dict[str, dict[str, str]],
) -> None:
    results = outcomes["good_retaining_sink"]
    assert checks(results, "skipped") == {"test_idempotent_sink_keeps_one_copy"}
    assert checks(results, "passed") == SINK_CHECKS - {"test_idempotent_sink_keeps_one_copy"}


@pytest.mark.parametrize("case", sorted(SOURCE_FLAWS))
def test_a_flawed_source_fails_the_checks_it_breaks(
    outcomes: dict[str, dict[str, str]], case: str
) -> None:
    failing = SOURCE_FLAWS[case][1]
    assert checks(outcomes[case], "failed") == failing
    assert checks(outcomes[case], "passed") == SOURCE_CHECKS - failing


@pytest.mark.parametrize("case", sorted(SINK_FLAWS))
def test_a_flawed_sink_fails_the_checks_it_breaks(
    outcomes: dict[str, dict[str, str]], case: str
) -> None:
    failing = SINK_FLAWS[case][1]
    assert checks(outcomes[case], "failed") == failing
    assert set(outcomes[case]) == SINK_CHECKS
