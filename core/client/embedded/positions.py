"""Source positions in the embedded store: the internal compacted topic ``__source_positions``.

One record per source, keyed ``<pipeline>/<source>`` (UTF-8), its value the source's last
acknowledged position as the runtime encoded it. Compaction keeps only the newest per key; a
tombstone forgets a source. Reads come from memory, loaded once from the topic when first used.
"""

from __future__ import annotations

import logging
from types import MappingProxyType

from ...errors import ReadOnlyStoreError
from ...log import LogStore
from ...log.encoder import encode_batch
from ...record import Record
from ..interface import PositionStore

__all__ = ["POSITIONS_TOPIC", "EmbeddedPositionStore"]

log = logging.getLogger(__name__)

POSITIONS_TOPIC = "__source_positions"
_TOPIC_CONFIG = MappingProxyType({"cleanup.policy": "compact", "segment.bytes": "104857600"})


class EmbeddedPositionStore(PositionStore):
    """Positions kept in partition 0 of ``__source_positions`` of one :class:`LogStore`."""

    def __init__(self, store: LogStore) -> None:
        self._store = store
        self._positions: dict[str, bytes] | None = None
        self._loaded = 0

    def _load(self) -> dict[str, bytes]:
        positions = self._positions if self._positions is not None else {}
        if self._store.has_topic(POSITIONS_TOPIC):
            partition = self._store.topic(POSITIONS_TOPIC).partitions[0]
            partition.refresh()
            for record in partition.iter_records(self._loaded):
                self._loaded = record.offset + 1
                if record.key is None:
                    continue
                name = record.key.decode(errors="replace")
                if record.value is None:
                    positions.pop(name, None)
                else:
                    positions[name] = record.value
        self._positions = positions
        return positions

    async def get(self, key: str) -> bytes | None:
        if self._positions is None or self._store.read_only:
            self._load()
        assert self._positions is not None
        return self._positions.get(key)

    async def put(self, key: str, value: bytes | None) -> None:
        if self._store.read_only:
            raise ReadOnlyStoreError.during(self._store.path, f"store the position of {key!r}")
        positions = self._positions if self._positions is not None else self._load()
        if not self._store.has_topic(POSITIONS_TOPIC):
            self._store.create_topic(POSITIONS_TOPIC, 1, _TOPIC_CONFIG)
        partition = self._store.topic(POSITIONS_TOPIC).partitions[0]
        result = partition.append(encode_batch([Record(key.encode(), value)]))
        await partition.durable(result.last_offset + 1)
        self._loaded = max(self._loaded, result.last_offset + 1)
        if value is None:
            positions.pop(key, None)
        else:
            positions[key] = value

    async def keys(self) -> list[str]:
        if self._positions is None or self._store.read_only:
            self._load()
        assert self._positions is not None
        return sorted(self._positions)
