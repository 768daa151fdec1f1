"""The broker's REST API (aiohttp), served beside the Kafka listener with `--http HOST:PORT`.

See docs/rest.md. :func:`create_app` builds the application for a started
:class:`~millstream.core.broker.server.Broker`; :class:`RestServer` runs it on the broker's loop.
"""

from .app import RestServer, create_app
from .openapi import openapi_document

__all__ = ["RestServer", "create_app", "openapi_document"]
