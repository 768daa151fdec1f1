"""Which worker runs a source, when several processes run one pipeline on a shared store.

Routes and sinks share their inputs' partitions through their consumer groups. A source has no
partitions to share: two copies of it would read the same file, poll the same API, or count the
same generator twice. So on a store other processes use too (``Connection.shared``: a broker),
each source is held by one worker at a time, through a consumer group of its own,
``<pipeline>.sources.<source>``, subscribed to the one-partition topic ``__source_leases``: the
member given that partition runs the source. The group's ``sticky`` assignment leaves it with its
holder while that one lives, so workers joining do not move it; when the holder stops, or dies
and its session times out, the group gives it to another member, which opens the source at the
last acknowledged position. Nothing is read by this consumer: membership is all it is for.
"""

from __future__ import annotations

import asyncio
import contextlib

from millstream.core.client import Connection, Consumer
from millstream.core.errors import TopicExistsError
from millstream.core.record import TopicPartition

__all__ = ["LEASE_TOPIC", "SourceLease", "ensure_lease_topic"]

LEASE_TOPIC = "__source_leases"
_HELD = TopicPartition(LEASE_TOPIC, 0)
_CHECK_S = 0.5


async def ensure_lease_topic(connection: Connection) -> None:
    """Create ``__source_leases`` (one partition) unless it exists."""
    admin = connection.admin()
    if LEASE_TOPIC in await admin.list_topics(internal=True):
        return
    with contextlib.suppress(TopicExistsError):  # another worker made it first
        await admin.create_topic(LEASE_TOPIC, 1, config={"retention.ms": "3600000"})


class SourceLease:
    """Membership of a source's lease group; :meth:`held` says whether this worker runs it."""

    def __init__(self, connection: Connection, group: str) -> None:
        self.group = group
        self._consumer: Consumer = connection.consumer(group=group, client_id=group)

    def join(self) -> None:
        """Join the group (in the background on a network store)."""
        self._consumer.subscribe([LEASE_TOPIC])

    def held(self) -> bool:
        """Whether this worker holds the source now."""
        return _HELD in self._consumer.assignment()

    async def acquired(self, stopping: asyncio.Event) -> bool:
        """Wait until this worker holds the source (True) or ``stopping`` is set (False)."""
        await self._consumer.wait_for_assignment(int(_CHECK_S * 1000))
        while not stopping.is_set():
            if self.held():
                return True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), _CHECK_S)
        return False

    async def lost(self) -> None:
        """Return once this worker no longer holds the source."""
        while self.held():
            await asyncio.sleep(_CHECK_S)

    async def close(self) -> None:
        """Leave the group, so another worker takes the source at once."""
        await self._consumer.close()
