"""The stores reached over the network, as one parametrised fixture (a pytest plugin module,
named in tests/conftest.py).

``remote`` runs a test once against a ``millstream broker`` and once against Apache Kafka 4
(both shared by the session, one per xdist worker); ``fresh_remote`` likewise, each of the test's
own (for tests that use fixed topic and group names). A test that takes it asserts what holds on
either, so the network client, the command line and the pipelines are checked against the real
Kafka by the same tests that check them against our broker.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest

__all__ = ["RemoteStore", "fresh_remote", "remote"]


@dataclass(frozen=True)
class RemoteStore:
    """A running store: ``kind`` is ``millstream`` or ``kafka``."""

    kind: str
    bootstrap: str

    @property
    def url(self) -> str:
        """The store URL (``millstream://HOST:PORT`` or ``kafka://HOST:PORT``)."""
        return f"{self.kind}://{self.bootstrap}"

    @property
    def is_kafka(self) -> bool:
        return self.kind == "kafka"


@pytest.fixture(scope="session", params=["millstream", "kafka"])
def remote(request: pytest.FixtureRequest) -> RemoteStore:
    """A ``millstream broker`` or an Apache Kafka node, shared by the session; use unique
    topic and group names."""
    server = request.getfixturevalue("broker_session" if request.param == "millstream" else "kafka")
    return RemoteStore(request.param, server.bootstrap)


@pytest.fixture(params=["millstream", "kafka"])
def fresh_remote(request: pytest.FixtureRequest) -> RemoteStore:
    """A ``millstream broker`` or an Apache Kafka node of the test's own."""
    server = request.getfixturevalue("broker" if request.param == "millstream" else "fresh_kafka")
    return RemoteStore(request.param, server.bootstrap)
