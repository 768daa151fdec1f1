"""The Kafka-protocol broker: serves the core.log store over TCP (``millstream broker``).

See docs/broker.md. Handlers follow the contract of :mod:`.handler`.
"""

from .handler import BrokerContext, Handler

__all__ = ["BrokerContext", "Handler"]
