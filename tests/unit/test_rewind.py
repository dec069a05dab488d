"""Rewind: a partition whose fetched records never reached its agent is sought back to
them once the agent has sat idle behind the consumer's end for a while (unstick); a
hole is given up only where the log holds no record, and the agent goes on from the
first record left (to, floor_of); refused ingest records hold the partition's commits
(hold); ingest applies each partition in order (in_order)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from types import SimpleNamespace
from typing import Any

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from intervaltree import IntervalTree

from stream.shell import rewind as rewind_mod
from stream.shell.metrics import METRICS
from stream.shell.rewind import STALL_SECONDS, Rewind

TPS = TP("in", 0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(rewind_mod.time, "monotonic", c.monotonic)
    return c


class Consumer:
    """The consumer as Rewind reads it: ends seen, committed offsets, seeks."""

    def __init__(self, ends: dict, committed: dict) -> None:
        self.ends = ends
        self._committed_offset = committed
        self.seeks: list[tuple[TP, int]] = []
        self.probes: list[int] = []  # offsets a probe consumer read from

    def highwater(self, tp: TP) -> int | None:
        if tp not in self.ends:
            raise KeyError(tp)  # not assigned
        return self.ends[tp]

    async def seek_wait(self, offsets: dict) -> None:
        self.seeks.extend(offsets.items())

    log_start = 0  # the log's first offset (retention deleted the records before it)
    markers: frozenset[int] = frozenset()  # offsets holding no record (a transaction's)

    def first_record(self, offset: int) -> int:
        """The first offset at or after ``offset`` holding a record."""
        offset = max(offset, self.log_start)
        while offset in self.markers:
            offset += 1
        return offset


def rewind_with(ends: dict, committed: dict) -> tuple[Rewind, Consumer]:
    consumer = Consumer(ends, committed)
    recovery = SimpleNamespace(completed=SimpleNamespace(is_set=lambda: True), in_recovery=False)
    app = SimpleNamespace(consumer=consumer, tables=SimpleNamespace(recovery=recovery))
    app.rebalancing = False
    rewind = Rewind(app)

    async def first_record(tp: TP, offset: int) -> int:  # what a probe consumer reads
        consumer.probes.append(offset)
        return consumer.first_record(offset)

    async def log_start(tp: TP) -> int:
        return consumer.log_start

    rewind.first_record = first_record
    rewind.log_start = log_start
    return rewind, consumer


def unstuck() -> float:
    return METRICS.redeliveries.labels("unstick")._value.get()


def test_an_idle_partition_behind_the_end_is_sought_back_after_the_stall_time(clock):
    rewind, consumer = rewind_with({TPS: 3}, {TPS: 2})
    counted = unstuck()
    assert not asyncio.run(rewind.unstick(TPS, 2, busy=False))  # first seen behind
    clock.now += STALL_SECONDS - 0.1
    assert not asyncio.run(rewind.unstick(TPS, 2, busy=False))
    clock.now += 0.2
    assert asyncio.run(rewind.unstick(TPS, 2, busy=False))
    assert consumer.seeks == [(TPS, 2)] and unstuck() == counted + 1  # on the dashboard
    # once for this next offset and end: offsets 2..2 may hold no record (a marker)
    for _ in range(3):
        clock.now += STALL_SECONDS
        assert not asyncio.run(rewind.unstick(TPS, 2, busy=False))
    assert consumer.seeks == [(TPS, 2)]
    # a record arrives: the end moves, and a stall behind it is sought back again
    consumer.ends[TPS] = 4
    asyncio.run(rewind.unstick(TPS, 2, busy=False))
    clock.now += STALL_SECONDS
    assert asyncio.run(rewind.unstick(TPS, 2, busy=False))
    assert consumer.seeks == [(TPS, 2), (TPS, 2)]


def test_progress_a_busy_agent_or_no_records_behind_keep_it_from_seeking(clock):
    rewind, consumer = rewind_with({TPS: 10, TP("in", 1): 5}, {})
    for expected in range(2, 9):  # moving: the agent is working through them
        asyncio.run(rewind.unstick(TPS, expected, busy=False))
        clock.now += STALL_SECONDS
    for _ in range(3):  # not moving, but the agent is handling a group
        asyncio.run(rewind.unstick(TPS, 8, busy=True))
        clock.now += STALL_SECONDS
    for _ in range(3):  # at the end: nothing is missing
        asyncio.run(rewind.unstick(TPS, 10, busy=False))
        clock.now += STALL_SECONDS
    for _ in range(3):  # an end the consumer does not know
        asyncio.run(rewind.unstick(TP("other", 0), 0, busy=False))
        clock.now += STALL_SECONDS
    assert consumer.seeks == []


def test_it_never_seeks_past_the_groups_committed_offset(clock):
    # faust commits a partition only from its committed offset on (see Rewind.to)
    rewind, consumer = rewind_with({TPS: 9}, {TPS: 4})
    asyncio.run(rewind.unstick(TPS, 6, busy=False))
    clock.now += STALL_SECONDS
    assert asyncio.run(rewind.unstick(TPS, 6, busy=False))
    assert consumer.seeks == [(TPS, 4)]


def test_a_rebalance_forgets_how_long_a_partition_was_behind(clock):
    rewind, consumer = rewind_with({TPS: 3}, {})
    asyncio.run(rewind.unstick(TPS, 2, busy=False))
    clock.now += STALL_SECONDS
    rewind.forget()
    assert not asyncio.run(rewind.unstick(TPS, 2, busy=False))
    assert consumer.seeks == []


@pytest.mark.parametrize(("log_start", "gives_up"), [(0, False), (5, False), (6, True)])
def test_a_hole_is_read_at_its_first_seek_and_given_up_only_where_the_log_holds_no_record(
    clock, log_start, gives_up
):
    # (a transactional producer's commit marker, or retention: no record at 5 any more)
    rewind, consumer = rewind_with({TPS: 9}, {TPS: 5})
    consumer.log_start = log_start
    assert asyncio.run(rewind.to("in", 0, 5, "hole", probe=True)) is not gives_up
    assert consumer.probes == [5]
    assert consumer.seeks == ([] if gives_up else [(TPS, 5)])
    assert rewind.floor_of("in", 0) == (6 if gives_up else 0)


def test_records_that_exist_are_sought_again_and_read_again_after_give_up_after_seeks(clock):
    rewind, consumer = rewind_with({TPS: 9}, {TPS: 5})
    for _ in range(rewind_mod.GIVE_UP_AFTER):
        assert asyncio.run(rewind.to("in", 0, 5, "hole", probe=True))
        clock.now += rewind_mod.RETRY_SECONDS
    assert consumer.probes == [5]  # once, at the first seek: the records exist
    assert asyncio.run(rewind.to("in", 0, 5, "hole", probe=True))  # they still do
    assert consumer.probes == [5, 5]
    assert consumer.seeks == [(TPS, 5)] * (rewind_mod.GIVE_UP_AFTER + 1)
    consumer.log_start = 7  # then retention deleted them
    for _ in range(rewind_mod.GIVE_UP_AFTER - 1):
        clock.now += rewind_mod.RETRY_SECONDS
        assert asyncio.run(rewind.to("in", 0, 5, "hole"))
    clock.now += rewind_mod.RETRY_SECONDS
    assert not asyncio.run(rewind.to("in", 0, 5, "hole"))
    assert consumer.probes == [5, 5, 5]
    assert rewind.floor_of("in", 0) == 7


def test_a_seek_not_for_a_hole_reads_the_log_only_after_give_up_after_seeks(clock):
    # refused records, realign, unstick: no record past the offset need exist, and a
    # probe of an empty end waits for one
    rewind, consumer = rewind_with({TPS: 9}, {TPS: 5})
    assert asyncio.run(rewind.to("in", 0, 5, "refused"))
    assert consumer.probes == []
    assert consumer.seeks == [(TPS, 5)]


# --- hold: refused ingest records are never committed past ---------------------------------
class Bookkeeping:
    """faust's own commit bookkeeping (its Consumer's methods), acks as Consumer.ack."""

    _new_offset = FaustConsumer._new_offset
    _should_commit = FaustConsumer._should_commit
    _filter_committable_offsets = FaustConsumer._filter_committable_offsets

    def __init__(self, committed: int) -> None:
        self._gap = defaultdict(IntervalTree)
        self._acked = defaultdict(list)
        self._acked_index = defaultdict(set)
        self._committed_offset = defaultdict(lambda: None)
        self._committed_offset[TPS] = committed

    def ack(self, *offsets: int) -> None:
        for offset in offsets:
            committed = self._committed_offset[TPS]
            if (committed is None or offset >= committed) and offset not in self._acked_index[TPS]:
                self._acked_index[TPS].add(offset)
                self._acked[TPS].append(offset)

    def commit(self) -> int | None:
        offsets = self._filter_committable_offsets(list(self._acked))
        self._committed_offset.update(offsets)
        return offsets.get(TPS)

    def revoke(self) -> None:
        for bookkeeping in (self._gap, self._acked, self._acked_index, self._committed_offset):
            bookkeeping.pop(TPS, None)


def held_rewind(committed: int) -> tuple[Rewind, Bookkeeping]:
    consumer = Bookkeeping(committed)
    return Rewind(SimpleNamespace(consumer=consumer, tables=None)), consumer


def message(offset: int):
    return SimpleNamespace(topic="in", partition=0, offset=offset)


def applied(rewind: Rewind, consumer: Bookkeeping, offsets: range) -> None:
    """Ingest applied these records and their outputs were acknowledged: it releases,
    then faust acknowledges the group."""
    for offset in offsets:
        rewind.release("in", 0, offset + 1)
    consumer.ack(*offsets)


def test_refused_records_are_not_committed_until_all_are_applied():
    # faust acknowledges a refused group like any other: its periodic commit would pass
    # records nobody applied, lost if the worker dies or the partition moves before the
    # seek back. Nothing of the partition is committed until all of them are applied.
    rewind, consumer = held_rewind(committed=100)
    rewind.hold([message(o) for o in range(100, 110)])
    consumer.ack(*range(100, 110))  # the refused group, acknowledged
    assert consumer.commit() is None
    applied(rewind, consumer, range(100, 105))  # the seek back: half of them so far
    assert consumer.commit() is None
    applied(rewind, consumer, range(105, 112))
    assert consumer.commit() == 112


def test_a_hold_from_an_earlier_assignment_gives_way_to_a_new_one():
    rewind, consumer = held_rewind(committed=100)
    rewind.hold([message(o) for o in range(100, 105)])
    consumer.revoke()  # another worker owns it, applies and commits up to 500
    consumer._committed_offset[TPS] = 500
    rewind.hold([message(o) for o in range(500, 520)])  # back here, refused again
    consumer.ack(*range(500, 520))
    assert consumer.commit() is None  # not 520: those were never applied
    applied(rewind, consumer, range(500, 520))
    assert consumer.commit() == 520


def test_a_hold_a_commit_has_passed_ends_and_commits_go_on():
    rewind, consumer = held_rewind(committed=100)
    rewind.hold([message(100)])
    consumer._committed_offset[TPS] = 300  # committed elsewhere meanwhile
    consumer.ack(*range(300, 310))
    assert consumer.commit() == 310 and rewind.held == {}


def test_records_gone_from_the_log_do_not_stop_commits_for_good():
    # the refused records no longer exist (retention): faust's gap entries stand for
    # them, and ingest goes on after them; holding takes nothing from faust's books
    rewind, consumer = held_rewind(committed=100)
    rewind.hold([message(100)])
    consumer._gap[TPS].addi(101, 201)  # read from 200 after the seek back to 100
    consumer.ack(*range(200, 251))
    assert consumer.commit() is None
    applied(rewind, consumer, range(200, 400))
    commits = [consumer.commit() for _ in range(3)]
    assert 400 in commits and rewind.held == {}


# --- in_order: ingest's records, each partition from the one expected next -----------------
def event(offset: int, partition: int = 0):
    return SimpleNamespace(
        message=SimpleNamespace(
            topic="in", partition=partition, offset=offset, tp=TP("in", partition)
        )
    )


def ingest_order(rewind: Rewind):
    """ingest's next_offset: its in-memory position, else the group's committed offset."""

    def next_offset(tp: TP) -> int | None:
        want = rewind.next.get((tp.topic, tp.partition))
        return want if want is not None else rewind.committed(tp)

    async def in_order(events: list) -> list[int]:
        kept = await rewind.in_order(events, next_offset, "ingest")
        return [e.message.offset for e in kept]

    return in_order


def test_ingest_applies_a_partition_in_order_and_seeks_back_at_a_hole(clock):
    rewind, consumer = rewind_with({TPS: 20}, {TPS: 5})
    in_order = ingest_order(rewind)
    assert asyncio.run(in_order([event(4), event(5), event(6), event(8), event(2, 1)])) == [
        5,
        6,
        2,  # another partition (nothing committed: from any record)
    ]
    assert consumer.seeks == [(TPS, 5)]  # to 7, never past the committed offset


def test_ingest_goes_past_offsets_that_hold_no_record_only(clock):
    # a transactional producer's commit marker takes an offset (10) no consumer is ever
    # handed: seeking back to it brought 11 again, for ever, and the records skipped
    # meanwhile were acknowledged, so a rebalance then lost them
    # (then it waited 30 seeks a second apart for every marker: a stall per transaction)
    rewind, consumer = rewind_with({TPS: 20}, {TPS: 5})
    consumer.markers = frozenset({10, 13})
    in_order = ingest_order(rewind)
    assert asyncio.run(in_order([event(o) for o in range(5, 10)])) == [5, 6, 7, 8, 9]
    assert asyncio.run(in_order([event(11), event(12), event(14)])) == [11, 12, 14]
    assert consumer.seeks == []
    # and retention: records 15..17 gone, 18.. there; a record buffered before the seek
    # (20) leads the group: on from 18, not from 20
    consumer.log_start = 18
    assert asyncio.run(in_order([event(20), event(18), event(19), event(20)])) == [18, 19, 20]
    assert consumer.seeks == [(TPS, 5)]  # to 18, never past the committed offset


def test_ingest_applies_the_records_a_seek_brought_back_behind_a_later_one(clock):
    # after the seek back, the records buffered before it (past the hole) reach the
    # agent first and the records sought back behind them, often in one group: they were
    # thrown away with it, and nothing sought them again until unstick, 2 s later
    rewind, consumer = rewind_with({TPS: 20}, {TPS: 5})
    in_order = ingest_order(rewind)
    assert asyncio.run(in_order([event(5), event(8)])) == [5]
    assert asyncio.run(in_order([event(9), event(6), event(7), event(8), event(9)])) == [
        6,
        7,
        8,
        9,
    ]
    assert consumer.seeks == [(TPS, 5)]  # to 6, never past the committed offset


def test_a_marker_unstick_sought_is_read_at_the_holes_first_seek_all_the_same(clock):
    # a transactional producer's last transaction ends in a marker (10): the end is past
    # ingest's next offset, so after STALL_SECONDS unstick seeks to it (no probe: no record
    # need be past an end). The next transaction's record (11) then shows the hole: it
    # was not read, as its seek was not the first, and ingest sought 10 once a second for
    # GIVE_UP_AFTER seeks (a stall per quiet spell) while faust acknowledged 11 on
    rewind, consumer = rewind_with({TPS: 11}, {TPS: 5})
    consumer.markers = frozenset({10})
    in_order = ingest_order(rewind)
    assert asyncio.run(in_order([event(o) for o in range(5, 10)])) == [5, 6, 7, 8, 9]
    assert not asyncio.run(rewind.unstick(TPS, 10, busy=False))
    clock.now += STALL_SECONDS
    assert asyncio.run(rewind.unstick(TPS, 10, busy=False))
    assert consumer.seeks == [(TPS, 5)]  # to 10, never past the committed offset
    consumer.ends[TPS] = 13
    clock.now += 60.0  # the producer was quiet for a minute
    assert asyncio.run(in_order([event(11), event(12)])) == [11, 12]
    assert consumer.probes == [10] and consumer.seeks == [(TPS, 5)]


def test_a_read_of_the_log_that_failed_is_tried_again_at_the_next_seek(clock):
    # the probe timed out (a broker slow to answer): the hole at a marker was sought
    # once a second and read again only after GIVE_UP_AFTER seeks, ~30 s in which faust
    # acknowledged, and could commit, the records past it that ingest skipped
    rewind, consumer = rewind_with({TPS: 20}, {TPS: 5})
    consumer.markers = frozenset({10})
    answer = rewind.first_record
    failed: list[int] = []

    async def first_record(tp: TP, offset: int) -> int | None:
        if not failed:
            failed.append(offset)
            return None  # not known
        return await answer(tp, offset)

    rewind.first_record = first_record
    in_order = ingest_order(rewind)
    assert asyncio.run(in_order([event(o) for o in range(5, 10)])) == [5, 6, 7, 8, 9]
    assert asyncio.run(in_order([event(11)])) == []  # not known: sought back
    assert consumer.seeks == [(TPS, 5)]
    clock.now += rewind_mod.RETRY_SECONDS / 2
    assert asyncio.run(in_order([event(11)])) == []  # not read again at once
    assert failed == [10] and consumer.probes == []
    clock.now += rewind_mod.RETRY_SECONDS
    assert asyncio.run(in_order([event(11), event(12)])) == [11, 12]
    assert consumer.probes == [10] and consumer.seeks == [(TPS, 5)]


class ProbeConsumer:
    """The probe's consumer: a log of record offsets from ``start`` (the rest: markers)."""

    def __init__(self, records: list[int]) -> None:
        self.records = records
        self.log_start = 0
        self.position: dict = {}
        self.fetches = 0

    def assignment(self) -> set:
        return set(self.position)

    def assign(self, tps: list) -> None:
        self.position = dict.fromkeys(tps, 0)

    def pause(self, *tps: Any) -> None: ...

    def resume(self, *tps: Any) -> None: ...

    def seek(self, tp: Any, offset: int) -> None:
        self.position[tp] = offset

    async def getmany(self, tp: Any, timeout_ms: int) -> dict:
        self.fetches += 1
        at = max(self.position[tp], self.log_start)  # earliest, below the log's start
        return {tp: [SimpleNamespace(offset=o) for o in self.records if o >= at]}

    async def beginning_offsets(self, tps: list) -> dict:
        return dict.fromkeys(tps, self.log_start)


def test_the_records_a_read_brought_answer_later_holes_until_a_read_afresh(clock):
    # one read for the markers of many small transactions; records it saw that
    # retention deleted since are read again after GIVE_UP_AFTER seeks, not skipped
    consumer = Consumer({TPS: 20}, {TPS: 2})
    recovery = SimpleNamespace(completed=SimpleNamespace(is_set=lambda: True), in_recovery=False)
    app = SimpleNamespace(consumer=consumer, tables=SimpleNamespace(recovery=recovery))
    app.rebalancing = False
    rewind = Rewind(app)
    probe = ProbeConsumer([0, 1, 3, 4, 6, 7, 9, 10])  # 2, 5, 8: markers

    async def probing(tp: TP, read: Any) -> int | None:
        return await read(probe, tp)

    rewind._probing = probing
    in_order = ingest_order(rewind)
    assert asyncio.run(in_order([event(o) for o in [3, 4, 6, 7, 9]])) == [3, 4, 6, 7, 9]
    assert probe.fetches == 1 and consumer.seeks == []
    probe.log_start = 11  # retention: 10 is gone, and 11.. hold no record yet (nor 12)
    probe.records = [13]
    for _ in range(rewind_mod.GIVE_UP_AFTER):  # 10 was seen: sought back
        assert asyncio.run(in_order([event(13)])) == []
        clock.now += rewind_mod.RETRY_SECONDS
    assert probe.fetches == 1 and len(consumer.seeks) == rewind_mod.GIVE_UP_AFTER
    assert asyncio.run(in_order([event(13)])) == [13]  # read afresh: gone
    assert probe.fetches == 2 and rewind.floor_of("in", 0) == 13


class StartedProbe(ProbeConsumer):
    """A probe consumer that counts its starts and stops, its fetch held by ``gate``."""

    def __init__(self, records: list[int]) -> None:
        super().__init__(records)
        self.started = self.stopped = False
        self.fetching = asyncio.Event()
        self.gate = asyncio.Event()
        self.gate.set()

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def getmany(self, tp: Any, timeout_ms: int) -> dict:
        self.fetching.set()
        await self.gate.wait()
        if self.stopped:
            raise RuntimeError("the consumer was stopped")
        return await super().getmany(tp, timeout_ms)


def test_the_probe_stops_after_the_read_under_way_and_for_good():
    # the worker stops: a read under way was failed by the consumer stopped under it,
    # and a read after the stop started a consumer that nothing stopped any more
    rewind = Rewind(SimpleNamespace())
    made: list[StartedProbe] = []

    def new_probe() -> StartedProbe:
        made.append(StartedProbe([0, 1]))
        return made[-1]

    rewind._new_probe = new_probe

    async def run() -> tuple[int | None, int | None]:
        await rewind.first_record(TPS, 0)
        made[0].gate.clear()
        read = asyncio.create_task(rewind.first_record(TP("in", 1), 1))
        await asyncio.wait_for(made[0].fetching.wait(), 5.0)
        stop = asyncio.create_task(rewind.stop())
        made[0].gate.set()
        first = await read
        await stop
        return first, await rewind.first_record(TP("in", 2), 0)

    assert asyncio.run(run()) == (1, None)  # the read under way answered; none after
    assert len(made) == 1 and made[0].stopped
