"""The HTTP connectors, on aiohttp.

- ``http-server`` (source): webhooks; answers 2xx once the log holds the events.
- ``http-poll`` (source): polls a URL on an interval; a cursor, ETag or Last-Modified as its
  position; follows pagination.
- ``http`` (sink): one request per event or batched; retries with backoff; 4xx answers go to
  the dead-letter topic.
"""

from __future__ import annotations

from .poll import HttpPollConfig, HttpPollSource
from .server import HttpServerConfig, HttpServerSource
from .sink import HttpSink, HttpSinkConfig

__all__ = [
    "HttpPollConfig",
    "HttpPollSource",
    "HttpServerConfig",
    "HttpServerSource",
    "HttpSink",
    "HttpSinkConfig",
]
