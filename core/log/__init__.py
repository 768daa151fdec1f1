"""The event log: topics of partitions of segments, in Kafka's RecordBatch v2 format.

``LogStore.open(path)`` opens a data directory; see docs/log.md for the layout on disk, the
topic configs and the durability policies. The log knows nothing of networks, plugins or
pipelines.
"""

from .batch import BatchHeader, decode_records, validate_batch
from .compression import Compression
from .config import CONFIG_KEYS, TopicConfig
from .encoder import encode_batch
from .maintenance import LogMaintenance
from .names import is_internal, validate_topic_name
from .partition import AppendResult, Partition
from .store import MAX_PARTITIONS, LogStore, Topic

__all__ = [
    "CONFIG_KEYS",
    "MAX_PARTITIONS",
    "AppendResult",
    "BatchHeader",
    "Compression",
    "LogMaintenance",
    "LogStore",
    "Partition",
    "Topic",
    "TopicConfig",
    "decode_records",
    "encode_batch",
    "is_internal",
    "validate_batch",
    "validate_topic_name",
]
