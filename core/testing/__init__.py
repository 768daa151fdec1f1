"""The conformance kit for connector authors (also a pytest plugin; see ``plugin``).

Subclass :class:`SourceConformance` or :class:`SinkConformance` in a test module, name your
connector class and say how to feed it (or read back what it wrote); pytest then runs the
contract's checks against it::

    from millstream.core.testing import SinkConformance

    class TestJsonLines(SinkConformance):
        sink = JsonLinesSink

        def settings(self):
            return {"path": str(self.tmp_path / "out.jsonl")}

        def read_back(self):
            return [json.loads(line) for line in (self.tmp_path / "out.jsonl").open()]

The checks run each on its own event loop: no asyncio plugin is needed.
"""

from __future__ import annotations

from ._common import config_error
from ._sink import SinkConformance
from ._source import SourceConformance

__all__ = ["SinkConformance", "SourceConformance", "config_error"]
