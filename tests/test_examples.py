"""Every example runs: the quickstart pipeline, the client demo, and the README's pipeline."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MILLSTREAM = str(Path(sys.executable).parent / "millstream")


def test_the_quickstart_runs_to_the_end_and_prints_hot_readings(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "quickstart.yaml", tmp_path)
    done = subprocess.run(
        [MILLSTREAM, "run", "quickstart.yaml"], cwd=tmp_path, capture_output=True, timeout=120
    )
    assert done.returncode == 0, done.stderr.decode()
    hot = [json.loads(line) for line in done.stdout.splitlines()]
    assert hot, "the demo shows no readings"
    assert all(reading["temp_f"] > 79.5 for reading in hot)
    summary = done.stderr.decode()
    assert "drained after" in summary
    assert re.search(r"quickstart\.sensors\s+source\s+20,000\s+20,000", summary), summary
    assert (tmp_path / ".millstream").is_dir()  # the store sits beside the file


def test_the_client_demo_runs(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "demo.py")],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr.decode()


def test_the_readme_pipeline_is_valid(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    (block,) = re.findall(r"```yaml\n(.*?)```", readme, re.S)
    (tmp_path / "readme.yaml").write_text(block)
    done = subprocess.run(
        [MILLSTREAM, "validate", "readme.yaml"], cwd=tmp_path, capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stderr.decode()
