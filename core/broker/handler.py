"""The dispatch contract of the broker: one handler per API key.

A :data:`Handler` takes a decoded request header and body and returns the response body
(a message built with :func:`millstream.core.protocol.response_class`). The broker decodes
frames, looks the API key up in its ``dict[int, Handler]``, awaits the handler and encodes
what it returns; a handler returning ``None`` sends no response (Produce with acks=0).
Handlers share the broker's state through a :class:`BrokerContext`; what is known of the
connection a request came on (the client's address) is :func:`current_request`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from ..log import LogStore
from ..protocol import RequestHeader

__all__ = ["BrokerContext", "Handler", "RequestContext", "current_request", "serving"]

Handler = Callable[[RequestHeader, Any], Awaitable[Any]]
"""Request body in, response body out (``None``: no response is sent)."""


class BrokerContext(Protocol):
    """What every handler may reach: the log, this node's identity and the broker's config."""

    store: LogStore
    """The open core.log store the broker serves."""
    node_id: int
    """This broker's node id, as advertised in Metadata and FindCoordinator."""
    host: str
    """The advertised host clients connect to."""
    port: int
    """The advertised port clients connect to."""
    config: Any
    """The broker's settings (a :class:`millstream.core.broker.config.BrokerConfig`)."""


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The connection a request came on."""

    client_host: str = ""
    """The client's address as Kafka shows it (``/127.0.0.1``); empty when not known (a
    request that did not come over a connection, e.g. from the REST API)."""


_CURRENT: ContextVar[RequestContext] = ContextVar("millstream_broker_request")
_UNKNOWN = RequestContext()


def current_request() -> RequestContext:
    """The context of the request being handled (read it before the handler's first await
    or after: it is the same for the handler's whole run)."""
    return _CURRENT.get(_UNKNOWN)


def serving(context: RequestContext) -> None:
    """Make ``context`` the one of the requests started from here on in this task (the
    broker calls it once per connection, in the connection's own task)."""
    _CURRENT.set(context)
