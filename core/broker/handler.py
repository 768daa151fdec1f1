"""The dispatch contract of the broker: one handler per API key.

A :data:`Handler` takes a decoded request header and body and returns the response body
(a message built with :func:`millstream.core.protocol.response_class`). The broker decodes
frames, looks the API key up in its ``dict[int, Handler]``, awaits the handler and encodes
what it returns; a handler returning ``None`` sends no response (Produce with acks=0).
Handlers share the broker's state through a :class:`BrokerContext`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from ..log import LogStore
from ..protocol import RequestHeader

__all__ = ["BrokerContext", "Handler"]

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
