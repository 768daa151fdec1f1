"""The ``kafka`` connector: a bridge to a topic of another cluster (Apache Kafka, a millstream
broker, or an embedded store), through millstream's own client.

- :class:`KafkaSource` reads topics there as a member of a consumer group, and commits the
  group's offsets only for batches the log has acknowledged; a restart goes on after the last
  acknowledged record.
- :class:`KafkaSink` writes events as records to a topic there (a fixed name or
  ``mirror.{topic}``); ``flush`` returns once that cluster has acknowledged them.

See docs/connectors/kafka.md.
"""

from __future__ import annotations

from ._cluster import ClusterConfig
from ._sink import KafkaSink, KafkaSinkConfig
from ._source import KafkaSource, KafkaSourceConfig

__all__ = ["ClusterConfig", "KafkaSink", "KafkaSinkConfig", "KafkaSource", "KafkaSourceConfig"]
