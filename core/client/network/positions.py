"""Source positions over the network: the compacted topic ``__source_positions`` on the cluster.

The same layout as the embedded store's (:mod:`..embedded.positions`): one record per source in
partition 0, keyed ``<pipeline>/<source>`` (UTF-8), its value the last acknowledged position; a
tombstone forgets a source. It is a :class:`~.table.KeyedTable`: reads are caught up from the
topic first, so positions another process stored are seen too, and a put is durable on the
cluster when it returns.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..interface import PositionStore
from .table import KeyedTable

if TYPE_CHECKING:
    from .connection import NetworkConnection

__all__ = ["POSITIONS_TOPIC", "NetworkPositionStore"]

POSITIONS_TOPIC = "__source_positions"


class NetworkPositionStore(PositionStore):
    """Positions kept in partition 0 of ``__source_positions`` on the cluster."""

    def __init__(self, connection: NetworkConnection) -> None:
        self._table = KeyedTable(connection, POSITIONS_TOPIC)

    async def get(self, key: str) -> bytes | None:
        return await self._table.get(key)

    async def put(self, key: str, value: bytes | None) -> None:
        await self._table.put(key, value)

    async def keys(self) -> list[str]:
        return await self._table.keys()
