"""faust's record of the offsets its consumer passed over (a transaction's commit
markers): c360's consumer adds a marker past the recorded ones without rebuilding the
partition's tree, and otherwise keeps the very intervals faust's own ``_add_gap`` keeps,
so that faust commits the same offsets (stream/shell/gaps.py)."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from types import SimpleNamespace

import pytest
from faust.transport.consumer import Consumer as FaustConsumer
from faust.types import TP
from intervaltree import Interval, IntervalTree

from stream.settings import Settings
from stream.shell.gaps import add_gap, after_zero

TPS = TP("in", 0)


class Bookkeeping:
    """faust's commit bookkeeping (its Consumer's methods), with acks as Consumer.ack."""

    _new_offset = FaustConsumer._new_offset

    def __init__(self, committed: int | None) -> None:
        self._gap = defaultdict(IntervalTree)
        self._acked = defaultdict(list)
        self._acked_index = defaultdict(set)
        self._committed_offset = defaultdict(lambda: None)
        self._committed_offset[TPS] = committed

    def ack(self, offset: int) -> None:
        committed = self._committed_offset[TPS]
        if (committed is None or offset >= committed) and offset not in self._acked_index[TPS]:
            self._acked_index[TPS].add(offset)
            self._acked[TPS].append(offset)

    def commit(self) -> int | None:
        offset = self._new_offset(TPS)
        if offset is not None and (self._committed_offset[TPS] or -1) < offset:
            self._committed_offset[TPS] = offset
        return offset


def test_the_workers_consumer_adds_a_marker_past_its_gaps_without_rebuilding_them(
    tmp_path, monkeypatch
):
    # faust 0.15.3 rebuilt the partition's whole tree at each marker, and only a commit
    # cuts it back: with a backlog of small transactions, ingest ran at ~650 events/s
    from stream.app import create_app

    rebuilds = []
    merge = IntervalTree.merge_overlaps
    monkeypatch.setattr(
        IntervalTree, "merge_overlaps", lambda tree, *a, **k: rebuilds.append(1) or merge(tree)
    )
    app = create_app(Settings.from_env({}, data_dir=tmp_path)).app

    async def markers() -> IntervalTree:
        consumer = app.consumer
        for offset in range(2, 2000, 2):  # one-record transactions: every other offset
            await consumer._add_gap(TPS, offset, offset)
        return consumer._gap[TPS]

    gaps = asyncio.run(markers())
    assert gaps == IntervalTree(Interval(o, o + 1) for o in range(2, 2000, 2))
    assert rebuilds == []


@pytest.mark.parametrize("seed", range(40))
def test_it_keeps_the_gaps_faust_keeps_and_faust_commits_the_same_offsets(seed):
    # gaps added again after a seek back overlap those recorded: they are merged, as
    # faust merges them (overlapping intervals would stall faust's commits)
    rng = random.Random(seed)
    committed = rng.choice([None, 0, 5])
    ours, fausts = Bookkeeping(committed), Bookkeeping(committed)
    for _ in range(60):
        start = rng.randrange(0, 80)
        end = start + rng.randrange(-1, 6)
        asyncio.run(add_gap(ours, TPS, start, end))
        asyncio.run(FaustConsumer._add_gap(fausts, TPS, start, end))
        assert ours._gap[TPS] == fausts._gap[TPS]
        if rng.random() < 0.3:
            for offset in rng.sample(range(0, 90), 10):
                ours.ack(offset)
                fausts.ack(offset)
        if rng.random() < 0.2:
            assert ours.commit() == fausts.commit()
            assert ours._gap[TPS] == fausts._gap[TPS]


def test_a_gap_at_or_below_the_committed_offset_is_not_kept():
    consumer = Bookkeeping(10)
    asyncio.run(add_gap(consumer, TPS, 5, 11))
    asyncio.run(add_gap(consumer, TPS, 3, 9))
    assert consumer._gap[TPS] == IntervalTree([Interval(11, 12)])


def test_offsets_passed_over_after_the_record_at_offset_0_are_a_gap(tmp_path):
    # faust records none after a read offset of 0 (``gap > 1 and r_offset``): read
    # committed, an aborted transaction's record and two markers (1..3) at the head of
    # its acknowledgements, and faust committed nothing of the partition again
    from stream.app import create_app

    app = create_app(Settings.from_env({}, data_dir=tmp_path)).app
    assert app.consumer.callback.__qualname__.startswith(after_zero.__name__)

    def commits(wrapped: bool) -> list[int | None]:
        consumer = Bookkeeping(None)
        consumer._read_offset = defaultdict(lambda: None)
        consumer.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda t: True))
        handed = []

        async def callback(message):
            handed.append(message.offset)
            consumer._read_offset[TPS] = message.offset  # as faust's fetcher, after it

        on_message = after_zero(consumer, callback) if wrapped else callback
        out = []
        for offset in (0, 4):
            asyncio.run(on_message(SimpleNamespace(tp=TPS, topic="in", offset=offset)))
            consumer.ack(offset)
            out.append(consumer.commit())
        assert handed == [0, 4]
        return out

    assert commits(wrapped=False) == [1, None]  # faust's own: stuck at 1
    assert commits(wrapped=True) == [1, 5]
