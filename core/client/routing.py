"""Placing records in a topic's partitions: what every producer does the same way.

:class:`TopicRouting` holds what a producer needs of one topic to place a record (its name,
partition count and size limit, the sticky partition for keyless records, the partition of
each key seen lately) and :func:`route` splits a ``send_batch`` call by partition. The
embedded and network producers keep their own per-topic state on top of it.
"""

from __future__ import annotations

from ..errors import InvalidPartitionsError, RecordTooLargeError
from ..log.encoder import RecordColumns
from .partitioner import StickyPartitioner, murmur2

__all__ = ["KEYS_REMEMBERED", "TopicRouting", "route"]

KEYS_REMEMBERED = 1 << 16
"""How many keys' partitions a topic remembers (then it forgets them all and starts again)."""


class TopicRouting:
    """Where the records of one topic go: ``count`` partitions, keys by Kafka's murmur2
    partitioner (remembered: murmur2 in Python costs about a microsecond and keys repeat),
    keyless records to the ``sticky`` partition. Made anew when the partition count changes."""

    __slots__ = ("count", "key_partitions", "max_bytes", "name", "sticky")

    def __init__(self, name: str, count: int, max_bytes: int) -> None:
        self.name = name
        self.count = count
        self.max_bytes = max_bytes
        self.sticky = StickyPartitioner(count)
        self.key_partitions: dict[bytes, int] = {}

    def partition_of(self, key: bytes) -> int:
        """The partition of ``key``, remembered."""
        found = self.key_partitions.get(key)
        if found is None:
            if len(self.key_partitions) >= KEYS_REMEMBERED:
                self.key_partitions.clear()
            found = self.key_partitions[key] = (murmur2(key) & 0x7FFFFFFF) % self.count
        return found

    def check_partition(self, partition: object) -> None:
        """Raise InvalidPartitionsError unless ``partition`` is one of the topic's."""
        if type(partition) is int and 0 <= partition < self.count:
            return
        raise InvalidPartitionsError(
            f"partition {partition!r} does not exist in topic {self.name!r}; "
            f"valid partitions are 0 to {self.count - 1}"
        )

    def too_large(self, exact: int) -> RecordTooLargeError:
        """The error for a record of ``exact`` bytes (with its batch header) over the limit."""
        return RecordTooLargeError(
            f"record of {exact} bytes (with its batch header) is over the "
            f"max.message.bytes={self.max_bytes} of topic {self.name!r}; send a smaller "
            f"record or raise the limit with `millstream topics alter {self.name} "
            "--config max.message.bytes=N`"
        )


def route(
    topic: TopicRouting, rows: RecordColumns, partition: int | None, sticky: int
) -> list[tuple[int, list[int] | None]]:
    """The partitions the records of a call go to: ``(partition, places)`` pairs, where
    ``places`` are the records' places in the call, in order (None: all of them)."""
    if partition is not None:
        return [(partition, None)]
    keys, klens = rows.keys, rows.klens
    if keys is None or klens is None or topic.count == 1:
        return [(sticky, None)]
    known = topic.key_partitions  # keys repeat: each is hashed once
    groups: dict[int, list[int]] = {}
    target = sticky
    for place, key in enumerate(keys):
        if klens[place] < 0:
            target = sticky
        else:
            found = known.get(key)
            target = found if found is not None else topic.partition_of(key)
        group = groups.get(target)
        if group is None:
            groups[target] = [place]
        else:
            group.append(place)
    if len(groups) == 1:
        return [(target, None)]
    return list(groups.items())
