"""``millstream validate``: a summary with guarantees for valid files, one located line per
error for invalid ones, exit 0 or 2."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from millstream.core.cli import main

MILLSTREAM = Path(sys.executable).parent / "millstream"

PIPELINE = """\
pipeline: shop
store: file:./data
dead_letter: dead
topics:
  orders: {partitions: 3, retention: 3d}
  big: {}
  dead: {}
sources:
  feed:
    connector: generator
    config: {count: 10}
    to: orders
routes:
  large:
    from: orders
    steps:
      - filter: value.temp > 30
    to:
      - {topic: big, when: "value.temp > 40"}
sinks:
  show:
    connector: stdout
    from: big
"""

VAULT = """\
from pydantic import SecretStr

from millstream.core import ConnectorConfig, Sink, hookimpl


class Vault(Sink):
    name = "vault"
    idempotent = True

    class Config(ConnectorConfig):
        url: str
        password: SecretStr

    async def write(self, events):
        pass


@hookimpl
def register_connectors():
    return (Vault,)
"""


def write(folder: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


@pytest.fixture
def run(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return call


def test_a_valid_file_is_summed_up_with_guarantees(run, tmp_path: Path) -> None:
    write(tmp_path, PIPELINE)
    status, out, err = run("validate", "pipeline.yaml")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"shop: valid ({tmp_path / 'pipeline.yaml'})"
    assert f"store: file:{tmp_path / 'data'}" in lines
    assert any(
        line.split()[:6] == ["orders", "3", "1", "json", "retention", "3d"] for line in lines
    )
    route = next(line for line in lines if line.startswith("route"))
    assert route.split()[:6] == ["route", "large", "filter", "orders", "big?", "at-least-once"]
    sink = next(line for line in lines if line.startswith("sink"))
    assert sink.split()[:5] == ["sink", "show", "stdout", "big", "-"]
    assert "at-least-once" in sink and "after flush()" in sink


def test_an_invalid_file_is_one_located_line_on_stderr(run, tmp_path: Path) -> None:
    write(tmp_path, PIPELINE.replace("to: orders", "to: ordres"))
    status, out, err = run("validate", "pipeline.yaml")
    assert (status, out) == (2, "")
    assert err == (
        "millstream: error: pipeline.yaml:12:9: sources.feed.to: topic 'ordres' is not declared "
        "under `topics:`; did you mean 'orders'? declared: orders, big, dead\n"
    )


def test_every_invalid_file_is_reported(run, tmp_path: Path) -> None:
    write(tmp_path, PIPELINE.replace("connector: stdout", "connector: stdot"), "a.yaml")
    write(tmp_path, PIPELINE.replace("pipeline: shop", "pipeline: ok"), "b.yaml")
    write(tmp_path, PIPELINE.replace("partitions: 3", "partitions: 0"), "c.yaml")
    status, out, err = run("validate", "a.yaml", "b.yaml", "c.yaml")
    assert (status, out) == (2, "")
    lines = err.splitlines()
    assert len(lines) == 2
    assert lines[0].startswith("millstream: error: a.yaml:22:16: sinks.show.connector: unknown")
    assert "did you mean 'stdout'?" in lines[0]
    assert lines[1] == (
        "millstream: error: c.yaml:5:24: topics.orders.partitions: must be 1 or more"
    )


def test_files_validated_together_need_distinct_names(run, tmp_path: Path) -> None:
    write(tmp_path, PIPELINE, "a.yaml")
    write(tmp_path, PIPELINE, "b.yaml")
    status, _, err = run("validate", "a.yaml", "b.yaml")
    assert status == 2
    assert err.startswith("millstream: error: b.yaml:1:11: pipeline: pipeline name 'shop' is also")


def test_strict_fails_on_best_effort_parts(run, tmp_path: Path) -> None:
    text = PIPELINE.replace("connector: generator\n    config: {count: 10}", "connector: stdin")
    write(tmp_path, text)
    status, out, err = run("validate", "pipeline.yaml")
    assert (status, err) == (0, "")
    assert "best-effort" in out and "'stdin' cannot resume" in out
    status, out, err = run("validate", "pipeline.yaml", "--strict")
    assert (status, out) == (2, "")
    assert err.splitlines() == [
        "millstream: error: pipeline.yaml:13:3: routes.large: best-effort (reads 'orders', and "
        "source 'feed' (stdin) cannot resume); --strict accepts at-least-once or exactly-once",
        "millstream: error: pipeline.yaml:20:3: sinks.show: best-effort (reads 'big', and "
        "source 'feed' (stdin) cannot resume); --strict accepts at-least-once or exactly-once",
    ]
    write(tmp_path, PIPELINE)
    assert run("validate", "pipeline.yaml", "--strict")[0] == 0


def test_json_output(run, tmp_path: Path) -> None:
    write(tmp_path, PIPELINE)
    status, out, _ = run("validate", "pipeline.yaml", "--format", "json")
    assert status == 0
    report = json.loads(out)
    assert report["valid"] is True and report["errors"] == []
    (pipeline,) = report["pipelines"]
    assert pipeline["name"] == "shop" and pipeline["store"] == f"file:{tmp_path / 'data'}"
    assert pipeline["topics"][0] == {
        "name": "orders",
        "partitions": 3,
        "replication": 1,
        "codec": "json",
        "config": {"retention.ms": str(3 * 86_400_000)},
    }
    (route,) = pipeline["routes"]
    assert route["group"] == "shop.large" and route["guarantee"] == "at-least-once"
    assert route["to"] == [{"topic": "big", "when": "value.temp > 40"}]
    assert route["steps"] == [{"step": "filter", "path": "routes.large.steps[0].filter"}]
    assert pipeline["sources"][0]["config"]["count"] == 10

    write(tmp_path, PIPELINE.replace("workers", "x").replace("from: big", "from: bog"))
    status, out, err = run("validate", "pipeline.yaml", "--format", "json")
    assert status == 2 and err.count("\n") == 1
    report = json.loads(out)
    assert report["valid"] is False and report["pipelines"] == []
    assert report["errors"] == [
        {
            "file": "pipeline.yaml",
            "line": 23,
            "column": 11,
            "path": "sinks.show.from",
            "message": "topic 'bog' is not declared under `topics:`; did you mean 'big'? "
            "declared: orders, big, dead",
        }
    ]


def test_plugins_file_and_secrets(run, tmp_path: Path, monkeypatch) -> None:
    (tmp_path / "vault.py").write_text(VAULT)
    (tmp_path / "plugins.toml").write_text('modules = ["vault.py"]\n')
    text = PIPELINE.replace("connector: stdout", "connector: vault") + (
        '    config: {url: "https://v", password: "${VAULT_PASSWORD}"}\n'
    )
    write(tmp_path, text)
    monkeypatch.setenv("VAULT_PASSWORD", "correct-horse-battery")
    status, out, err = run("validate", "pipeline.yaml", "--plugins", "plugins.toml")
    assert (status, err) == (0, "")
    assert "exactly-once" in out
    status, out, err = run(
        "validate", "pipeline.yaml", "--plugins", "plugins.toml", "--format", "json"
    )
    sink = json.loads(out)["pipelines"][0]["sinks"][0]
    assert sink["config"] == {"url": "https://v", "password": "**********"}
    assert "correct-horse" not in out + err

    write(tmp_path, text.replace('url: "https://v", ', ""))
    status, out, err = run("validate", "pipeline.yaml", "--plugins", "plugins.toml")
    assert status == 2 and "missing required key 'url'" in err
    assert "correct-horse" not in out + err


def test_missing_environment_variable(run, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("ORDERS_TOPIC", raising=False)
    write(tmp_path, PIPELINE.replace("to: orders", "to: ${ORDERS_TOPIC}"))
    status, _, err = run("validate", "pipeline.yaml")
    assert status == 2
    assert err.startswith(
        "millstream: error: pipeline.yaml:12:9: sources.feed.to: environment variable "
        "'ORDERS_TOPIC' is not set"
    )
    monkeypatch.setenv("ORDERS_TOPIC", "orders")
    assert run("validate", "pipeline.yaml")[0] == 0


def test_a_missing_file(run) -> None:
    status, out, err = run("validate", "nope.yaml")
    assert (status, out, err) == (2, "", "millstream: error: nope.yaml: no such file\n")


def test_as_a_real_process(tmp_path: Path) -> None:
    write(tmp_path, PIPELINE)
    write(tmp_path, PIPELINE.replace("from: orders", "from: big"), "loop.yaml")
    done = subprocess.run(
        [str(MILLSTREAM), "validate", "pipeline.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert (done.returncode, done.stderr) == (0, "")
    assert done.stdout.startswith("shop: valid")
    done = subprocess.run(
        [str(MILLSTREAM), "validate", "loop.yaml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        "millstream: error: loop.yaml:19:17: routes.large.to[0].topic: route 'large' writes to "
        "'big', which it also reads: every event would come back to it for ever; write to "
        "another topic\n"
    )


def test_two_files_cannot_make_parts_share_a_consumer_group(run, tmp_path: Path) -> None:
    # `shop` + `eu.audit` and `shop.eu` + `audit` would both read in group shop.eu.audit
    write(tmp_path, PIPELINE.replace("  show:", "  eu.audit:"), "a.yaml")
    text = PIPELINE.replace("pipeline: shop", "pipeline: shop.eu").replace("  show:", "  audit:")
    write(tmp_path, text, "b.yaml")
    status, out, err = run("validate", "a.yaml", "b.yaml")
    assert (status, out) == (2, "")
    lines = err.splitlines()
    assert lines[0].startswith(
        "millstream: error: a.yaml:21:3: sinks.eu.audit: 'eu.audit' is not a valid name; use "
        "letters, digits, '_' and '-' (no '.': consumer groups are named <pipeline>.<part>"
    )
    assert lines[1].startswith("millstream: error: b.yaml:1:11: pipeline: 'shop.eu' is not")


def test_store_credentials_are_masked(run, tmp_path: Path) -> None:
    store = "millstream://admin:s3cr3t-pass@broker:9092"
    write(tmp_path, PIPELINE.replace("store: file:./data", f"store: {store}"))
    status, out, err = run("validate", "pipeline.yaml")
    assert (status, err) == (0, "")
    assert "store: millstream://admin:****@broker:9092" in out.splitlines()
    status, out, err = run("validate", "pipeline.yaml", "--format", "json")
    assert json.loads(out)["pipelines"][0]["store"] == "millstream://admin:****@broker:9092"
    write(tmp_path, PIPELINE.replace("store: file:./data", "store: http://admin:s3cr3t-pass@b:1"))
    status, out, err = run("validate", "pipeline.yaml")
    assert status == 2 and "http://admin:****@b:1" in err
    assert "s3cr3t" not in out + err
