"""The built-in connectors in real pipelines, run by ``millstream run`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

MILLSTREAM = Path(sys.executable).parent / "millstream"


def run(folder: Path, pipeline: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    (folder / "pipeline.yaml").write_text(textwrap.dedent(pipeline))
    env = {
        k: v for k, v in os.environ.items() if k not in ("MILLSTREAM_STORE", "MILLSTREAM_DATA_DIR")
    }
    done = subprocess.run(
        [MILLSTREAM, "run", "pipeline.yaml", "--quiet"],
        input=stdin,
        capture_output=True,
        cwd=folder,
        env=env,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done


def test_generator_to_stdout(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        """
        pipeline: sensors
        topics:
          readings: {partitions: 2}
        sources:
          sensors:
            connector: generator
            config: {devices: 5, rate: 0, count: 500, seed: 1, batch_size: 64}
            to: readings
            key: value.device_id
        sinks:
          console:
            connector: stdout
            from: readings
        """,
    )
    readings = [json.loads(line) for line in done.stdout.splitlines()]
    assert len(readings) == 500
    assert {r["device_id"] for r in readings} == {f"sensor-000{n}" for n in range(5)}
    assert all(
        set(r) == {"device_id", "temp", "humidity", "battery", "location", "ts"} for r in readings
    )


def test_stdin_lines_are_decoded_with_the_topic_codec(tmp_path: Path) -> None:
    done = run(
        tmp_path,
        """
        pipeline: lines
        dead_letter: dead
        topics:
          lines: {partitions: 1}
          dead: {partitions: 1}
        sources:
          input:
            connector: stdin
            to: lines
        sinks:
          console:
            connector: stdout
            from: lines
            config: {format: envelope}
        """,
        stdin=b'{"n": 1}\n{"n": 2}\nnot json\n{"n": 3}',
    )
    envelopes = [json.loads(line) for line in done.stdout.splitlines()]
    assert [e["value"] for e in envelopes] == [{"n": 1}, {"n": 2}, {"n": 3}]
    assert [(e["topic"], e["partition"], e["offset"]) for e in envelopes] == [
        ("lines", 0, 0),
        ("lines", 0, 1),
        ("lines", 0, 2),
    ]
