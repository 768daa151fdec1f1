"""The network client when a broker misbehaves or the client is pushed: a broker that accepts
connections but never answers, a producer id that changes while a batch's outcome is unknown,
requests written in order while a connection is being opened."""

from __future__ import annotations

import os
import signal

import pytest

from millstream.core.client.network import BrokerUnavailableError, NetworkConnection


async def test_a_broker_that_accepts_but_never_answers_is_unavailable(broker) -> None:
    os.kill(broker.process.pid, signal.SIGSTOP)  # the kernel still accepts connections
    try:
        with pytest.raises(BrokerUnavailableError, match="did not answer ApiVersions within 0.5 s"):
            await NetworkConnection.open(f"millstream://{broker.bootstrap}", timeout_s=0.5)
    finally:
        os.kill(broker.process.pid, signal.SIGCONT)
