"""A broker with its REST API (``--http``) shared by the REST tests of a module; each test uses
topic and group names of its own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from broker_server import BrokerServer
from rest_client import Rest


@pytest.fixture(scope="module")
def rest_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[BrokerServer]:
    """A broker serving Kafka and REST, for the module's tests."""
    server = BrokerServer(tmp_path_factory.mktemp("rest") / "data", http=True).start()
    try:
        yield server
    finally:
        status = server.stop()
        assert status == 0, server.log()


@pytest.fixture
def rest(rest_broker: BrokerServer) -> Iterator[Rest]:
    client = Rest(rest_broker.http_url)
    yield client
    client.session.close()
