"""Running a pure stage inside a Faust agent, a group of input records at a time.

The agent takes what its stream has buffered (:mod:`stream.shell.batching`: up to
``GROUP_MAX`` records or ``GROUP_MAX_BYTES``, waiting at most ``GROUP_WAIT`` seconds
after the first) and, for each
partition in the group:

1. skips records at or below the input offset committed with the partition's
   state (a redelivery after a restart), and applies the others strictly in offset
   order from there: a record past the next expected one (a hole faust left, see
   :mod:`stream.shell.rewind`) is not applied, the partition is sought back instead
   (offsets that hold no record, given up, are skipped: ``Rewind.floor_of``);
   nothing is applied while faust is still assigning or recovering partitions;
2. decodes each record's segments and drops those a sender already delivered
   (the highest ``seq`` per ``source`` is kept in the state: ``h:{source}``);
3. runs the core stage over a :class:`~stream.shell.store.Txn` of the partition,
   once per input record, collecting messages in the group's
   :class:`~stream.shell.outbox.Outbox` (each input record's messages tagged with
   this stage, its partition and its offset: a segment). Every ``C360_YIELD_AFTER`` of
   work it hands the event loop to the API and the other agents: between records,
   and between the steps of a stage whose process is a generator (the profile
   stage's ``steps``: one record can hold tens of milliseconds of work);
4. once every partition of the group is applied: sends the messages of all of them
   — one record per destination partition for the whole group, holding a segment
   per source partition and input record, so a group spanning four partitions sends
   a quarter of the records — and waits for the broker's acknowledgements;
5. commits each partition whose transaction has been open ``state_commit_interval``
   seconds (or holds ``OPEN_MAX_WRITES`` changes): sends its changelog records,
   waits for them (one round trip for all such partitions), then writes its state,
   input offset and changelog offset in one RocksDB WriteBatch. A partition not due
   keeps its transaction open: the next group goes on in it, and reads see its
   writes. So small groups under steady input (paced traffic: a group is a record or
   two) write a person row touched in many of them once, not once per group: the
   profile changelog of the same 36,000 events at 4,500 events/s was 46 MB with a
   commit per group (29 MB with 0.2 s), against 9 MB drained. When no record comes,
   the agent is woken to commit what is due (:func:`~stream.shell.batching.take_groups`'
   ``idle``).

A crash between the sends of 4 and the write of 5 is survived by replay: the
records are redone from the stored offset, the receivers drop the segments they have,
and state is applied exactly once. A rebalance or a stop drops open transactions the
same way (their partitions' databases may be closed or handed over): at most
``state_commit_interval`` of input is redone. faust may have committed those records
(a group's events are acknowledged when it ends): a record arriving past them shows
the hole (:mod:`stream.shell.rewind`), and :meth:`StageRunner.realign` seeks back to
them after every start and rebalance when none arrives.
Any unexpected exception stops the process (exit 70), so that faust never commits
the offset of a record whose work was lost.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple

import msgspec

from stream.core.ingest import Rejection
from stream.settings import Settings
from stream.shell.metrics import METRICS
from stream.shell.observe import Hook
from stream.shell.outbox import Outbox
from stream.shell.rewind import Rewind
from stream.shell.sender import BatchSender
from stream.shell.store import BatchStore, input_key

log = logging.getLogger(__name__)

GROUP_MAX = 500
GROUP_MAX_BYTES = 4 * 1024 * 1024
"""A group ends once its records hold this many bytes (records are batches: 500 of them
held up to 100k events, and a group's size is its memory and its first output's delay)."""
GROUP_WAIT = 0.005
OPEN_MAX_WRITES = 50_000
"""A partition's open transaction is committed once it holds this many changes (its
memory, and the size of its changelog send)."""

_ONE_STEP = (None,)
"""What a stage whose process returns nothing counts as: a record in one step."""


class Pacer:
    """Lets the event loop serve others (API lookups, other agents) once ``after``
    seconds of work (``C360_YIELD_AFTER``) have passed since it last did:
    ``if pace.due(): await pace.rest()``."""

    __slots__ = ("after", "since")

    def __init__(self, after: float) -> None:
        self.after = after
        self.since = time.perf_counter()

    def due(self) -> bool:
        return time.perf_counter() - self.since > self.after

    async def rest(self) -> None:
        await asyncio.sleep(0)
        self.since = time.perf_counter()


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
        process: Callable[[Any, list[Any], Outbox], Iterator[None] | None],
        decode: Callable[[bytes], list[Any]],
        sender: Callable[[], BatchSender],
        observe: Hook | None = None,
        rewind: Rewind | None = None,
        topic: str | None = None,
    ) -> None:
        self.name = name
        self.topic = topic  # the input topic (for realign)
        self._realign = True  # once faust has settled (see realign)
        self.rewind = rewind if rewind is not None else Rewind(None)
        self.settings = settings
        self.table = table
        self.process = process
        self.decode = decode
        self._sender_factory = sender
        self._sender: BatchSender | None = None
        self._positions: dict[str, int] = {}  # by input_key (topic:partition)
        self._open: dict[int, _Open] = {}  # partitions whose transaction is not committed
        self._generation = 0  # moved by forget: a group that saw it move is dropped
        self._busy = False  # handling a group (see unstick)
        self.commit_interval = settings.state_commit_interval
        self.yield_after = settings.yield_after
        self.metric_records = METRICS.stage_records.labels(name)
        self.metric_skipped = METRICS.stage_replays_skipped.labels(name)
        self.metric_seconds = METRICS.stage_seconds.labels(name)
        self.metric_latency = METRICS.stage_latency.labels(name)
        # the stage's counters: what grew while a partition's records were applied is
        # held with its open transaction and moved once its state is written (Hook)
        self.observe = observe

    @property
    def store(self) -> BatchStore:
        return self.table.data

    def _position(self, partition: int, tp: str) -> int:
        """The last input offset applied on ``tp`` (its :func:`input_key`), -1: none."""
        position = self._positions.get(tp)
        if position is None:
            position = self.store.input_offset(partition).get(tp, -1)
            self._positions[tp] = position
        return position

    def forget(self) -> None:
        """Keep nothing of work not committed (after a rebalance, or work abandoned half
        done): positions are re-read from the partitions' state, and open transactions
        are dropped (a stage changes the values its transaction read in place). Their
        input is redone from the stored offsets (:meth:`realign`, or the hole the next
        record shows)."""
        self._positions.clear()
        self._open.clear()
        self._generation += 1
        self._realign = True
        self.rewind.forget()

    def due_in(self) -> float | None:
        """Seconds until an open transaction is due for its commit (None: none open, or
        faust is rebalancing, which drops them: see :meth:`forget`)."""
        if not self._open or not self.rewind.settled() or self._stopping():
            return None
        oldest = min(o.since for o in self._open.values())
        return max(0.0, oldest + self.commit_interval - time.monotonic())

    async def realign(self) -> None:
        """Once faust has settled after a start or a rebalance: seek every partition of
        the input topic assigned here whose stored input offset is behind the group's
        committed offset back to the first record not applied.

        faust commits what a group's events acknowledged, and a group's state may still
        be open then (or be dropped by a stop or a rebalance): the records between are
        delivered again only if something asks for them. A record arriving past them
        does (a hole, see :meth:`_partition`); this does it when none arrives."""
        if not self._realign or not self.rewind.settled():
            return
        self._realign = False
        try:
            for tp in self._assigned():
                key = input_key(tp.topic, tp.partition)
                stored = self.store.input_offset(tp.partition).get(key, -1)
                start = max(stored + 1, self.rewind.floor_of(tp.topic, tp.partition))
                committed = self.rewind.committed(tp)
                if committed is not None and start < committed:
                    await self.rewind.to(
                        tp.topic,
                        tp.partition,
                        start,
                        f"stage {self.name} {key}: records {start}..{committed - 1} "
                        "were committed by the group but not with the state",
                        "realign",
                    )
        except Exception as exc:  # e.g. a partition revoked meanwhile: try again
            log.warning("stage %s: realign failed, trying again: %r", self.name, exc)
            self._realign = True

    async def unstick(self) -> None:
        """Seek back every partition of the input topic assigned here that the consumer
        fetched records for and never handed over (see :meth:`Rewind.unstick`)."""
        if self._realign or not self.rewind.settled():
            return  # realign first: it may seek these partitions back itself
        try:
            for tp in self._assigned():
                expected = max(
                    self._position(tp.partition, input_key(tp.topic, tp.partition)) + 1,
                    self.rewind.floor_of(tp.topic, tp.partition),
                )
                await self.rewind.unstick(tp, expected, self._busy)
        except Exception as exc:  # e.g. a partition revoked meanwhile: the next check
            log.warning("stage %s: unstick check failed: %r", self.name, exc)

    def _assigned(self) -> list[Any]:
        """The partitions of the input topic assigned here (none outside a worker)."""
        app = self._app()
        if app is None or self.topic is None:
            return []
        return sorted(tp for tp in app.consumer.assignment() if tp.topic == self.topic)

    def _current(self, generation: int) -> bool:
        """Whether no rebalance began or came since ``generation`` was read."""
        return generation == self._generation and self.rewind.settled()

    def _app(self) -> Any:
        """The faust app of the stage's table (None outside a worker: unit tests)."""
        return getattr(self.table, "app", None)

    def _stopping(self) -> bool:
        """Whether the worker is stopping: its tables close their databases, and what is
        open is dropped (redone from the stored offsets on the next start)."""
        app = self._app()
        return bool(app is not None and app.should_stop)

    async def handle(self, messages: Sequence[Any]) -> None:
        """Apply a group of input records (in arrival order), send their outputs, then
        commit the partitions that are due together (one broker round trip for all of
        them). An empty group only commits what is due."""
        if not self.rewind.settled():
            self.rewind.refuse(list(messages))  # delivered again once faust settles
            return
        if not messages and self._stopping():
            return
        self._busy = True
        try:
            await self._handle(messages)
        finally:
            self._busy = False

    async def _handle(self, messages: Sequence[Any]) -> None:
        try:
            generation = self._generation
            started = time.perf_counter()
            opened = time.monotonic()  # when a transaction this group opens began
            by_partition: dict[int, list[Any]] = {}
            for message in messages:
                by_partition.setdefault(message.partition, []).append(message)
            applied = []
            outbox = Outbox(self.settings)
            for partition, records in by_partition.items():
                done = await self._partition(partition, records, outbox)
                if done is not None:
                    applied.append(done)
            if generation != self._generation:
                # a rebalance came while the group was applied (forget dropped what it
                # built on): drop it too, its input is redone from the stored offsets
                self.forget()
                return
            if not applied and not self._open:
                return
            if not await self.commit(applied, outbox, opened):
                self.forget()  # the same, while it was sent
                return
            for group in applied:
                self._positions[group.tp] = group.offset
            if not applied:
                return
            self.metric_seconds.observe(time.perf_counter() - started)
            oldest = min(g.oldest for g in applied)  # faust: seconds (in offset order)
            if oldest:
                self.metric_latency.observe(max(0.0, time.time() - oldest))
            if self.observe is not None and self.observe.after is not None:
                self.observe.after()
        except Exception as exc:  # see fatal()
            if self._stopping() or not self.rewind.settled():
                # a stop or a rebalance closed databases under a commit. Nothing is lost
                # if nothing of it is kept: open state and positions (a stage changes the
                # values its transaction read in place) may hold the failed group's half
                # work; what was not written is redone from the stored offsets (realign).
                log.warning("stage %s: group cut short by a stop or rebalance: %r", self.name, exc)
                self.forget()
                return
            first = messages[0] if messages else None
            where = f"{first.topic}:{first.partition}@{first.offset}" if first else "?"
            fatal(f"stage {self.name} at {where}", exc)

    async def _partition(
        self, partition: int, records: list[Any], outbox: Outbox
    ) -> Applied | None:
        """Apply a partition's records in offset order (see the module doc), their
        messages into ``outbox``; what to commit."""
        tp = input_key(records[0].topic, partition)
        position = self._position(partition, tp)
        open_ = self._open.get(partition)
        txn = open_.txn if open_ is not None else self.store.txn(partition)
        source = f"{self.name}:{partition}"
        last = None
        pace = Pacer(self.yield_after)
        before = self.observe.read() if self.observe is not None else {}
        n = 0
        # From the first record not stored, even with no state stored yet: the group's
        # committed offset is no start (it can be past state that was open, see realign).
        topic = records[0].topic
        expected = max(position + 1, self.rewind.floor_of(topic, partition))
        sought = None  # the offset this group sought the partition back to
        for message in records:
            if message.offset < expected:
                self.metric_skipped.inc()
                continue
            # A hole (see stream/shell/rewind.py): our internal topics have no compaction
            # and no transaction markers, so records expected..offset-1 exist (unless
            # retention deleted them) and were not handed to us. Apply nothing past it,
            # but look on: after a seek back, records buffered before it (past the hole)
            # still come first, and the records sought back behind them, often in the
            # same group.
            if message.offset > expected:
                if sought == expected:
                    continue  # this group asked for them already
                expected, wait = await self.rewind.hole(message, expected, f"stage {self.name}")
                if wait:
                    sought = expected
                    continue
            expected = message.offset + 1
            last = message.offset
            outbox.begin(source, message.offset)
            steps = self.process(txn, self._fresh(txn, message, outbox), outbox)
            # a group can hold seconds of work, and a stage that works in steps (its
            # process a generator) one record tens of ms: let the API and others in
            for _ in steps or _ONE_STEP:
                if pace.due():
                    await pace.rest()
            n += 1
        if last is None:
            return None
        counts = self.observe.grown(before, self.observe.read()) if self.observe else {}
        counts[self.metric_records] = n
        return Applied(partition, tp, last, txn, records[0].timestamp or 0.0, counts)

    def _fresh(self, txn: Any, message: Any, outbox: Outbox) -> list[Any]:
        """The messages of a record's segments that were not applied yet."""
        try:
            segments = self.decode(message.value)
        except (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError, TypeError) as exc:
            # Not one of our own records (an empty value, bytes that are not UTF-8, …):
            # never expected. Keep the evidence, do not stop the stage.
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

    async def commit(self, applied: list[Applied], outbox: Outbox, opened: float) -> bool:
        """Send the group's messages, wait for their acknowledgements, then send the
        changelog records of every partition that is due, wait for them, and write each
        due partition's WriteBatch: a changelog marker is sent only once the outputs of
        all the records it covers were acknowledged (those of earlier groups were, before
        their group ended; the due partitions' rows are encoded meanwhile). ``opened``: when the
        group began (a transaction it opened is as old as that: a long group is due at
        its end). False when a rebalance began or came while waiting (see
        :meth:`forget`): then nothing more is sent or written (the input is redone from
        the stored offsets). A commit of an idle agent (an empty group) holds no record
        faust waits for before it revokes partitions, so it checks before its changelog
        sends: faust flags the rebalance first, then waits, flushes the producer and
        hands the partitions over; what was sent before the flag is in the changelog the
        next owner recovers."""
        generation = self._generation
        if self._sender is None:
            self._sender = self._sender_factory()
        sender = self._sender
        store = self.store
        now = time.monotonic()
        for group in applied:
            open_ = self._open.get(group.partition)
            if open_ is None:
                open_ = self._open[group.partition] = _Open(
                    group.txn, group.tp, group.offset, opened
                )
            else:
                open_.offset = group.offset
            for counter, n in group.counts.items():
                open_.counts[counter] = open_.counts.get(counter, 0) + n
        due = [
            (partition, open_)
            for partition, open_ in self._open.items()
            if now - open_.since >= self.commit_interval or len(open_.txn.writes) >= OPEN_MAX_WRITES
        ]
        for partition, _ in due:
            del self._open[partition]
        sent = await outbox.send(sender)
        encoded = []  # a commit of 0.2 s of paced input encodes for a few ms
        pace = Pacer(self.yield_after)
        for partition, open_ in due:
            changes = []
            for change in open_.txn.encoded():
                changes.append(change)
                if pace.due():
                    await pace.rest()
            encoded.append((partition, open_, changes))
        # every output of the records a commit covers is acknowledged before its changelog
        # is sent: recovery applies a changelog whose marker it finds, so a marker sent
        # beside outputs that then failed (the worker stops on it) had the restart skip
        # records whose outputs were never written
        for s in sent:
            await s.last_offset()
        changelog = self.table.changelog_topic.get_topic_name()
        waits = []
        for partition, open_, changes in encoded:
            # before each partition's send: a send can wait in the producer, and records
            # sent once faust flushed and handed the partition over land in a changelog
            # its next owner is reading (what was sent before the flag is in it)
            if not self._current(generation):
                return False
            commit = store.prepare(changes, {open_.tp: open_.offset})
            logged = await sender.send(changelog, partition, commit.records)
            waits.append((partition, logged, commit, open_))
        logged_at = [(await logged.last_offset()) for _, logged, _, _ in waits]
        if not self._current(generation):
            return False
        for (partition, _, commit, open_), changelog_offset in zip(waits, logged_at, strict=True):
            store.apply_local(partition, commit.changes, commit.marker, changelog_offset)
            Hook.move(open_.counts)  # written: its records count now (never when redone)
        return True


class _Open:
    """A partition's transaction that is not committed yet: up to which input offset."""

    __slots__ = ("counts", "offset", "since", "tp", "txn")

    def __init__(self, txn: Any, tp: str, offset: int, since: float) -> None:
        self.txn = txn
        self.tp = tp
        self.offset = offset
        self.since = since
        self.counts: dict[Any, int] = {}  # what its records counted (Hook), until written


class Applied(NamedTuple):
    """A partition's applied records in a group, waiting for their commit."""

    partition: int
    tp: str
    offset: int
    txn: Any
    oldest: float
    counts: dict[Any, int]  # what the records counted (Hook), moved once written
