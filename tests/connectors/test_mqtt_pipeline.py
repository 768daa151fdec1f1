"""The mqtt source in real pipelines on the embedded store: bad payloads dead-lettered, a broker
restarted in the middle of a run, and a pipeline process killed before its acknowledgements."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import orjson
from mosquitto_server import MosquittoServer

from millstream.connectors.mqtt import MqttSource, MqttSourceConfig
from millstream.core import ConnectorContext, StoreError
from millstream.core.client import connect
from millstream.core.plugins import get_registry
from millstream.core.record import StoredRecord, TopicPartition
from millstream.pipelines.runtime import Runtime
from millstream.pipelines.spec import guarantees as guarantees_of
from millstream.pipelines.spec import load_pipeline

MILLSTREAM = Path(sys.executable).parent / "millstream"

PIPELINE = """
pipeline: sensors
store: file:./store
dead_letter: dead
topics:
  readings: {{partitions: 1}}
  dead: {{partitions: 1}}
sources:
  field:
    connector: {connector}
    config: {{url: "{url}", topics: ["sensors/#"], qos: 1, key: topic, batch_size: 50,
              max_inflight: 200}}
    to: readings
sinks:
  nowhere:
    connector: "null"
    from: readings
"""

HELD = '''
"""An mqtt source whose acknowledgements wait while the file `hold` exists beside the
pipeline file; the file `acked` says what the network thread has written to the broker."""

import asyncio

from millstream.connectors.mqtt import MqttSource
from millstream.core import hookimpl


class HeldMqttSource(MqttSource):
    name = "held-mqtt"

    async def ack(self, position):
        while (self.context.base_dir / "hold").exists():
            await asyncio.sleep(0.02)
        await super().ack(position)
        while self._client is not None and self._client._out_packet:
            await asyncio.sleep(0.01)  # the network thread has not written the PUBACKs yet
        (self.context.base_dir / "acked").write_text(str(position))


@hookimpl
def register_connectors():
    return [HeldMqttSource]
'''


def write_pipeline(folder: Path, url: str, connector: str = "mqtt") -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(PIPELINE.format(url=url, connector=connector))
    return path


async def records(folder: Path, topic: str) -> list[StoredRecord]:
    """Every record of partition 0 of ``topic`` (the store opened read-only)."""
    async with await connect(f"file:{folder / 'store'}", read_only=True) as conn:
        consumer = conn.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition(topic, 0)])
        got: list[StoredRecord] = []
        while True:
            batch = await consumer.getmany(timeout_ms=100)
            if not any(batch.values()):
                break
            got.extend(r for rs in batch.values() for r in rs)
        await consumer.close()
    return got


def numbers(found: list[StoredRecord]) -> list[int]:
    return [orjson.loads(r.value)["n"] for r in found]


class Running:
    """A pipeline file run by the runtime in this process until :meth:`stop`."""

    def __init__(self, pipeline_file: Path) -> None:
        self.pipeline_file = pipeline_file

    async def __aenter__(self) -> Running:
        pipeline = load_pipeline(self.pipeline_file)
        self._conn = await connect(f"file:{self.pipeline_file.parent / 'store'}")
        self.runtime = Runtime([pipeline], self._conn, get_registry())
        await self.runtime.prepare()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.runtime.run(self._stop))
        deadline = time.monotonic() + 30
        while self.source_stats().state != "running":  # subscribed: publishing may begin
            assert not self._task.done() and time.monotonic() < deadline
            await asyncio.sleep(0.01)
        return self

    def source_stats(self):
        stats = self.runtime.stats.find("source", "field")
        assert stats is not None
        return stats

    async def wait_for(self, out: int, dead: int = 0, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        stats = self.source_stats()
        while stats.events_out < out or stats.dead < dead:
            assert not self._task.done(), f"the pipeline ended: {self._task.result()}"
            assert time.monotonic() < deadline, f"{stats.events_out} of {out} in {timeout}s"
            await asyncio.sleep(0.02)

    async def records(self, topic: str) -> list[StoredRecord]:
        """Every record of partition 0 of ``topic``, read through the running store."""
        consumer = self._conn.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition(topic, 0)])
        got: list[StoredRecord] = []
        while True:
            batch = await consumer.getmany(timeout_ms=50)
            if not any(batch.values()):
                break
            got.extend(r for rs in batch.values() for r in rs)
        await consumer.close()
        return got

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            assert await asyncio.wait_for(self._task, 30) == "stopped"
        finally:
            await self._conn.close()


async def test_a_payload_that_does_not_decode_is_dead_lettered_and_the_pipeline_goes_on(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    pipeline_file = write_pipeline(tmp_path, mosquitto.url)
    async with Running(pipeline_file) as run:
        payloads = [b'{"n": 0}', b'{"n": 1}', b"\xff not json", b'{"n": 3}']
        await asyncio.to_thread(mosquitto.publish, "sensors/kitchen", payloads)
        await run.wait_for(out=3, dead=1)
    readings = await records(tmp_path, "readings")
    assert numbers(readings) == [0, 1, 3]
    assert {r.key for r in readings} == {b"sensors/kitchen"}
    assert dict(readings[0].headers)["mqtt.topic"] == b"sensors/kitchen"
    [dead] = await records(tmp_path, "dead")
    assert dead.value == b"\xff not json"
    reasons = b" ".join(v for _, v in dead.headers)
    assert b"MQTT topic 'sensors/kitchen': the payload is not valid JSON" in reasons
    # it was acknowledged with its batch: a restart does not get it again
    async with Running(pipeline_file) as run:
        await asyncio.sleep(0.5)
        assert run.source_stats().events_in == 0 and run.source_stats().dead == 0


async def test_a_broker_restart_in_the_middle_loses_nothing_it_acknowledged(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    """A publisher sends 3,000 readings in chunks, each acknowledged by the broker (a chunk that
    fails is sent again); the broker is stopped and started again a third of the way in. Every
    reading the broker acknowledged reaches the log; copies come only from the redelivery of
    what was in flight when the connection dropped."""
    total, chunk = 3000, 100
    acknowledged: list[int] = []
    restarted = threading.Event()

    def publisher() -> None:
        start = 0
        while start < total:
            if start == total // 3 and not restarted.is_set():
                mosquitto.stop()
                time.sleep(0.3)
                mosquitto.start()
                restarted.set()
            payloads = [b'{"n": %d}' % n for n in range(start, start + chunk)]
            try:
                mosquitto.publish("sensors/line", payloads)
            except (OSError, RuntimeError):
                time.sleep(0.1)
                continue
            acknowledged.extend(range(start, start + chunk))
            start += chunk
            time.sleep(0.01)

    async with Running(write_pipeline(tmp_path, mosquitto.url)) as run:
        await asyncio.to_thread(publisher)
        await run.wait_for(out=total, timeout=60)
        deadline = time.monotonic() + 30  # copies count too: wait for every number
        while set(numbers(await run.records("readings"))) != set(range(total)):
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.1)
    assert restarted.is_set()
    got = numbers(await records(tmp_path, "readings"))
    assert set(acknowledged) == set(range(total))
    assert set(got) == set(range(total)), f"lost: {sorted(set(range(total)) - set(got))[:10]}"
    copies = len(got) - total
    # at most what was received but unacknowledged when the connection dropped (max_inflight,
    # 200), and the part of the chunk the broker took before it stopped, which is sent again
    assert copies <= 200 + chunk, f"{copies} copies; only what was in flight may come twice"


async def test_a_killed_pipeline_gets_what_it_had_not_acknowledged_again(
    tmp_path: Path, mosquitto: MosquittoServer
) -> None:
    """Run `millstream run` with acknowledgements held back (a plugin source that waits while
    a file exists), let the log take five readings, kill -9 the process: a restarted pipeline
    gets those five again from the broker, and not the five acknowledged before."""
    (tmp_path / "held.py").write_text(HELD)
    (tmp_path / "plugins.toml").write_text('modules = ["held.py"]\nentry_points = false\n')
    write_pipeline(tmp_path, mosquitto.url, connector="held-mqtt")
    env = {k: v for k, v in os.environ.items() if k != "MILLSTREAM_ENTRY_POINTS"}
    command = [str(MILLSTREAM), "--plugins", "plugins.toml", "run", "--quiet", "pipeline.yaml"]

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            command, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    async def wait_for_readings(count: int, process: subprocess.Popen[bytes]) -> list[int]:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, process.stderr.read().decode()  # type: ignore[union-attr]
            try:
                found = numbers(await records(tmp_path, "readings"))
            except StoreError:  # not made yet
                found = []
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.1)

    # the pipeline's session, made beforehand: what is published from now on waits for it
    session = MqttSource(
        MqttSourceConfig(url=mosquitto.url, topics=["sensors/#"]),
        ConnectorContext("sensors", "field"),
    )
    await session.open(None)
    await session.close()
    first = start()
    try:
        await asyncio.to_thread(
            mosquitto.publish, "sensors/a", [b'{"n": %d}' % n for n in range(5)]
        )
        assert await wait_for_readings(5, first) == [0, 1, 2, 3, 4]
        deadline = time.monotonic() + 30
        while not (tmp_path / "acked").exists() or int((tmp_path / "acked").read_text() or 0) < 5:
            assert time.monotonic() < deadline, "the five were never acknowledged"
            await asyncio.sleep(0.05)
        (tmp_path / "hold").touch()
        await asyncio.to_thread(
            mosquitto.publish, "sensors/a", [b'{"n": %d}' % n for n in range(5, 10)]
        )
        assert await wait_for_readings(10, first) == list(range(10))  # in the log, not acked
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait(10)
    (tmp_path / "hold").unlink()
    second = start()
    try:
        found = await wait_for_readings(15, second)
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(30) == 0
    assert found == [*range(10), *range(5, 10)]


def test_validate_reports_at_least_once_only_where_the_broker_redelivers(tmp_path: Path) -> None:
    guarantees: dict[str, str] = {}
    for name, extra in (("kept", ""), ("qos0", ", qos: 0"), ("clean", ", clean_session: true")):
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            "pipeline: p\ntopics:\n  readings: {partitions: 1}\nsources:\n  field:\n"
            "    connector: mqtt\n"
            f'    config: {{url: "mqtt://localhost", topics: "s/#"{extra}}}\n'
            "    to: readings\n"
        )
        [source] = [g for g in guarantees_of(load_pipeline(path)) if g.kind == "source"]
        guarantees[name] = source.level
    assert guarantees == {"kept": "at-least-once", "qos0": "best-effort", "clean": "best-effort"}
