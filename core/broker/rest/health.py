"""``GET /healthz`` and ``GET /metrics`` (Prometheus text format 0.0.4)."""

from __future__ import annotations

from collections.abc import Iterator

from aiohttp import web

from ..metrics import CONTENT_TYPE, Gauge
from ..server import Broker
from .bodies import broker_of, json_response
from .errors import RestError
from .models import Health

__all__ = ["routes"]


async def healthz(request: web.Request) -> web.Response:
    broker = broker_of(request)
    if broker.store is None or broker.store.closed:
        raise RestError(503, "BROKER_NOT_AVAILABLE", "the broker is not serving its store")
    return json_response(Health(status="ok"))


def _log_sizes(broker: Broker) -> Iterator[tuple[dict[str, str], float]]:
    store = broker.store
    for name in store.topic_names():
        for partition in store.topic(name).partitions:
            yield {"topic": name, "partition": str(partition.index)}, partition.size_bytes


async def metrics(request: web.Request) -> web.Response:
    broker = broker_of(request)
    coordinator = broker.coordinator
    groups = len(coordinator.list_groups()) if coordinator is not None else 0
    gauges = [
        Gauge(
            "millstream_broker_groups",
            "Consumer groups the coordinator knows (live, or with committed offsets).",
            [({}, groups)],
        ),
        Gauge(
            "millstream_broker_log_size_bytes",
            "Bytes of each partition's segments on disk.",
            list(_log_sizes(broker)) if not broker.store.closed else [],
        ),
    ]
    text = broker.metrics.render(gauges)
    return web.Response(body=text.encode(), headers={"Content-Type": CONTENT_TYPE})


def routes() -> list[web.RouteDef]:
    return [
        web.get("/healthz", healthz, allow_head=False),
        web.get("/metrics", metrics, allow_head=False),
    ]
