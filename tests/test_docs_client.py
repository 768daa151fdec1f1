"""The example in docs/client.md runs as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "client.md"


def test_the_client_example_runs(tmp_path: Path) -> None:
    code = re.search(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert code is not None, "docs/client.md lost its example"
    script = tmp_path / "example.py"
    script.write_text(code.group(1))
    done = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[1] == "0"  # the first record of its partition: offset 0
    # the group read all 20,001 records and committed
    assert (tmp_path / ".millstream" / "__consumer_offsets-0").is_dir()
    assert len(lines) == 1 + 20_001
