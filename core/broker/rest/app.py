"""The REST API's aiohttp application (:func:`create_app`) and its server (:class:`RestServer`),
run on the broker's event loop beside the Kafka listener (``millstream broker --http``).

Every answer is JSON except ``/metrics``; every error, unknown routes and wrong methods
included, is ``{"error": CODE, "message": ...}`` (:mod:`.errors`). Bodies larger than the
broker's request size limit are refused with 413 before they are read.
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from aiohttp import web
from aiohttp.typedefs import Handler

from ..server import Broker
from . import groups, health, query, records, topics
from .bodies import BROKER, MAX_BODY, STOPPING
from .errors import RestError, error_response
from .openapi import openapi_document

__all__ = ["RestServer", "create_app"]

_log = logging.getLogger("millstream.broker")

_SHUTDOWN_GRACE_S = 2.0
_DOCUMENT = web.AppKey("openapi", bytes)


@web.middleware
async def _json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except RestError as exc:
        return error_response(exc.status, exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _http_error(request, exc)
    except Exception:
        _log.exception("REST %s %s failed", request.method, request.path)
        return error_response(
            500, "UNKNOWN_SERVER_ERROR", "the broker failed to answer; its log says why"
        )


def _http_error(request: web.Request, exc: web.HTTPException) -> web.Response:
    if isinstance(exc, web.HTTPMethodNotAllowed):
        allowed = sorted(exc.allowed_methods)
        response = error_response(
            405,
            "METHOD_NOT_ALLOWED",
            f"{request.method} is not allowed on {request.path}; allowed: {', '.join(allowed)}",
        )
        response.headers["Allow"] = ", ".join(allowed)
        return response
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        limit = request.app[MAX_BODY]
        return error_response(
            413, "REQUEST_TOO_LARGE", f"the body is larger than the limit of {limit} bytes"
        )
    if exc.status == 404:
        return error_response(
            404,
            "NOT_FOUND",
            f"no endpoint {request.method} {request.path}; the endpoints are in /openapi.json",
        )
    code = (exc.reason or "error").upper().replace(" ", "_")
    return error_response(exc.status, code, exc.text or exc.reason)


async def _openapi(request: web.Request) -> web.Response:
    return web.Response(body=request.app[_DOCUMENT], content_type="application/json")


def create_app(broker: Broker, *, max_body_size: int | None = None) -> web.Application:
    """The application serving ``broker`` (started); bodies above ``max_body_size`` bytes
    (default: the broker's ``max_request_size``) are refused with 413."""
    limit = max_body_size if max_body_size is not None else broker.config.max_request_size
    app = web.Application(middlewares=[_json_errors], client_max_size=limit)
    app[BROKER] = broker
    app[MAX_BODY] = limit
    app[STOPPING] = asyncio.Event()
    app[_DOCUMENT] = orjson.dumps(openapi_document())
    for module in (topics, records, groups, query, health):
        app.add_routes(module.routes())
    app.add_routes([web.get("/openapi.json", _openapi, allow_head=False)])
    return app


class RestServer:
    """The REST API of ``broker`` on ``host:port`` (port 0: a free one), on the running loop."""

    def __init__(self, broker: Broker, host: str, port: int) -> None:
        self.broker = broker
        self.host = host
        self.requested_port = port
        self._app: web.Application | None = None
        self._runner: web.AppRunner | None = None
        self._site: web.TCPSite | None = None

    @property
    def port(self) -> int:
        """The port actually bound."""
        assert self._runner is not None
        return int(self._runner.addresses[0][1])

    async def start(self) -> None:
        """Start listening; OSError when the address cannot be bound."""
        app = self._app = create_app(self.broker)
        runner = web.AppRunner(app, access_log=None, shutdown_timeout=_SHUTDOWN_GRACE_S)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.requested_port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner, self._site = runner, site

    async def stop(self) -> None:
        """Stop listening; long-polling reads answer at once with what they have, other
        requests in flight get a short grace."""
        if self._app is not None:
            self._app[STOPPING].set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
