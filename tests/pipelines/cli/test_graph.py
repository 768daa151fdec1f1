"""``millstream graph``: Mermaid and DOT as text; SVG and PNG through Graphviz when installed."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from millstream.core.cli import main

MILLSTREAM = Path(sys.executable).parent / "millstream"

PIPELINE = """\
pipeline: shop
dead_letter: dead
topics: {orders: {}, big: {}, small: {}, dead: {}}
sources:
  feed: {connector: generator, to: orders}
routes:
  size:
    from: orders
    steps:
      - filter: value.temp > 0
    to:
      - {topic: big, when: "value.temp > 40"}
    unmatched: small
sinks:
  show: {connector: stdout, from: [big, small]}
"""


@pytest.fixture
def run(tmp_path: Path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)

    def call(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(args))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    return call


def test_mermaid_is_the_default(run) -> None:
    status, out, err = run("graph", "pipeline.yaml")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == "flowchart LR"
    assert '  source0(["feed<br/>source: generator"])' in lines
    assert '  topic1[("orders")]' in lines
    assert '  route5["size<br/>route: filter"]' in lines
    assert '  sink6[/"show<br/>sink: stdout"/]' in lines
    assert "  source0 --> topic1" in lines
    assert '  route5 -->|"value.temp #62; 40"| topic2' in lines
    assert '  route5 -->|"unmatched"| topic3' in lines
    assert '  route5 -.->|"dead letter"| topic4' in lines
    assert "  topic2 --> sink6" in lines and "  topic3 --> sink6" in lines


def test_dot(run, tmp_path: Path) -> None:
    assert run("graph", "pipeline.yaml", "--format", "dot", "-o", "shop.dot") == (0, "", "")
    text = (tmp_path / "shop.dot").read_text()
    assert text.startswith('digraph "shop" {\n  rankdir=LR;')
    assert '  route5 -> topic2 [label="value.temp > 40"];' in text
    assert '  sink6 -> topic4 [label="dead letter", style=dashed];' in text
    assert text.endswith("}\n")


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz is not installed")
def test_svg_and_png_with_graphviz(run, tmp_path: Path) -> None:
    status, out, _ = run("graph", "pipeline.yaml", "--format", "svg")
    assert status == 0 and "<svg" in out and "shop" in out
    assert run("graph", "pipeline.yaml", "--format", "png", "-o", "p.png")[0] == 0
    assert (tmp_path / "p.png").read_bytes().startswith(b"\x89PNG")


def test_svg_without_graphviz_says_how_to_install_it(tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE)
    empty = tmp_path / "bin"
    empty.mkdir()
    done = subprocess.run(
        [str(MILLSTREAM), "graph", "pipeline.yaml", "--format", "svg"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": str(empty)},
    )
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(
        "millstream: error: --format svg needs Graphviz's `dot` program, not found: install "
        "Graphviz (apt install graphviz"
    )
    assert "--format mermaid" in done.stderr


def test_an_invalid_pipeline(run, tmp_path: Path) -> None:
    (tmp_path / "pipeline.yaml").write_text(PIPELINE.replace("to: orders", "to: order"))
    status, out, err = run("graph", "pipeline.yaml")
    assert (status, out) == (2, "")
    assert err.startswith("millstream: error: pipeline.yaml:5:36: sources.feed.to: topic 'order'")
