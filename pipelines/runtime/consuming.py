"""What route and sink workers share: a consumer in the part's group, decoding, committing.

A worker's loop is: take the records available (up to ``max_records``), decode them with their
topics' codecs (undecodable ones become failures), hand the events on (:meth:`handle`, which
returns once everything it produced is acknowledged), then commit the offsets after them. A
stop ends the loop between two batches, so what was taken is finished and committed first.

A worker with ``reads_blocks`` takes the records as RecordBlocks instead (the consumer's
batch-level read, field by field) and handles them with :meth:`handle_blocks`: events are made
straight from the blocks' columns, with no StoredRecord per record.
"""

from __future__ import annotations

import abc
import asyncio
from itertools import repeat

from millstream.core.client import BatchDelivery, Consumer
from millstream.core.errors import CodecError, CommitFailedError, PipelineError
from millstream.core.event import Event
from millstream.core.record import RecordBlock, StoredRecord, TopicPartition

from ..plan import RoutePlan, SinkPlan
from .context import RunContext
from .deadletter import DeadLetterWriter, Failure
from .stats import PartStats

__all__ = ["ConsumingWorker", "failure_of"]


def failure_of(record: StoredRecord, step: str, reason: str, attempts: int = 1) -> Failure:
    """A failure that keeps ``record`` as it was read."""
    return Failure(
        record.key,
        record.value,
        tuple(record.headers),
        record.timestamp,
        step,
        reason,
        record.topic,
        record.partition,
        record.offset,
        attempts,
    )


class ConsumingWorker(abc.ABC):
    """One worker of a route or sink: a member of the part's consumer group."""

    max_records = 5000
    poll_ms = 100
    reads_blocks = False
    """Read RecordBlocks and handle them with :meth:`handle_blocks` (else StoredRecords)."""

    def __init__(
        self, ctx: RunContext, plan: RoutePlan | SinkPlan, stats: PartStats, worker: int
    ) -> None:
        self.ctx = ctx
        self.part = f"{'routes' if isinstance(plan, RoutePlan) else 'sinks'}.{plan.name}"
        self.group = plan.group
        self.inputs = plan.inputs
        self.start_at = plan.start
        self.stats = stats
        self.dead_letters = DeadLetterWriter(
            ctx.producer, ctx.name, self.part, ctx.dead_letter_topic(plan.dead_letter)
        )
        self.consumer: Consumer = ctx.connection.consumer(
            group=plan.group,
            auto_offset_reset=plan.start,
            max_poll_records=self.max_records,
            client_id=f"{plan.group}-{worker}",
        )
        self._stopping = False

    async def start(self) -> None:
        """Join the group and fix where each partition starts.

        A group new to a partition starts where ``start`` says; with ``latest`` that end is
        committed at once, so events written after the pipeline started are never skipped,
        whenever the first fetch happens.
        """
        self.consumer.subscribe(self.inputs)
        assigned = sorted(await self.consumer.wait_for_assignment())
        if self.start_at != "latest":
            return
        fresh = [tp for tp in assigned if await self.consumer.committed(tp) is None]
        if fresh:
            await self.consumer.seek_to_end(*fresh)
            await self.consumer.commit({tp: self.consumer.position(tp) for tp in fresh})

    def stop(self) -> None:
        """Finish the batch in hand, commit it, and end :meth:`run`."""
        self._stopping = True

    async def run(self) -> None:
        """Take, handle and commit batches until :meth:`stop`.

        While batch N's outputs are being made durable and its offsets committed, batch N+1 is
        already taken and handled: the commit of N waits for N's acknowledgements, and the
        commit of N+1 for that of N, so offsets are committed in order and only after what they
        cover is durable. At most one batch is settling at a time.
        """
        settling: asyncio.Task[None] | None = None
        try:
            await self.open()
            while not self._stopping:
                if self.reads_blocks:
                    got = await self.consumer.getmany_blocks(timeout_ms=self.poll_ms)
                else:
                    got = await self.consumer.getmany(timeout_ms=self.poll_ms)
                if settling is not None and settling.done():
                    finished, settling = settling, None
                    finished.result()  # a failed delivery or commit raises here, not later
                if not got:
                    continue
                if self.reads_blocks:
                    blocks = list(got.values())
                    self.stats.events_in += sum(map(len, blocks))
                    pending = await self.handle_blocks(blocks)
                    offsets = {tp: block.offsets[-1] + 1 for tp, block in got.items()}
                else:
                    records = [r for batch in got.values() for r in batch]
                    self.stats.events_in += len(records)
                    pending = await self.handle(records)
                    offsets = {tp: batch[-1].offset + 1 for tp, batch in got.items()}
                if settling is not None:
                    await settling
                settling = asyncio.create_task(self._settle(pending, offsets))
            if settling is not None:
                await settling
        finally:
            try:
                if settling is not None and not settling.done():
                    settling.cancel()
                await self.close()
            finally:
                await self.consumer.close()

    async def _settle(
        self, pending: list[BatchDelivery], offsets: dict[TopicPartition, int]
    ) -> None:
        for delivery in pending:
            await delivery.confirmed()
        await self._commit(offsets)

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit(offsets)
        except CommitFailedError as exc:  # a rebalance moved partitions: their new owner reads
            self.ctx.log.info("%s: %s", self.part, exc)

    def decode(self, records: list[StoredRecord], failures: list[Failure]) -> list[Event]:
        """Events of ``records``, decoded with their topics' codecs; bad ones to ``failures``.

        A run of records of one topic is decoded in one call (the codec's ``decode_many``);
        only when that fails is each record of the run decoded alone, to find the bad ones.
        """
        events: list[Event] = []
        start = 0
        count = len(records)
        while start < count:
            topic = records[start].topic
            end = start + 1
            while end < count and records[end].topic == topic:
                end += 1
            run = records[start:end] if start or end < count else records
            codec = self.ctx.codecs[topic]
            try:
                values = codec.decode_many([r.value for r in run])
            except (CodecError, TypeError):
                values = None
            if values is not None:
                events += [
                    Event(v, r.key, r.headers, r.timestamp, r.topic, r.partition, r.offset)
                    for v, r in zip(values, run, strict=True)
                ]
            else:
                for r in run:
                    try:
                        value = None if r.value is None else codec.decode(r.value)
                    except CodecError as exc:
                        failures.append(failure_of(r, "decode", f"{topic}: {exc}"))
                        continue
                    events.append(
                        Event(value, r.key, r.headers, r.timestamp, r.topic, r.partition, r.offset)
                    )
            start = end
        return events

    def decode_blocks(self, blocks: list[RecordBlock], failures: list[Failure]) -> list[Event]:
        """:meth:`decode` for records read as blocks: each block's values are decoded in one
        call and its events made from its columns; a block with a value its codec refuses is
        decoded record by record, as :meth:`decode` does."""
        events: list[Event] = []
        for block in blocks:
            topic, partition = block.topic, block.partition
            codec = self.ctx.codecs[topic]
            try:
                values = codec.decode_many(block.values)
            except (CodecError, TypeError):
                values = None
            if values is None:
                events += self.decode(block.records(), failures)
                continue
            count = len(values)
            events += map(
                Event,
                values,
                block.keys,
                block.headers,
                block.timestamps,
                repeat(topic, count),
                repeat(partition, count),
                block.offsets,
            )
        return events

    def send_failures(self, failures: list[Failure], on_error: str) -> list[BatchDelivery]:
        """Queue ``failures`` for the dead-letter topic (the deliveries to wait for before
        committing), or stop when ``on_error`` says so."""
        if not failures:
            return []
        if on_error == "stop":
            first = failures[0]
            raise PipelineError(
                f"{self.part}: an event failed in {first.step}{first.place}: {first.reason}; "
                "stopping, as on_error: stop says"
            )
        delivery = self.dead_letters.write(failures)
        self.stats.dead += len(failures)
        return [] if delivery is None else [delivery]

    async def lag(self) -> int:
        """Records in this worker's partitions not yet consumed."""
        total = 0
        admin = self.ctx.connection.admin()
        for tp in self.consumer.assignment():
            latest = await admin.list_offsets(tp, "latest")
            total += max(0, latest - self.consumer.position(tp))
        return total

    async def open(self) -> None:
        """Ready what the worker needs before its first batch."""

    @abc.abstractmethod
    async def handle(self, records: list[StoredRecord]) -> list[BatchDelivery]:
        """Process ``records``; return the deliveries of what they caused (outputs, dead
        letters) that must be acknowledged before their offsets are committed."""

    async def handle_blocks(self, blocks: list[RecordBlock]) -> list[BatchDelivery]:
        """:meth:`handle` for records read as blocks (``reads_blocks``); this default hands
        their records to :meth:`handle`."""
        return await self.handle([r for block in blocks for r in block.records()])

    async def close(self) -> None:
        """Release what :meth:`open` took (also after a failure)."""
