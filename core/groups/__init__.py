"""Consumer groups: committed offsets and group membership, for any transport.

:class:`OffsetStore` keeps committed offsets in the internal compacted topic
``__consumer_offsets``; :class:`GroupCoordinator` splits a group's partitions among its live
members and decides who may commit. The embedded client uses them in-process; the broker serves
them over the wire. Nothing here knows of networks.
"""

from ._codec import OffsetAndMetadata, decode_key, decode_value, encode_key, encode_value
from .assignor import round_robin
from .coordinator import GroupCoordinator, GroupSnapshot, Member
from .offsets import (
    OFFSETS_TOPIC,
    OFFSETS_TOPIC_CONFIG,
    OffsetStore,
    offsets_partition,
)

__all__ = [
    "OFFSETS_TOPIC",
    "OFFSETS_TOPIC_CONFIG",
    "GroupCoordinator",
    "GroupSnapshot",
    "Member",
    "OffsetAndMetadata",
    "OffsetStore",
    "decode_key",
    "decode_value",
    "encode_key",
    "encode_value",
    "offsets_partition",
    "round_robin",
]
