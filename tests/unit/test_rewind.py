"""Rewind.unstick: a partition whose fetched records never reached its agent is sought
back to them once the agent has sat idle behind the consumer's end for a while."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import pytest
from faust.types import TP

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

    def highwater(self, tp: TP) -> int | None:
        if tp not in self.ends:
            raise KeyError(tp)  # not assigned
        return self.ends[tp]

    async def seek_wait(self, offsets: dict) -> None:
        self.seeks.extend(offsets.items())


def rewind_with(ends: dict, committed: dict) -> tuple[Rewind, Consumer]:
    consumer = Consumer(ends, committed)
    recovery = SimpleNamespace(completed=SimpleNamespace(is_set=lambda: True), in_recovery=False)
    app = SimpleNamespace(consumer=consumer, tables=SimpleNamespace(recovery=recovery))
    app.rebalancing = False
    return Rewind(app), consumer


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


# --- hold: refused ingest records are never committed past ---------------------------------
class Committing(Consumer):
    """A consumer whose acknowledged offsets would commit ``ready`` next."""

    def __init__(self, ready: dict, committed: dict) -> None:
        super().__init__({}, committed)
        self.ready = ready

    def _filter_committable_offsets(self, tps) -> dict:
        return {tp: offset for tp, offset in self.ready.items() if tp in set(tps)}

    def _should_commit(self, tp, offset) -> bool:
        committed = self._committed_offset.get(tp)
        return committed is None or offset > committed


def message(offset: int, partition: int = 0):
    return SimpleNamespace(topic="in", partition=partition, offset=offset)


def test_records_refused_before_faust_settled_cap_its_commits_until_applied():
    # faust acknowledges a refused group like any other: its periodic commit would pass
    # records nobody applied, lost if the worker dies or the partition moves before the
    # seek back. The commit stops at the first refused record until ingest applies it.
    other = TP("in", 1)
    consumer = Committing({TPS: 120, other: 50}, {TPS: 30})
    recovery = SimpleNamespace(completed=SimpleNamespace(is_set=lambda: False), in_recovery=True)
    app = SimpleNamespace(consumer=consumer, tables=SimpleNamespace(recovery=recovery))
    rewind = Rewind(app)
    rewind.hold([message(44), message(40), message(41)])
    commit = consumer._filter_committable_offsets
    assert commit([TPS, other]) == {TPS: 40, other: 50}
    rewind.release("in", 0, 40)  # applied up to 39: 40 is still to come
    assert commit([TPS]) == {TPS: 40}
    rewind.release("in", 0, 41)  # 40 applied
    assert commit([TPS]) == {TPS: 120}


def test_a_hold_that_a_commit_already_passed_is_dropped_not_kept_forever():
    consumer = Committing({TPS: 120}, {TPS: 30})
    app = SimpleNamespace(consumer=consumer, tables=None)
    rewind = Rewind(app)
    rewind.hold([message(40)])
    assert consumer._filter_committable_offsets([TPS]) == {TPS: 40}
    consumer._committed_offset[TPS] = 60  # e.g. another worker owned it meanwhile
    assert consumer._filter_committable_offsets([TPS]) == {TPS: 120}
    assert rewind.held == {}
    # and a cap at or below what is committed commits nothing for that partition
    rewind.hold([message(60)])
    consumer._committed_offset[TPS] = 60
    assert consumer._filter_committable_offsets([TPS]) == {}
