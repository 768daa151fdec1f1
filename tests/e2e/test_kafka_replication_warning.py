"""A pipeline moved to a Kafka cluster without ``replication:`` on its topics takes the cluster's
``default.replication.factor``, which is 1 unless the operators raised it: ``millstream run``
says so when that leaves topics it makes with one replica on a cluster that has more brokers,
and says nothing where one replica is all there can be, or the file asked for it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from kafka_server import KafkaCluster, _libs_or_skip

pytestmark = pytest.mark.slow

MILLSTREAM = str(Path(sys.executable).parent / "millstream")

PIPELINE = """
pipeline: copies
topics:
  raw: {partitions: 2}
  cooked: {partitions: 2}
  chosen: {partitions: 1, replication: 1}
sources:
  readings:
    connector: generator
    config: {count: 50, seed: 1}
    to: [raw, chosen]
routes:
  cook:
    from: raw
    to: cooked
sinks:
  nowhere:
    connector: "null"
    from: [cooked, chosen]
"""


def _run(tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    return subprocess.run(
        [MILLSTREAM, "run", "pipeline.yaml", "--store", url, "--quiet"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_topics_made_with_one_replica_on_a_cluster_of_three_are_named_once(
    tmp_path: Path,
) -> None:
    cluster = KafkaCluster(
        tmp_path / "kafka",
        nodes=3,
        libs=_libs_or_skip(),
        configs={"default.replication.factor": "1"},  # Kafka's own default
    )
    with cluster:
        done = _run(tmp_path, cluster.url)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "replica" in line]
    assert warnings == [
        "millstream: WARNING: millstream.pipelines: topics 'raw', 'cooked' were made with 1 "
        "replica (the store's default) on a cluster of 3 brokers: losing the broker that holds "
        "a partition loses its events; give them `replication: 3` in the pipeline file, or "
        "raise the cluster's default.replication.factor (which __source_positions and "
        "__source_leases take too)"
    ]


def test_one_broker_holds_one_replica_without_a_word(tmp_path: Path, broker) -> None:
    url = f"millstream://{broker.bootstrap}"
    done = _run(tmp_path, url)
    assert done.returncode == 0, done.stderr
    assert "replica" not in done.stderr
