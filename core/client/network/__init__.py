"""The network transport: a ``millstream://host:port[,host:port]`` store reached over the Kafka
wire protocol (:mod:`millstream.core.protocol`), asyncio all the way down.

:class:`NetworkConnection` makes producers, consumers and admins with the same interface and
the same semantics as the embedded transport's, so a pipeline runs unchanged on either. Below
them: :mod:`.wire` (one pipelined connection per broker, API versions negotiated),
:mod:`.cluster` (bootstrap, metadata, leaders, group coordinators), :mod:`.group` and
:mod:`.assignors` (the classic consumer group protocol, assignors in the client),
:mod:`.offsets` (ListOffsets, OffsetFetch, OffsetCommit).
"""

from .admin import NetworkAdmin
from .assignors import Assignment, Subscription, assign_range, assign_roundrobin, assign_sticky
from .cluster import parse_bootstrap
from .connection import NetworkConnection
from .consumer import NetworkConsumer
from .producer import BufferFullError, NetworkProducer
from .wire import BrokerUnavailableError

__all__ = [
    "Assignment",
    "BrokerUnavailableError",
    "BufferFullError",
    "NetworkAdmin",
    "NetworkConnection",
    "NetworkConsumer",
    "NetworkProducer",
    "Subscription",
    "assign_range",
    "assign_roundrobin",
    "assign_sticky",
    "parse_bootstrap",
]
