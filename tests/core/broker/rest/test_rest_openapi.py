"""The OpenAPI document against the live server: schemathesis generates requests for every
operation (valid and not) and checks that none gets a 5xx and that every answer (status,
content type, headers, body) is one the document describes."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import requests
from broker_server import BrokerServer
from hypothesis import HealthCheck, given, settings

from millstream.core.broker.rest.openapi import OPERATIONS

schemathesis = pytest.importorskip("schemathesis")
from schemathesis import GenerationMode  # noqa: E402
from schemathesis.checks import (  # noqa: E402
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

_CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


def _bounded(document: dict[str, Any]) -> dict[str, Any]:
    """The served document with the test's own bounds on costly inputs: a few partitions per
    topic, short long-polls and queries (the server accepts more; the run stays fast)."""
    bounded = copy.deepcopy(document)
    schemas = bounded["components"]["schemas"]
    schemas["CreateTopic"]["properties"]["partitions"]["maximum"] = 4
    schemas["QueryRequest"]["properties"]["timeout_ms"]["maximum"] = 2000
    read = bounded["paths"]["/topics/{name}/partitions/{partition}/records"]["get"]
    for parameter in read["parameters"]:
        if parameter["name"] == "timeout_ms":
            parameter["schema"]["maximum"] = 100
    return bounded


@pytest.fixture(scope="module")
def api_schema(rest_broker: BrokerServer) -> Any:
    answer = requests.get(rest_broker.http_url + "/openapi.json", timeout=10)
    assert answer.status_code == 200
    document = answer.json()
    assert document["openapi"].startswith("3.")
    return schemathesis.openapi.from_dict(_bounded(document))


_OPERATIONS = [(op.method.upper(), op.path) for op in OPERATIONS]
_RUNS = [(method, path, "positive") for method, path in _OPERATIONS] + [
    (op.method.upper(), op.path, "negative")
    for op in OPERATIONS
    if op.body is not None or op.query is not None or "partition" in op.path_params
]
"""Every operation with valid input, and those whose input can be invalid with invalid input."""


def test_the_document_lists_every_endpoint(rest_broker: BrokerServer) -> None:
    document = requests.get(rest_broker.http_url + "/openapi.json", timeout=10).json()
    operations = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    }
    assert operations == {
        ("GET", "/healthz"),
        ("GET", "/metrics"),
        ("GET", "/topics"),
        ("POST", "/topics"),
        ("GET", "/topics/{name}"),
        ("DELETE", "/topics/{name}"),
        ("POST", "/topics/{name}/records"),
        ("GET", "/topics/{name}/partitions/{partition}/records"),
        ("GET", "/groups"),
        ("GET", "/groups/{group_id}"),
        ("POST", "/query"),
    }
    assert operations == set(_OPERATIONS)
    error = document["components"]["schemas"]["ErrorBody"]
    assert error["required"] == ["error", "message"]


@pytest.mark.parametrize(("method", "path", "mode"), _RUNS, ids=[" ".join(run) for run in _RUNS])
def test_no_generated_request_gets_a_5xx_or_an_undocumented_answer(
    method: str, path: str, mode: str, api_schema: Any, rest_broker: BrokerServer
) -> None:
    operation = api_schema[path][method]
    base_url = rest_broker.http_url

    @given(case=operation.as_strategy(GenerationMode(mode)))
    @settings(
        max_examples=30,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        case.call_and_validate(base_url=base_url, checks=_CHECKS, timeout=30)

    run()


def test_every_route_of_the_server_is_in_the_document(tmp_path: Any) -> None:
    from millstream.core.broker.config import BrokerConfig
    from millstream.core.broker.rest import create_app
    from millstream.core.broker.server import Broker

    app = create_app(Broker(BrokerConfig(data_dir=tmp_path)))
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None
    }
    assert served == {*_OPERATIONS, ("GET", "/openapi.json")}
