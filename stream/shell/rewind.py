"""Asking the consumer to deliver a partition again, from the first record not applied.

A stage applies the records of a partition strictly in offset order from the input
offset stored with its state, and it must never apply a record past one it has not
applied: the receivers' ``h:{source}`` rule would then drop the missing record's
segments for good. faust can hand a stage such a hole. On a restart (faust-streaming
0.15.3, seen in the kill -9 restart test), the fetcher already delivers stream
partitions while the tables are still recovering, and the recovery's "seek stream
partitions to committed offsets" updates the consumer's read offsets only after it has
sought every partition: records fetched again in between are below the stale read
offset and dropped as already read, the later ones open a gap that faust's commit
bookkeeping counts as acknowledged (it commits past records nobody applied) or, when
two offsets at the head are missing, never commits that partition again.

So:

- a stage that sees a record past the next one it expects applies nothing past the
  hole and seeks the consumer back to the missing offset (which also resets faust's read
  offset for it); the records it skipped come again after it (records buffered before
  the seek may still come first, in the same group: it looks on through its group). A
  hole is given up only when the log holds no record there (retention deleted them, or
  a transactional producer's markers), and the agent goes on from the first record
  left (:meth:`Rewind.to`, :meth:`Rewind.floor_of`);
- records handed over while faust is still assigning or recovering partitions are not
  applied (the state may be half recovered); their partitions are sought back to the
  first of them once faust has settled (faust acknowledges them anyway, and may even
  commit them, so nothing else would deliver them again). An agent that keeps no
  offsets of its own (ingest) also holds them: faust commits nothing of that
  partition until the agent has applied them all (:meth:`Rewind.hold`);
- a partition whose records the consumer fetched but never handed over (faust's
  ``getmany`` drops the rest of a fetch when a rebalance begins, and the records of a
  partition it does not count as active) shows no hole until a later record arrives:
  the last records of a partition that then goes quiet would wait for the next one.
  So an idle agent's partition that stays behind the end the consumer saw for
  ``STALL_SECONDS`` is sought back to its next record (:meth:`Rewind.unstick`; the
  kill -9 scale-out test failed once with ingest's committed offset of an input
  partition one short of its end, docs/design.md).
"""

from __future__ import annotations

import asyncio
import logging
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from typing import Any

from faust.types import TP

from stream.shell.isolation import ISOLATION
from stream.shell.metrics import METRICS

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0
"""A seek to the same offset is not repeated sooner (records already buffered after
the hole keep arriving until the seek takes effect)."""
GIVE_UP_AFTER = 30
"""Seeks to one offset before a consumer of its own reads again whether the log still
holds records there (:meth:`Rewind.first_record`; a hole is read at its first seek): a
hole is given up only where it holds none (retention, a transaction's markers)."""
PROBE_SECONDS = 5.0
"""How long one read of a log by :meth:`Rewind.first_record` or :meth:`Rewind.log_start`
may take, connecting included (the agent waits)."""
STALL_SECONDS = 2.0
"""How long an idle agent's partition may sit behind the records the consumer fetched for
it before it is sought back to them (see :meth:`Rewind.unstick`)."""


def settled(app: Any) -> bool:
    """Whether faust is done assigning and recovering: the consumer's positions and
    read offsets are those of the committed offsets, and the tables are recovered."""
    recovery = app.tables.recovery
    return recovery.completed.is_set() and not recovery.in_recovery and not app.rebalancing


class Rewind:
    """Seeks a consumer's partitions back to the offsets their agents need next."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self._asked: dict[tuple[str, int], tuple[int, float, int]] = {}
        self._refused: dict[tuple[str, int], int] = {}
        # per partition: the last hole whose log was read (first_record), and when the
        # read failed (None: it answered)
        self._read: dict[tuple[str, int], tuple[int, float | None]] = {}
        # per partition: the offset the last read of its log began at, and the offsets of
        # the records it brought (see first_record)
        self._seen: dict[tuple[str, int], tuple[int, list[int]]] = {}
        # the next offset to apply, for agents that keep no state (ingest)
        self.next: dict[tuple[str, int], int] = {}
        # offsets below which a partition holds no record to wait for (holes given up)
        self.floor: dict[tuple[str, int], int] = {}
        # per partition behind the end: (its next offset, since when it was that)
        self._behind: dict[tuple[str, int], tuple[int, float]] = {}
        # per partition sought back by unstick: (its next offset, the end) then
        self._unstuck: dict[tuple[str, int], tuple[int, int]] = {}
        # per partition of an agent without state (ingest): the first and last refused
        # records; faust commits none of the partition until they are applied (hold)
        self.held: dict[tuple[str, int], list[int]] = {}
        self._guarded = False
        self.count = 0
        self._probe: Any = None  # the consumer that reads where a log holds records
        self._probe_lock = asyncio.Lock()
        self._stopped = False  # the worker stops: no probe consumer is started any more

    def settled(self) -> bool:
        return self.app is None or settled(self.app)

    def refuse(self, messages: list[Any]) -> None:
        """Records not applied because faust had not settled: to be delivered again."""
        refused = self._refused
        for message in messages:
            key = (message.topic, message.partition)
            first = refused.get(key)
            if first is None or message.offset < first:
                refused[key] = message.offset

    def hold(self, messages: list[Any]) -> None:
        """Keep faust from committing these records' partitions until :meth:`release`
        says the agent applied them all (for an agent that keeps no offsets of its own:
        faust acknowledges a refused group like any other, and a commit past it before
        the seek back, followed by a kill or the partition moving, lost the records).

        While a partition is held, faust leaves it out of its commits altogether
        (:meth:`_guard`): capping the offset instead would lose faust's acknowledgements
        of the records after the cap (its ``_new_offset`` consumes them), which only a
        seek brings back. A hold from an earlier assignment of the partition that a
        commit has passed since (another worker's) is replaced, not kept."""
        held = self.held
        for message in messages:
            key = (message.topic, message.partition)
            span = held.get(key)
            if span is not None and self._passed(key, span):
                span = None
            if span is None:
                held[key] = [message.offset, message.offset]
            else:
                span[0], span[1] = min(span[0], message.offset), max(span[1], message.offset)
        self._guard()

    def release(self, topic: str, partition: int, next_offset: int) -> None:
        """The agent applied ``topic:partition`` up to ``next_offset`` (exclusive), and its
        outputs were acknowledged: a hold whose records are all behind it ends."""
        span = self.held.get((topic, partition))
        if span is not None and next_offset > span[1]:
            del self.held[(topic, partition)]

    def holding(self, tp: TP) -> bool:
        """Whether faust must not commit ``tp`` now. A hold that a commit has passed (the
        partition was owned elsewhere meanwhile) ends: it would stop commits for good."""
        key = (tp.topic, tp.partition)
        span = self.held.get(key)
        if span is None:
            return False
        if self._passed(key, span):
            del self.held[key]
            return False
        return True

    def _passed(self, key: tuple[str, int], span: list[int]) -> bool:
        committed = self.committed(TP(*key))
        return committed is not None and committed > span[0]

    def _guard(self) -> None:
        """Leave held partitions out of faust's commits (installed once)."""
        if self._guarded or self.app is None:
            return
        committable = self.app.consumer._filter_committable_offsets

        def unheld(tps: Any) -> dict[TP, int]:
            return committable([tp for tp in tps if not self.holding(tp)])

        self.app.consumer._filter_committable_offsets = unheld
        self._guarded = True

    async def in_order(
        self, events: list[Any], next_offset: Callable[[TP], int | None], who: str
    ) -> list[Any]:
        """For an agent that keeps no offsets of its own (ingest): the events to apply,
        each partition's records from the one expected next (``next_offset``: None, any),
        without holes (a hole seeks the partition back; records past it wait, and the
        records sought back are applied when they come, in this group too).
        Records handed over before faust settled are refused and held (:meth:`hold`)."""
        if not self.settled():
            refused = [event.message for event in events]
            self.refuse(refused)  # delivered again once faust settles
            self.hold(refused)  # and never committed past until then
            return []
        expected = self.next
        out = []
        sought: dict[tuple[str, int], int] = {}  # where this group sought partitions back
        for event in events:
            msg = event.message
            tp = (msg.topic, msg.partition)
            want = next_offset(msg.tp)
            if want is not None:
                want = expected[tp] = max(want, self.floor_of(*tp))
            if want is not None and msg.offset < want:
                continue  # applied already (a redelivery)
            # a hole: nothing past it, but look on (the records a seek brings back can
            # come behind records buffered before it, in the same group)
            if want is not None and msg.offset > want:
                if sought.get(tp) == want:
                    continue
                want, wait = await self.hole(msg, want, who)
                expected[tp] = want
                if wait:
                    sought[tp] = want
                    continue
            expected[tp] = msg.offset + 1
            out.append(event)
        return out

    async def hole(self, msg: Any, expected: int, who: str) -> tuple[int, bool]:
        """``msg`` came past ``expected``, the next offset its agent applies: (the offset
        to expect next, whether to wait). Waits for the records before it, sought back
        (:meth:`to`, which first reads whether the log holds any); when they are given up,
        goes on from the floor, seeking back to it first if records from there on come
        before ``msg``."""
        topic, partition = msg.topic, msg.partition
        if await self.to(topic, partition, expected, _missing(who, msg, expected), probe=True):
            return expected, True
        floor = self.floor_of(topic, partition)  # given up: on from the floor
        if msg.offset > floor:  # the records from the floor on exist: those first
            await self.to(topic, partition, floor, _missing(who, msg, floor))
            return floor, True
        return floor, False

    async def flush(self) -> None:
        """Once faust has settled, seek the partitions of refused records back to them."""
        if not self._refused or not self.settled():
            return
        refused, self._refused = self._refused, {}
        for (topic, partition), offset in sorted(refused.items()):
            await self.to(
                topic, partition, offset, "records handed over before recovery ended", "refused"
            )

    async def to(
        self,
        topic: str,
        partition: int,
        offset: int,
        why: str,
        reason: str = "hole",
        probe: bool = False,
    ) -> bool:
        """Seek ``topic:partition`` back to ``offset``; False when the caller should go on
        from :meth:`floor_of` instead: the log holds no record from ``offset`` up to the
        floor (a transactional producer's commit markers, which take offsets and are never
        handed to a consumer, or records retention deleted). Whether it holds any is read
        by a consumer of its own (:meth:`first_record`) at the first seek to an offset when
        ``probe`` (a hole: a record past it came; seeks there for other reasons, such as
        unstick's at a marker that ends the log, do not count; a read that failed is tried
        again a second later), and after ``GIVE_UP_AFTER`` seeks to it in any case.
        Records that still exist are sought again, however often it takes: seeks can fail
        to bring them (faust delivers the rest of what it fetched before a seek after it,
        and then drops the records fetched again below its read offset), and a caller
        that went on without them lost them for good. So a caller that is told False goes
        on from the floor, not from the record at hand: records between may exist.
        ``reason`` labels ``c360_redeliveries_total``: hole, refused, realign, unstick."""
        key = (topic, partition)
        offset = max(offset, self.floor.get(key, 0))  # below the floor: nothing to wait for
        tp = TP(topic, partition)
        now = time.monotonic()
        asked = self._asked.get(key)
        if asked is not None and asked[0] != offset:
            asked = None  # another offset: a new hole
        # a hole whose log was not read yet: read it even if a seek that was not for a
        # hole (unstick at a marker that ends the log, realign, refused) went there first,
        # and again a second after a read that failed
        read = self._read.get(key)
        unread = probe and (
            read is None
            or read[0] != offset
            or (read[1] is not None and now - read[1] >= RETRY_SECONDS)
        )
        if not unread and asked is not None and now - asked[1] < RETRY_SECONDS:
            return True
        if unread or (asked is not None and asked[2] >= GIVE_UP_AFTER):
            if not unread:  # read the log afresh: records seen may be gone (retention)
                self._seen.pop(key, None)
            first = await self.first_record(tp, offset)
            self._read[key] = (offset, None if first is not None else now)
            if first is not None and first > offset:
                await self._gone(tp, offset, first, why)
                self.floor[key] = first
                self._asked.pop(key, None)
                return False
            if asked is not None and asked[2] >= GIVE_UP_AFTER:
                log.error(
                    "%s: sought back to offset %d %d times, and the first record the log "
                    "holds from there is at %s: seeking again",
                    why,
                    offset,
                    asked[2],
                    "an unknown offset" if first is None else first,
                )
                asked = (offset, asked[1], 0)
            elif asked is not None and now - asked[1] < RETRY_SECONDS:
                return True  # the records exist, and were sought there just now
        tries = asked[2] + 1 if asked is not None else 1
        self._asked[key] = (offset, now, tries)
        self.count += 1
        METRICS.redeliveries.labels(reason).inc()
        self.next[key] = min(self.next.get(key, offset), offset)
        # Never past the group's committed offset: faust commits a partition only once
        # every offset from there on was acknowledged in this assignment.
        committed = self.committed(tp)
        if committed is not None and committed < offset:
            offset = committed
        log.warning("%s: seeking %s:%d back to offset %d", why, topic, partition, offset)
        if self.app is None:
            return True
        try:
            await self.app.consumer.seek_wait({tp: offset})
        except Exception as exc:  # e.g. the partition was revoked meanwhile
            log.warning("seek of %s:%d to %d failed: %r", topic, partition, offset, exc)
        return True

    async def _gone(self, tp: TP, offset: int, first: int, why: str) -> None:
        """Say that ``tp``'s offsets ``offset..first-1`` hold no record: quietly for a
        transaction's markers (one per transaction), loudly for records retention deleted
        before an agent applied them."""
        seen = self._seen.get((tp.topic, tp.partition))
        if seen is not None and seen[1][0] < offset:  # a record before them: not retention
            start = None
        else:
            start = await self.log_start(tp)
        if start is not None and start > offset:
            log.error(
                "%s: records %d..%d were deleted (retention) before they were applied; "
                "going on from %d",
                why,
                offset,
                start - 1,
                first,
            )
        else:
            log.debug(
                "%s: offsets %d..%d hold no record (a transaction's markers); going on from %d",
                why,
                offset,
                first - 1,
                first,
            )

    async def unstick(self, tp: TP, expected: int, busy: bool) -> bool:
        """Seek ``tp`` back to ``expected`` (the next offset its agent applies) when the
        consumer has seen records up to a higher end and, for ``STALL_SECONDS``, the
        agent was idle (``busy`` false) and ``expected`` did not move: those records were
        fetched and never handed over. True when it sought. Once per next offset and
        end: offsets without records (a transactional producer's markers, a compacted
        topic's gaps) look the same and are not there to deliver. Call it only once
        faust has settled; a seek it did not need redelivers records the agent skips."""
        key = (tp.topic, tp.partition)
        end = self.end(tp)
        now = time.monotonic()
        if busy or end is None or expected >= end or self._unstuck.get(key) == (expected, end):
            self._behind.pop(key, None)
            return False
        behind = self._behind.get(key)
        if behind is None or behind[0] != expected:
            self._behind[key] = (expected, now)
            return False
        if now - behind[1] < STALL_SECONDS:
            return False
        del self._behind[key]
        self._unstuck[key] = (expected, end)
        await self.to(
            tp.topic,
            tp.partition,
            expected,
            f"{tp.topic}:{tp.partition}: records {expected}..{end - 1} were fetched but "
            f"not handed over for {STALL_SECONDS:g}s",
            "unstick",
        )
        return True

    def floor_of(self, topic: str, partition: int) -> int:
        """The offset below which ``topic:partition`` holds no record an agent still waits
        for (0: none known): holes given up (:meth:`to`) end there."""
        return self.floor.get((topic, partition), 0)

    async def first_record(self, tp: TP, offset: int) -> int | None:
        """The offset of the first record ``tp``'s log holds at or after ``offset``, read by
        a consumer of its own (None: not known, or none yet). Past the log's start if
        retention deleted ``offset``; past a transaction's markers, which take offsets and
        are never handed to a consumer. Call it where a record past ``offset`` exists
        (a hole): otherwise it waits up to ``PROBE_SECONDS`` for one. The offsets of the
        records a read brings (a fetch: up to 64 KiB) are kept, and an offset up to the
        last of them is answered from them: a producer of small transactions leaves a
        marker every few offsets, and a read for each cost more than ingest itself."""
        key = (tp.topic, tp.partition)
        seen = self._seen.get(key)
        if seen is not None and seen[0] <= offset <= seen[1][-1]:
            return seen[1][bisect_left(seen[1], offset)]

        async def read(probe: Any, where: Any) -> int | None:
            # The partitions read stay assigned, paused between reads: assigning anew (or
            # nothing, which asks for every topic) sent metadata requests at every read
            assigned = probe.assignment()
            if where not in assigned:
                probe.assign([*assigned, where])
                probe.pause(*assigned)
            probe.resume(where)
            probe.seek(where, offset)
            try:
                timeout = int(PROBE_SECONDS * 500)
                batch = await probe.getmany(where, timeout_ms=timeout)
            finally:
                probe.pause(where)  # no fetching in the background between reads
                probe.seek(where, offset)  # nor the rest of the fetch kept (it holds fetches)
            records = batch.get(where) or []
            if not records:
                return None
            self._seen[key] = (offset, [record.offset for record in records])
            return records[0].offset

        return await self._probing(tp, read)

    async def log_start(self, tp: TP) -> int | None:
        """The first offset ``tp``'s log still holds (None: not known)."""

        async def read(probe: Any, where: Any) -> int | None:
            return (await probe.beginning_offsets([where])).get(where)

        return await self._probing(tp, read)

    async def _probing(
        self, tp: TP, read: Callable[[Any, Any], Awaitable[int | None]]
    ) -> int | None:
        """``read(probe, where)`` (``where``: ``tp`` as aiokafka names it) with the consumer
        kept for probes, started on first use, one read at a time, bounded by
        ``PROBE_SECONDS`` (the agent waits, and a rebalance waits for the agent). A probe
        that fails is stopped, and the next read starts another; none once :meth:`stop`
        was called (None: not known)."""
        if self.app is None:
            return None

        from aiokafka.structs import TopicPartition

        async def probing() -> int | None:
            if self._probe is None:
                self._probe = self._new_probe()
                await self._probe.start()
            return await read(self._probe, TopicPartition(tp.topic, tp.partition))

        async with self._probe_lock:
            if self._stopped:
                return None
            try:
                return await asyncio.wait_for(probing(), PROBE_SECONDS)
            except Exception as exc:  # the broker did not answer: the records may exist
                log.warning("reading %s:%d's log failed: %r", tp.topic, tp.partition, exc)
                await self._close()
                return None

    def _new_probe(self) -> Any:
        from aiokafka import AIOKafkaConsumer

        servers = [f"{url.host}:{url.port or 9092}" for url in self.app.conf.broker]
        return AIOKafkaConsumer(
            bootstrap_servers=servers,
            enable_auto_commit=False,
            auto_offset_reset="earliest",  # below the log's start: from its first record
            request_timeout_ms=int(PROBE_SECONDS * 1000),
            max_partition_fetch_bytes=64 * 1024,  # a read's records (a batch comes whole)
            isolation_level=ISOLATION,  # as the worker's: an aborted record is no record
        )

    async def stop(self) -> None:
        """Stop the probe consumer, if one was started (the worker stops), once the read
        under way is done, and for good: stopped under a read, it failed the read, and a
        read after it started a consumer that nothing stopped."""
        self._stopped = True
        async with self._probe_lock:
            await self._close()

    async def _close(self) -> None:
        probe, self._probe = self._probe, None
        if probe is not None:
            try:
                await probe.stop()
            except Exception as exc:
                log.warning("stopping the probe consumer failed: %r", exc)

    def end(self, tp: TP) -> int | None:
        """The end offset of ``tp`` as the consumer last saw it (None: not known)."""
        if self.app is None:
            return None
        try:
            end = self.app.consumer.highwater(tp)
        except Exception:  # not assigned (any more), or the consumer is not started
            return None
        return end if isinstance(end, int) and end >= 0 else None

    def committed(self, tp: TP) -> int | None:
        """The consumer group's committed offset of ``tp``, if known."""
        if self.app is None:
            return None
        offset = self.app.consumer._committed_offset.get(tp)
        return offset if isinstance(offset, int) and offset >= 0 else None

    def forget(self) -> None:
        """After a rebalance (refused records stay: they still have to come again)."""
        self._asked.clear()
        self._read.clear()
        self._seen.clear()
        self.next.clear()
        self._behind.clear()
        self._unstuck.clear()


def _missing(who: str, msg: Any, want: int) -> str:
    """Why a partition is sought back: the records before the one at hand."""
    return (
        f"{who} {msg.topic}:{msg.partition}: records {want}..{msg.offset - 1} "
        f"missing before {msg.offset}"
    )
