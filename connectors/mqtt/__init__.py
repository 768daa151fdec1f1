"""The ``mqtt`` connector: sensors and devices over MQTT (paho-mqtt 2, the ``mqtt`` extra).

- :class:`MqttSource` subscribes to topic filters (``+``/``#`` wildcards) at QoS 0, 1 or 2 over
  a persistent session, and acknowledges each QoS 1/2 message to the broker only once the log
  has it, in arrival order; a restart gets from the broker what was not acknowledged.
- :class:`MqttSink` publishes each event to a topic made from a template
  (``sensors/{value.device_id}/temp``) with a QoS and a retain flag; ``flush`` waits for the
  broker's acknowledgements.

Both speak MQTT 5 or 3.1.1, over TCP (``mqtt://``) or TLS (``mqtts://``), with a user name and
password or a client certificate. See docs/connectors/mqtt.md.
"""

from __future__ import annotations

from ._broker import BrokerConfig
from ._sink import MqttSink, MqttSinkConfig
from ._source import MqttSource, MqttSourceConfig
from ._template import TopicTemplate

__all__ = [
    "BrokerConfig",
    "MqttSink",
    "MqttSinkConfig",
    "MqttSource",
    "MqttSourceConfig",
    "TopicTemplate",
]
