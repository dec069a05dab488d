"""Running a pure stage inside a Faust agent, one input record (a batch) at a time.

For each record the runner

1. skips it if its offset is not beyond the input position committed with the
   partition's state (a redelivery after a restart), or if its ``c360-src`` /
   ``c360-seq`` headers say this source's record was already applied;
2. runs the core stage over a :class:`~stream.shell.store.Txn` of the record's
   partition, collecting its messages in an :class:`~stream.shell.outbox.Outbox`;
3. sends the messages and the state's changelog records (batched per partition),
   waits for the broker's acknowledgement, then writes the state, the input
   position and the changelog position in one RocksDB WriteBatch.

A failure between steps is survived by replay: outputs may be sent twice (the
receivers drop them by their headers) but state is applied exactly once. Any
unexpected exception stops the process at once (exit code 70), so that faust
never commits the offset of a record whose work was lost.
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

import msgspec

from stream.settings import Settings
from stream.shell.metrics import METRICS
from stream.shell.outbox import Outbox, source_of
from stream.shell.sender import BatchSender
from stream.shell.store import BatchStore

log = logging.getLogger(__name__)


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
    ) -> None:
        self.name = name
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

    def forget(self, partitions: set[int]) -> None:
        """Positions of revoked partitions are re-read from their state when they come back."""
        for key in [k for k in self._positions if int(k.split("|", 1)[0]) in partitions]:
            del self._positions[key]

    async def handle(self, message: Any) -> None:
        try:
            await self._handle(message)
        except Exception as exc:
            fatal(f"stage {self.name} at {message.topic}:{message.partition}@{message.offset}", exc)

    async def _handle(self, message: Any) -> None:
        started = time.perf_counter()
        partition = message.partition
        tp = f"{message.topic}:{partition}"
        if message.offset <= self._position(partition, tp):
            self.metric_skipped.inc()
            return
        store = self.store
        txn = store.txn(partition)
        src, seq = source_of(message.headers)
        replayed = False
        if src is not None:
            hwm = txn.get("h:" + src)
            if hwm is not None and seq <= hwm:
                replayed = True
            else:
                txn.put("h:" + src, seq)
        outbox = Outbox(self.settings, f"{self.name}:{partition}", message.offset)
        if replayed:
            self.metric_skipped.inc()
        else:
            try:
                messages = self.decode(message.value)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                # Our own records: never expected. Keep the evidence, do not stop the stage.
                from stream.core.ingest import Rejection

                outbox.dead_letter(
                    message.topic,
                    partition,
                    message.offset,
                    Rejection("internal_decode", str(exc), message.value or b""),
                )
                messages = []
            self.process(txn, messages, outbox)
        await self.commit(partition, tp, message.offset, txn, outbox)
        self._positions[f"{partition}|{tp}"] = message.offset
        self.metric_records.inc()
        self.metric_seconds.observe(time.perf_counter() - started)

    async def commit(self, partition: int, tp: str, offset: int, txn: Any, outbox: Outbox) -> None:
        if self._sender is None:
            self._sender = self._sender_factory()
        sender = self._sender
        sent = await outbox.send(sender)
        store = self.store
        records, marker = store.changelog_records(txn, {tp: offset})
        changelog = self.table.changelog_topic.get_topic_name()
        logged = await sender.send(changelog, partition, [(k, v, None) for k, v in records])
        for s in sent:
            await s.last_offset()
        changelog_offset = await logged.last_offset()
        store.apply_local(partition, records, marker, changelog_offset)
