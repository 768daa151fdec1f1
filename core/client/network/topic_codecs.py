"""Topic codecs kept beside the topics, on a cluster that does not keep millstream's own configs.

The embedded store and a millstream broker keep a topic's ``codec`` with the topic, like any of
its configs. Apache Kafka refuses config names it does not know, so there the codec of each
topic whose codec is not the default (``json``) is kept in a table of its own: the compacted
topic ``__topic_codecs`` (a :class:`~.table.KeyedTable`), keyed by the topic's name, its value
the codec's name. The network admin writes it when it creates a topic or sets a topic's codec,
removes it when it deletes the topic, and reads it into the topic's description, so
``millstream query``, ``consume --format json`` and ``topics describe`` see the codec the
pipeline declared, on Kafka as elsewhere.

The table knows topics by name: a topic deleted with another tool and made again with another
tool under the same name is read with the codec the table still has for that name, until
millstream deletes it or sets its codec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...log.config import CONFIG_KEYS
from .table import KeyedTable

if TYPE_CHECKING:
    from .connection import NetworkConnection

__all__ = ["CODECS_TOPIC", "TopicCodecs"]

CODECS_TOPIC = "__topic_codecs"
_DEFAULT = CONFIG_KEYS["codec"].default


class TopicCodecs:
    """The codecs of a cluster's topics, kept in ``__topic_codecs``."""

    def __init__(self, connection: NetworkConnection) -> None:
        self._table = KeyedTable(connection, CODECS_TOPIC)

    async def get(self, topic: str) -> str | None:
        """The codec set on ``topic``, or None when it has the default."""
        value = await self._table.get(topic)
        return None if value is None else value.decode()

    async def set(self, topic: str, codec: str | None) -> None:
        """Keep ``codec`` for ``topic``; None or the default forgets it (the table is only
        written, and made, when that changes something)."""
        if codec == _DEFAULT:
            codec = None
        if await self.get(topic) == codec:
            return
        await self._table.put(topic, None if codec is None else codec.encode())
