"""The file connector in real pipelines on the embedded store: file → topic → file, bad lines
in the dead-letter topic, and a tailing pipeline restarted in the middle."""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson

from millstream.core.client import connect
from millstream.core.plugins import get_registry
from millstream.core.record import TopicPartition
from millstream.pipelines.runtime import Runtime
from millstream.pipelines.spec import load_pipeline

PIPELINE = """
pipeline: files
store: file:./store
dead_letter: dead
topics:
  orders: {{partitions: 2}}
  dead: {{partitions: 1}}
sources:
  exports:
    connector: file
    config: {{path: "in/*.jsonl", mode: {mode}, format: jsonl, batch_size: 40}}
    to: orders
    key: value.customer
sinks:
  archive:
    connector: file
    from: orders
    config: {{path: "out/{{topic}}/part-{{n}}.jsonl", max_bytes: 4000}}
"""


def _write_pipeline(tmp_path: Path, mode: str) -> Path:
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE.format(mode=mode))
    return path


def _order(n: int) -> bytes:
    return orjson.dumps({"id": n, "customer": f"c{n % 7}", "total": n * 1.5}) + b"\n"


def _archived(tmp_path: Path) -> list[int]:
    folder = tmp_path / "out" / "orders"
    if not folder.exists():
        return []
    return [
        orjson.loads(line)["id"]
        for path in sorted(folder.iterdir())
        for line in path.read_bytes().splitlines()
    ]


async def _dead_letters(url: str) -> list:
    async with await connect(url, read_only=True) as conn:
        consumer = conn.consumer(auto_offset_reset="earliest")
        consumer.assign([TopicPartition("dead", 0)])
        got = await consumer.getmany(timeout_ms=200)
        await consumer.close()
    return [r for records in got.values() for r in records]


async def test_file_to_topic_to_file_with_bad_lines_dead_lettered(tmp_path: Path) -> None:
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.jsonl").write_bytes(
        b"".join(_order(n) for n in range(100)) + b"{not json}\n"
    )
    (tmp_path / "in" / "b.jsonl").write_bytes(b"".join(_order(n) for n in range(100, 200)))
    pipeline = load_pipeline(_write_pipeline(tmp_path, "once"))
    url = f"file:{tmp_path / 'store'}"
    async with await connect(url) as conn:
        runtime = Runtime([pipeline], conn, get_registry())
        await runtime.prepare()
        assert await asyncio.wait_for(runtime.run(asyncio.Event()), 60) == "drained"
    assert sorted(_archived(tmp_path)) == list(range(200))
    finished = sorted(p.name for p in (tmp_path / "out" / "orders").iterdir())
    assert len(finished) > 1 and all(not n.startswith(".") for n in finished)
    dead = await _dead_letters(url)
    assert [r.value for r in dead] == [b"{not json}"]
    reason = dict(dead[0].headers)
    assert any(
        f"{tmp_path / 'in' / 'a.jsonl'}:101: not valid JSON".encode() in v for v in reason.values()
    ), reason


async def test_a_tailing_pipeline_restarted_resumes_after_the_acknowledged_line(
    tmp_path: Path,
) -> None:
    (tmp_path / "in").mkdir()
    feed = tmp_path / "in" / "feed.jsonl"
    feed.write_bytes(b"".join(_order(n) for n in range(150)))
    pipeline_file = _write_pipeline(tmp_path, "tail")
    url = f"file:{tmp_path / 'store'}"

    async def run_until(count: int, while_running=None) -> None:
        pipeline = load_pipeline(pipeline_file)
        async with await connect(url) as conn:
            runtime = Runtime([pipeline], conn, get_registry())
            await runtime.prepare()
            stop = asyncio.Event()
            running = asyncio.create_task(runtime.run(stop))
            if while_running is not None:
                await asyncio.sleep(0.2)
                while_running()
            sink = runtime.stats.find("sink", "archive")
            assert sink is not None
            for _ in range(1000):
                if sink.events_out >= count or running.done():
                    break
                await asyncio.sleep(0.01)
            stop.set()
            assert await asyncio.wait_for(running, 30) == "stopped"

    await run_until(150)
    assert sorted(_archived(tmp_path)) == list(range(150))
    # while it is down: more lines, one written halfway (its newline comes later)
    more = b"".join(_order(n) for n in range(150, 300))
    with feed.open("ab") as f:
        f.write(more + _order(300)[:10])

    def finish_the_line() -> None:
        with feed.open("ab") as f:
            f.write(_order(300)[10:])

    await run_until(151, finish_the_line)
    assert sorted(_archived(tmp_path)) == list(range(301))
