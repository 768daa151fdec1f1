"""The null sink keeps the sink contract while keeping nothing."""

from __future__ import annotations

from typing import Any

from millstream.connectors.null import NullSink
from millstream.core.testing import SinkConformance


class TestNullConformance(SinkConformance):
    sink = NullSink
    keeps_events = False

    def settings(self) -> dict[str, Any]:
        return {}
