"""Running a pure stage inside a Faust agent, a group of input records at a time.

The agent takes what its stream has buffered (:mod:`stream.shell.batching`: up to
``GROUP_MAX`` records or ``GROUP_MAX_BYTES``, waiting at most ``GROUP_WAIT`` seconds
after the first) and, for each
partition in the group:

1. skips records at or below the input offset committed with the partition's
   state (a redelivery after a restart), and applies the others strictly in offset
   order from there: a record past the next expected one (a hole faust left, see
   :mod:`stream.shell.rewind`) is not applied, the partition is sought back instead;
   nothing is applied while faust is still assigning or recovering partitions;
2. decodes each record's segments and drops those a sender already delivered
   (the highest ``seq`` per ``source`` is kept in the state: ``h:{source}``);
3. runs the core stage over a :class:`~stream.shell.store.Txn` of the partition,
   once per input record, collecting messages in the group's
   :class:`~stream.shell.outbox.Outbox` (each input record's messages tagged with
   this stage, its partition and its offset: a segment);
4. once every partition of the group is applied: sends the messages of all of them
   — one record per destination partition for the whole group, holding a segment
   per source partition and input record, so a group spanning four partitions sends
   a quarter of the records — and each partition's changelog records, waits for the
   broker's acknowledgements (one round trip for the group), then writes each
   partition's state, input offset and changelog offset in one RocksDB WriteBatch.

A crash between 4's send and write is survived by replay: the group is redone
from the stored offset, the receivers drop the segments they have, and state is
applied exactly once. Any unexpected exception stops the process (exit 70), so
that faust never commits the offset of a record whose work was lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import msgspec

from stream.core.ingest import Rejection
from stream.settings import Settings
from stream.shell.metrics import METRICS
from stream.shell.outbox import Outbox
from stream.shell.rewind import Rewind
from stream.shell.sender import BatchSender
from stream.shell.store import BatchStore

log = logging.getLogger(__name__)

GROUP_MAX = 500
GROUP_MAX_BYTES = 4 * 1024 * 1024
"""A group ends once its records hold this many bytes (records are batches: 500 of them
held up to 100k events, and a group's size is its memory and its first output's delay)."""
GROUP_WAIT = 0.005
YIELD_AFTER = 0.002
"""Seconds of work after which a stage lets the event loop serve others (API lookups).
2 ms instead of 5 took the API's p99 from 28-33 to 19-21 ms at 1,400 events/s, with the
same CPU and event latency."""


def fatal(what: str, exc: BaseException) -> None:
    """Stop the process now: committing past lost work would lose events."""
    log.critical("%s failed: %r; stopping the worker so no offset is committed past it", what, exc)
    traceback.print_exception(exc, file=sys.stderr)
    sys.stderr.flush()
    os._exit(70)


class StageRunner:
    """Applies one stage to the records of its input topic (see module doc)."""

    def __init__(
        self,
        name: str,
        settings: Settings,
        table: Any,
        process: Callable[[Any, list[Any], Outbox], None],
        decode: Callable[[bytes], list[Any]],
        sender: Callable[[], BatchSender],
        observe: Callable[[], None] | None = None,
        rewind: Rewind | None = None,
    ) -> None:
        self.name = name
        self.rewind = rewind if rewind is not None else Rewind(None)
        self.settings = settings
        self.table = table
        self.process = process
        self.decode = decode
        self._sender_factory = sender
        self._sender: BatchSender | None = None
        self._positions: dict[str, int] = {}
        self.metric_records = METRICS.stage_records.labels(name)
        self.metric_skipped = METRICS.stage_replays_skipped.labels(name)
        self.metric_seconds = METRICS.stage_seconds.labels(name)
        self.metric_latency = METRICS.stage_latency.labels(name)
        # called after each committed group: moves the stage's counters by its counts
        self.observe = observe

    @property
    def store(self) -> BatchStore:
        return self.table.data

    def _position(self, partition: int, tp: str) -> int:
        key = f"{partition}|{tp}"
        position = self._positions.get(key)
        if position is None:
            position = self.store.input_offset(partition).get(tp, -1)
            self._positions[key] = position
        return position

    def forget(self) -> None:
        """After a rebalance, positions are re-read from the partitions' state."""
        self._positions.clear()
        self.rewind.forget()

    async def handle(self, messages: Sequence[Any]) -> None:
        """Apply a group of input records (in arrival order), then commit every
        partition of the group together (one broker round trip for all of them)."""
        if not self.rewind.settled():
            self.rewind.refuse(list(messages))  # delivered again once faust settles
            return
        try:
            started = time.perf_counter()
            by_partition: dict[int, list[Any]] = {}
            for message in messages:
                by_partition.setdefault(message.partition, []).append(message)
            applied = []
            outbox = Outbox(self.settings)
            for partition, records in by_partition.items():
                done = await self._partition(partition, records, outbox)
                if done is not None:
                    applied.append(done)
            if not applied:
                return
            await self.commit(applied, outbox)
            for group in applied:
                self._positions[f"{group.partition}|{group.tp}"] = group.offset
            self.metric_seconds.observe(time.perf_counter() - started)
            oldest = min(g.oldest for g in applied)  # faust: seconds (in offset order)
            if oldest:
                self.metric_latency.observe(max(0.0, time.time() - oldest))
            if self.observe is not None:
                self.observe()
        except Exception as exc:  # see fatal()
            first = messages[0] if messages else None
            where = f"{first.topic}:{first.partition}@{first.offset}" if first else "?"
            fatal(f"stage {self.name} at {where}", exc)

    async def _partition(
        self, partition: int, records: list[Any], outbox: Outbox
    ) -> Applied | None:
        """Apply a partition's records in offset order (see the module doc), their
        messages into ``outbox``; what to commit."""
        tp = f"{records[0].topic}:{partition}"
        position = self._position(partition, tp)
        txn = self.store.txn(partition)
        source = f"{self.name}:{partition}"
        last = None
        yielded = time.perf_counter()
        expected = position + 1 if position >= 0 else self.rewind.committed(records[0])
        for message in records:
            if message.offset <= position:
                self.metric_skipped.inc()
                continue
            # A hole (see stream/shell/rewind.py): our internal topics have no compaction
            # and no transaction markers, so records expected..offset-1 exist and were
            # not handed to us. Apply nothing past it.
            hole = expected is not None and message.offset > expected
            if hole and await self.rewind.to(
                message.topic,
                partition,
                expected,
                f"stage {self.name} {tp}: records {expected}..{message.offset - 1} "
                f"missing before {message.offset}",
            ):
                break
            expected = message.offset + 1
            last = message.offset
            outbox.begin(source, message.offset)
            self.process(txn, self._fresh(txn, message, outbox), outbox)
            self.metric_records.inc()
            if time.perf_counter() - yielded > YIELD_AFTER:
                # a group can hold seconds of work: let the API and the other agents in
                await asyncio.sleep(0)
                yielded = time.perf_counter()
        if last is None:
            return None
        return Applied(partition, tp, last, txn, records[0].timestamp or 0.0)

    def _fresh(self, txn: Any, message: Any, outbox: Outbox) -> list[Any]:
        """The messages of a record's segments that were not applied yet."""
        try:
            segments = self.decode(message.value)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            # Our own records: never expected. Keep the evidence, do not stop the stage.
            METRICS.dead_letters.labels(self.name, "internal_decode").inc()
            outbox.dead_letter(
                message.topic,
                message.partition,
                message.offset,
                Rejection("internal_decode", str(exc), message.value or b""),
            )
            return []
        fresh: list[Any] = []
        for source, seq, items in segments:
            key = "h:" + source
            hwm = txn.get(key)
            if hwm is not None and seq <= hwm:
                self.metric_skipped.inc()
                continue
            txn.put(key, seq)
            fresh.extend(items)
        return fresh

    async def commit(self, applied: list[Applied], outbox: Outbox) -> None:
        """Send the group's messages and every partition's changelog records, wait for
        all the acknowledgements at once, then write each partition's WriteBatch."""
        if self._sender is None:
            self._sender = self._sender_factory()
        sender = self._sender
        store = self.store
        changelog = self.table.changelog_topic.get_topic_name()
        sent = await outbox.send(sender)
        waits = []
        for group in applied:
            commit = store.prepare(group.txn, {group.tp: group.offset})
            logged = await sender.send(changelog, group.partition, commit.records)
            waits.append((group, logged, commit))
        for s in sent:
            await s.last_offset()
        for group, logged, commit in waits:
            changelog_offset = await logged.last_offset()
            store.apply_local(
                group.partition, commit.changes, commit.marker, changelog_offset, group.txn
            )


class Applied(NamedTuple):
    """A partition's applied records in a group, waiting for their commit."""

    partition: int
    tp: str
    offset: int
    txn: Any
    oldest: float
