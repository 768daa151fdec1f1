"""The embedded transport: a ``file:DIR`` store opened in this process.

:class:`EmbeddedConnection` makes producers, consumers and admins that reach the event log
(:mod:`millstream.core.log`) directly, with consumer groups and committed offsets kept by
:mod:`millstream.core.groups`.
"""

from .admin import EmbeddedAdmin
from .connection import EmbeddedConnection
from .consumer import EmbeddedConsumer
from .producer import EmbeddedProducer

__all__ = ["EmbeddedAdmin", "EmbeddedConnection", "EmbeddedConsumer", "EmbeddedProducer"]
