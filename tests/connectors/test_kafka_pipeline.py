"""The kafka connector in real pipelines on the embedded store, bridging to a topic of Apache
Kafka or a millstream broker: out through the sink, in through the source, a round trip, a
value that is not JSON dead-lettered, and a pipeline killed mid-run that resumes after what it
acknowledged."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest
from kafka_server import USERS, KafkaCluster
from remote_store import RemoteStore

from millstream.connectors.kafka import KafkaSink, KafkaSinkConfig
from millstream.core import ConnectorContext, ConnectorError
from millstream.core.client import connect
from millstream.core.plugins import get_registry
from millstream.core.record import Record, StoredRecord, TopicPartition
from millstream.pipelines.runtime import Runtime
from millstream.pipelines.spec import load_pipeline

MILLSTREAM = Path(sys.executable).parent / "millstream"


def unique(prefix: str) -> str:
    """A topic or group name no other test of the session uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


async def make_topic(url: str, topic: str, partitions: int = 1) -> None:
    async with await connect(url) as conn:
        admin = conn.admin()
        await admin.create_topic(topic, partitions)
        await admin.close()


async def produce(url: str, topic: str, values: list[bytes]) -> None:
    """Write ``values`` to ``topic`` on the store at ``url``, acknowledged."""
    async with await connect(url) as conn, conn.producer() as producer:
        records = [Record(f"k{i % 4}".encode(), v, (), 0) for i, v in enumerate(values)]
        await producer.send_batch(topic, records).confirmed()


async def read_all(url: str, topic: str, *, read_only: bool = False) -> list[StoredRecord]:
    """Every record of ``topic`` on the store at ``url`` as it is now, partition by partition."""
    async with await connect(url, read_only=read_only) as conn:
        admin = conn.admin()
        description = await admin.describe_topic(topic)
        await admin.close()
        got: list[StoredRecord] = []
        for part in description.partitions:
            if part.latest_offset == part.earliest_offset:
                continue
            consumer = conn.consumer(auto_offset_reset="earliest")
            consumer.assign([TopicPartition(topic, part.partition)])
            records: list[StoredRecord] = []
            while not records or records[-1].offset + 1 < part.latest_offset:
                batch = await consumer.getmany(timeout_ms=2000)
                assert batch, f"{topic}/{part.partition}: no records within 2s"
                records.extend(r for rs in batch.values() for r in rs)
            await consumer.close()
            got.extend(records)
    return got


async def eventually(check, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


def numbers(records: list[StoredRecord]) -> list[int]:
    return [orjson.loads(r.value or b"")["n"] for r in records]


def write_pipeline(folder: Path, text: str) -> Path:
    path = folder / "pipeline.yaml"
    path.write_text(textwrap.dedent(text))
    return path


class Running:
    """A pipeline file run by the runtime in this process until the block ends."""

    def __init__(self, pipeline_file: Path) -> None:
        self.pipeline_file = pipeline_file
        self.store = f"file:{pipeline_file.parent / 'store'}"

    async def __aenter__(self) -> Running:
        self.conn = await connect(self.store)
        self.runtime = Runtime([load_pipeline(self.pipeline_file)], self.conn, get_registry())
        await self.runtime.prepare()
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self.runtime.run(self._stop))
        return self

    def stats(self, kind: str, name: str):  # type: ignore[no-untyped-def]
        found = self.runtime.stats.find(kind, name)
        assert found is not None
        return found

    async def wait_for(self, kind: str, name: str, out: int, dead: int = 0) -> None:
        part = self.stats(kind, name)

        async def done() -> bool:
            assert not self._task.done(), f"the pipeline ended: {self._task.result()}"
            return part.events_out >= out and part.dead >= dead

        await eventually(done, 30, f"{kind} {name}: {out} out, {dead} dead")

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        try:
            assert await asyncio.wait_for(self._task, 30) in ("stopped", "drained")
        finally:
            await self.conn.close()


async def test_the_sink_bridges_an_embedded_topic_to_the_remote(
    tmp_path: Path, remote: RemoteStore
) -> None:
    topic = unique("bridge-out")
    await make_topic(remote.url, topic, partitions=2)
    pipeline_file = write_pipeline(
        tmp_path,
        f"""\
        pipeline: out
        store: file:./store
        topics:
          readings: {{partitions: 2}}
        sources:
          sensors:
            connector: generator
            config: {{count: 300, rate: 0, batch_size: 50}}
            to: readings
            key: value.device_id
        sinks:
          upstream:
            connector: kafka
            from: readings
            config: {{url: "{remote.url}", topic: {topic}}}
        """,
    )
    async with Running(pipeline_file) as run:
        await run.wait_for("sink", "upstream", out=300)
    local = await read_all(f"file:{tmp_path / 'store'}", "readings", read_only=True)
    there = await read_all(remote.url, topic)
    assert len(there) == 300
    assert sorted((r.key, r.value) for r in there) == sorted((r.key, r.value) for r in local)
    assert {r.key: r.partition for r in there} == {r.key: r.partition for r in local}


async def test_the_source_reads_a_remote_topic_and_dead_letters_what_is_not_json(
    tmp_path: Path, remote: RemoteStore
) -> None:
    topic = unique("bridge-in")
    await make_topic(remote.url, topic)
    values = [orjson.dumps({"n": n}) for n in range(40)]
    values[17] = b"\xff not json"
    await produce(remote.url, topic, values)
    pipeline_file = write_pipeline(
        tmp_path,
        f"""\
        pipeline: inbound
        store: file:./store
        dead_letter: dead
        topics:
          readings: {{partitions: 1}}
          dead: {{partitions: 1}}
        sources:
          upstream:
            connector: kafka
            config: {{url: "{remote.url}", topics: [{topic}], batch_size: 8}}
            to: readings
        sinks:
          nowhere:
            connector: "null"
            from: readings
        """,
    )
    store = f"file:{tmp_path / 'store'}"
    async with Running(pipeline_file) as run:
        await run.wait_for("source", "upstream", out=39, dead=1)
    readings = await read_all(store, "readings", read_only=True)
    assert numbers(readings) == [n for n in range(40) if n != 17]
    assert {r.key for r in readings} == {b"k0", b"k1", b"k2", b"k3"}
    [dead] = await read_all(store, "dead", read_only=True)
    assert dead.value == b"\xff not json" and dead.key == b"k1"
    reasons = b" ".join(v or b"" for _, v in dead.headers)
    assert f"kafka topic {topic!r} partition 0 offset 17: the value is not valid JSON".encode() in (
        reasons
    )
    # everything was acknowledged and committed: a restart reads only what came since
    await produce(remote.url, topic, [orjson.dumps({"n": n}) for n in range(40, 50)])
    async with Running(pipeline_file) as run:
        await run.wait_for("source", "upstream", out=10)
        await asyncio.sleep(0.3)
        assert run.stats("source", "upstream").events_in == 10
    readings = await read_all(store, "readings", read_only=True)
    assert numbers(readings) == [n for n in range(50) if n != 17]
    async with await connect(remote.url) as conn:
        admin = conn.admin()
        group = await admin.describe_group("millstream-inbound-upstream")
        assert [(o.committed, o.latest_offset) for o in group.offsets] == [(50, 50)]
        await admin.close()


async def test_a_round_trip_embedded_to_the_remote_and_back(
    tmp_path: Path, remote: RemoteStore
) -> None:
    topic = unique("round")
    await make_topic(remote.url, topic, partitions=3)
    pipeline_file = write_pipeline(
        tmp_path,
        f"""\
        pipeline: round
        store: file:./store
        topics:
          outgoing: {{partitions: 2}}
          incoming: {{partitions: 2}}
        sources:
          sensors:
            connector: generator
            config: {{count: 200, rate: 0, batch_size: 40}}
            to: outgoing
            key: value.device_id
          back:
            connector: kafka
            config: {{url: "{remote.url}", topics: {topic}, batch_size: 30}}
            to: incoming
        sinks:
          away:
            connector: kafka
            from: outgoing
            config: {{url: "{remote.url}", topic: {topic}, linger: 1ms}}
          nowhere:
            connector: "null"
            from: incoming
        """,
    )
    async with Running(pipeline_file) as run:
        await run.wait_for("source", "back", out=200)
    store = f"file:{tmp_path / 'store'}"
    sent = await read_all(store, "outgoing", read_only=True)
    came = await read_all(store, "incoming", read_only=True)

    def seen(records: list[StoredRecord]) -> list[tuple[bytes | None, bytes, int]]:
        canonical = orjson.OPT_SORT_KEYS
        return sorted(
            (r.key, orjson.dumps(orjson.loads(r.value or b""), option=canonical), r.timestamp)
            for r in records
        )

    assert len(came) == 200 and seen(came) == seen(sent)


async def test_a_pipeline_killed_mid_run_resumes_after_what_it_acknowledged(
    tmp_path: Path, remote: RemoteStore
) -> None:
    """``millstream run`` reading a remote topic while it is written, killed with SIGKILL and
    run again: every record reaches the log, and copies are at most what was in flight."""
    topic, total, batch = unique("kill"), 3000, 50
    await make_topic(remote.url, topic)
    pipeline_file = write_pipeline(
        tmp_path,
        f"""\
        pipeline: killed
        store: file:./store
        topics:
          readings: {{partitions: 1}}
        sources:
          upstream:
            connector: kafka
            config: {{url: "{remote.url}", topics: {topic}, batch_size: {batch}}}
            to: readings
        sinks:
          nowhere:
            connector: "null"
            from: readings
        """,
    )
    store = f"file:{tmp_path / 'store'}"

    async def stored() -> int:
        if not (tmp_path / "store").exists():
            return 0
        try:
            async with await connect(store, read_only=True) as conn:
                admin = conn.admin()
                description = await admin.describe_topic("readings")
                await admin.close()
                return description.partitions[0].latest_offset
        except Exception:
            return 0

    def run() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [str(MILLSTREAM), "run", "--quiet", str(pipeline_file)],
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    async def write_in_chunks(first: int, end: int) -> None:
        for start in range(first, end, 100):
            await produce(
                remote.url, topic, [orjson.dumps({"n": n}) for n in range(start, start + 100)]
            )
            await asyncio.sleep(0.02)

    first = run()
    try:
        # half is written while the first run reads; it is killed once a quarter is in the
        # log (so mid-stream, however fast the machine), and the rest is written while it is down
        writer = asyncio.create_task(write_in_chunks(0, total // 2))

        async def some() -> bool:
            assert first.poll() is None, first.stderr.read() if first.stderr else ""
            return await stored() >= total // 4

        await eventually(some, 60, "a quarter of the records in the log")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        await writer
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    await write_in_chunks(total // 2, total)
    second = run()
    try:

        async def complete() -> bool:
            assert second.poll() is None, second.stderr.read() if second.stderr else ""
            return len(set(numbers(await read_all(store, "readings", read_only=True)))) >= total

        await eventually(complete, 60, "every record in the log")
    finally:
        second.send_signal(signal.SIGTERM)
        try:
            second.wait(30)
        finally:
            if second.poll() is None:
                second.kill()
    got = numbers(await read_all(store, "readings", read_only=True))
    assert sorted(set(got)) == list(range(total))
    copies = len(got) - total
    # what the log had but whose position was not stored at the kill comes again: at most the
    # batches a source may have in flight (8)
    assert copies <= 8 * batch, f"{copies} copies"
    # each run wrote in order; the second began again at most those copies back
    steps_back = [i for i in range(1, len(got)) if got[i] <= got[i - 1]]
    assert len(steps_back) <= 1
    for i in steps_back:
        assert got[i] == got[i - 1] - copies + 1


def test_validate_shows_the_guarantees_and_masks_the_password(tmp_path: Path) -> None:
    url = "kafka://bridge:s3cr3t@kafka-1.plant:9092"
    pipeline_file = write_pipeline(
        tmp_path,
        f"""\
        pipeline: edge
        store: file:./store
        topics:
          readings: {{partitions: 1}}
          commands: {{partitions: 1}}
        sources:
          central-commands:
            connector: kafka
            config: {{url: "{url}", topics: plant.commands}}
            to: commands
        sinks:
          central:
            connector: kafka
            from: readings
            config: {{url: "{url}", topic: plant.readings}}
          nowhere:
            connector: "null"
            from: commands
        """,
    )
    done = subprocess.run(
        [str(MILLSTREAM), "validate", "--format", "json", str(pipeline_file)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "s3cr3t" not in done.stdout
    [pipeline] = orjson.loads(done.stdout)["pipelines"]
    [source] = pipeline["sources"]
    sink = next(s for s in pipeline["sinks"] if s["name"] == "central")
    assert (
        source["config"]["url"] == sink["config"]["url"] == "kafka://bridge:****@kafka-1.plant:9092"
    )
    assert source["guarantee"] == sink["guarantee"] == "at-least-once"
    listed = subprocess.run(
        [str(MILLSTREAM), "connectors", "list"], capture_output=True, text=True, timeout=60
    )
    [row] = [line.split() for line in listed.stdout.splitlines() if line.startswith("kafka ")]
    assert row[:5] == ["kafka", "yes", "yes", "yes", "no"]  # source, sink, resumable, idempotent


def sasl_ssl_url(cluster: KafkaCluster, user: str, password: str) -> str:
    """A kafka:// URL for the SASL_SSL listener of ``cluster``, logging in with SCRAM."""
    query = "security.protocol=SASL_SSL&sasl.mechanism=SCRAM-SHA-512"
    query += f"&ssl.ca.location={cluster.ca_file}"
    userinfo = f"{quote(user, safe='')}:{quote(password, safe='')}"
    return f"kafka://{userinfo}@{cluster.address('SASL_SSL')}?{query}"


async def test_a_bridge_over_sasl_ssl_with_the_password_in_the_url(
    tmp_path: Path, kafka_secure: KafkaCluster
) -> None:
    url = sasl_ssl_url(kafka_secure, "bob", USERS["bob"])
    topic = unique("secure")
    await make_topic(url, topic)
    pipeline_file = write_pipeline(
        tmp_path,
        f"""\
        pipeline: secure
        store: file:./store
        topics:
          outgoing: {{partitions: 1}}
          incoming: {{partitions: 1}}
        sources:
          sensors:
            connector: generator
            config: {{count: 50, rate: 0}}
            to: outgoing
          back:
            connector: kafka
            config: {{url: "{url}", topics: {topic}}}
            to: incoming
        sinks:
          away:
            connector: kafka
            from: outgoing
            config: {{url: "{url}", topic: {topic}}}
          nowhere:
            connector: "null"
            from: incoming
        """,
    )
    async with Running(pipeline_file) as run:
        await run.wait_for("source", "back", out=50)
    assert len(await read_all(f"file:{tmp_path / 'store'}", "incoming", read_only=True)) == 50


async def test_a_wrong_password_is_one_line_without_it(kafka_secure: KafkaCluster) -> None:
    url = sasl_ssl_url(kafka_secure, "alice", "not-her-p@ss")
    sink = KafkaSink(KafkaSinkConfig(url=url, topic="t"), ConnectorContext("p", "away"))
    with pytest.raises(ConnectorError) as caught:
        await sink.open()
    await sink.close()
    message = str(caught.value)
    assert message.startswith("kafka sink 'away': url: cannot reach kafka://alice:****@")
    assert "SASL authentication as 'alice' failed" in message
    assert "not-her-p" not in message and "\n" not in message
