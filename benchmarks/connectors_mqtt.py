"""MQTT: the ``mqtt`` source at QoS 1 into the embedded store, beside a plain paho subscriber.

A local Mosquitto (``/usr/sbin/mosquitto``) is started for the run. Each round makes two
persistent sessions subscribed to ``bench/#`` at QoS 1, publishes N sensor readings (~110-byte
JSON) at QoS 1 while both are away, so the broker queues N messages for each, then drains them:

- **subject**: a pipeline whose ``mqtt`` source (MQTT 5, QoS 1, acknowledgements only after
  the log has each batch) writes to a topic of the embedded store, timed from the runtime's
  start until the source has written all N;
- **baseline**: a paho client that only counts the messages (paho's automatic
  acknowledgement, nothing stored), timed from its connect until it has counted N.

Title for the suite list: "Connectors: MQTT (source at QoS 1 into the embedded store)".
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time
from pathlib import Path

from millstream.core.client import connect
from millstream.core.plugins import get_registry
from millstream.pipelines.runtime import Runtime, tune_gc
from millstream.pipelines.spec import load_pipeline

from ._harness import Result, median

TITLE = "Connectors: MQTT (source at QoS 1 into the embedded store)"
TARGET = 10_000

PIPELINE = """
pipeline: bench
store: file:./store
topics:
  readings: {{partitions: 1}}
sources:
  field:
    connector: mqtt
    config: {{url: "mqtt://127.0.0.1:{port}", topics: ["bench/#"], qos: 1,
              client_id: subject, batch_size: 1000, max_inflight: 2000}}
    to: readings
"""


class Broker:
    """A Mosquitto on a free port in ``folder``, queued messages per client not capped."""

    def __init__(self, folder: Path) -> None:
        binary = "/usr/sbin/mosquitto"
        if not os.access(binary, os.X_OK):
            binary = shutil.which("mosquitto") or binary
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        config = folder / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "max_queued_messages 0",
            "persistence false",
        ]
        if os.geteuid() == 0:
            lines.append("user root")
        config.write_text("\n".join(lines) + "\n")
        self.process = subprocess.Popen(
            [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def _packet(header: int, body: bytes) -> bytes:
    size, length = len(body), bytearray()
    while True:
        size, digit = divmod(size, 128)
        length.append(digit | (0x80 if size else 0))
        if not size:
            return bytes([header]) + bytes(length) + body


def _read_packet(sock: socket.socket) -> int:
    def exact(size: int) -> bytes:
        data = b""
        while len(data) < size:
            more = sock.recv(size - len(data))
            if not more:
                raise ConnectionError("the broker closed the connection")
            data += more
        return data

    header = exact(1)[0]
    size, shift = 0, 0
    while True:
        digit = exact(1)[0]
        size |= (digit & 0x7F) << shift
        shift += 7
        if not digit & 0x80:
            break
    exact(size)
    return header >> 4


def publish(port: int, topic: str, payloads: list[bytes]) -> None:
    """QoS 1 PUBLISH packets over a plain socket, in chunks, each chunk's PUBACKs awaited."""
    name = b"bench-publisher"
    connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + struct.pack("!H", len(name)) + name
    prefix = struct.pack("!H", len(topic)) + topic.encode()
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(_packet(0x10, connect))
        _read_packet(sock)
        for start in range(0, len(payloads), 10_000):
            chunk = payloads[start : start + 10_000]
            packets = [
                _packet(0x32, prefix + struct.pack("!H", (start + i) % 65535 + 1) + payload)
                for i, payload in enumerate(chunk)
            ]
            sock.sendall(b"".join(packets))
            for _ in packets:
                _read_packet(sock)
        sock.sendall(b"\xe0\x00")


def _client(port: int, client_id: str, on_message=None):
    import paho.mqtt.client as mqtt
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id, protocol=mqtt.MQTTv5)
    properties = Properties(PacketTypes.CONNECT)
    properties.SessionExpiryInterval = 3600
    properties.ReceiveMaximum = 2000
    if on_message is not None:
        client.on_message = on_message
    client.connect("127.0.0.1", port, clean_start=False, properties=properties)
    return client


def _make_session(port: int, client_id: str) -> None:
    done = threading.Event()
    client = _client(port, client_id)
    client.on_subscribe = lambda *args: done.set()
    client.loop_start()
    client.subscribe("bench/#", 1)
    if not done.wait(10):
        raise RuntimeError("no SUBACK")
    client.disconnect()
    client.loop_stop()


def _reading(i: int) -> bytes:
    return (
        b'{"device_id": "sensor-%04d", "seq": %d, "temp": %.1f, "humidity": 48.1, '
        b'"battery": 97.2}' % (i % 500, i, 15 + (i % 200) * 0.1)
    )


async def _subject(folder: Path, port: int, n: int) -> float:
    pipeline_file = folder / "pipeline.yaml"
    pipeline_file.write_text(PIPELINE.format(port=port))
    pipeline = load_pipeline(pipeline_file)
    async with await connect(f"file:{folder / 'store'}") as conn:
        runtime = Runtime([pipeline], conn, get_registry())
        await runtime.prepare()
        stop = asyncio.Event()
        started = time.perf_counter()
        task = asyncio.create_task(runtime.run(stop))
        stats = runtime.stats.find("source", "field")
        assert stats is not None
        while stats.events_out < n:
            if task.done():
                raise RuntimeError(f"the pipeline ended early: {task.result()}")
            await asyncio.sleep(0.002)
        elapsed = time.perf_counter() - started
        stop.set()
        await asyncio.wait_for(task, 60)
    return elapsed


def _baseline(port: int, n: int) -> float:
    count = [0]
    done = threading.Event()

    def on_message(client, userdata, message) -> None:
        count[0] += 1
        if count[0] >= n:
            done.set()

    started = time.perf_counter()
    client = _client(port, "baseline", on_message)
    client.loop_start()
    if not done.wait(300):
        raise RuntimeError(f"the baseline counted {count[0]} of {n}")
    elapsed = time.perf_counter() - started
    client.disconnect()
    client.loop_stop()
    return elapsed


def source_throughput(runs: int, records: int) -> Result:
    n = records
    payloads = [_reading(i) for i in range(n)]
    rates: list[float] = []
    bases: list[float] = []
    tune_gc()
    for _ in range(runs):
        folder = Path(tempfile.mkdtemp(prefix="bench-mqtt-"))
        broker = Broker(folder)
        try:
            _make_session(broker.port, "subject")
            _make_session(broker.port, "baseline")
            publish(broker.port, "bench/line", payloads)
            rates.append(n / asyncio.run(_subject(folder, broker.port, n)))
            bases.append(n / _baseline(broker.port, n))
        finally:
            broker.stop()
            shutil.rmtree(folder, ignore_errors=True)
    rate, base = median(rates), median(bases)
    return Result(
        f"mqtt source, QoS 1, {n:,} queued messages → embedded store",
        "messages/s",
        rate,
        f"≥ {TARGET:,} messages/s",
        rate >= TARGET,
        base,
        "paho subscriber that only counts (automatic acks)",
        rates,
        bases,
        note="each message is acknowledged to the broker only after the log acknowledged its "
        "batch, the acknowledgements of a batch written at once; the baseline acknowledges "
        "each message on arrival and stores nothing, but paho builds a message and an MQTT 5 "
        "properties object per message and writes each PUBACK alone, which the source's "
        "network thread does not",
    )


def run(runs: int, records: int) -> list[Result]:
    return [source_throughput(runs, min(records, 200_000))]


if __name__ == "__main__":
    for result in run(3, 20_000):
        print(result)
