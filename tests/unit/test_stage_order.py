"""A stage applies a partition's records strictly in offset order from its stored position.

faust can hand an agent a partition with a hole after a restart (stream/shell/rewind.py):
a stage must then apply nothing past the hole and seek the partition back, and records
handed over before faust settled must come again.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from stream import topics
from stream.core.messages import DECODERS, PART_BITS, ChannelDelta
from stream.settings import Settings
from stream.shell.rewind import GIVE_UP_AFTER, Rewind
from stream.shell.stage import StageRunner


class FakeRewind(Rewind):
    def __init__(self, is_settled: bool = True) -> None:
        super().__init__(None)
        self.is_settled = is_settled
        self.seeks: list[tuple[str, int, int]] = []
        # the log's first offset (None: the probe fails)
        self.log_start_offset: int | None = None

    async def first_record(self, tp, offset: int) -> int | None:  # the probe consumer's read
        start = self.log_start_offset
        return None if start is None else max(offset, start)

    def settled(self) -> bool:
        return self.is_settled

    async def to(self, topic: str, partition: int, offset: int, *args, **kwargs) -> bool:
        self.seeks.append((topic, partition, offset))
        return await super().to(topic, partition, offset, *args, **kwargs)

    async def log_start(self, tp) -> int | None:
        return self.log_start_offset


class FakeStore:
    def __init__(self, stored: int) -> None:
        self.stored = stored

    def input_offset(self, partition: int) -> dict[str, int]:
        return {} if self.stored < 0 else {f"in:{partition}": self.stored}

    def txn(self, partition: int) -> dict:
        return {}


def message(offset: int, partition: int = 0):
    return SimpleNamespace(
        topic="in", partition=partition, offset=offset, value=b"[]", timestamp=None, tp=None
    )


def runner(stored: int, rewind: FakeRewind):
    applied: list[int] = []
    committed: list[int] = []
    table = SimpleNamespace(data=FakeStore(stored))
    r = StageRunner(
        "t", Settings.from_env({}), table, lambda *a: None, lambda v: [], None, rewind=rewind
    )

    def fresh(txn, msg, outbox):
        applied.append(msg.offset)
        return []

    async def commit(applied, outbox, opened=None):
        committed.extend(group.offset for group in applied)
        return True

    r._fresh = fresh
    r.commit = commit
    return r, applied, committed


def test_records_after_a_hole_wait_and_the_partition_is_sought_back():
    rewind = FakeRewind()
    r, applied, committed = runner(4, rewind)
    asyncio.run(r.handle([message(3), message(5), message(7), message(8)]))
    assert applied == [5]
    assert committed == [5]
    assert rewind.seeks == [("in", 0, 6)]
    # the missing record comes again, then what followed it
    asyncio.run(r.handle([message(6), message(7), message(8)]))
    assert applied == [5, 6, 7, 8]
    assert committed == [5, 8]


def test_records_handed_over_before_faust_settled_are_not_applied_and_come_again():
    rewind = FakeRewind(is_settled=False)
    r, applied, _ = runner(4, rewind)
    asyncio.run(r.handle([message(5), message(6), message(2, partition=1)]))
    assert applied == []
    rewind.is_settled = True
    asyncio.run(rewind.flush())
    assert sorted(rewind.seeks) == [("in", 0, 5), ("in", 1, 2)]


def test_a_hole_whose_records_are_gone_is_accepted_in_the_end():
    rewind = FakeRewind()
    rewind.log_start_offset = 9  # retention deleted 5 to 8
    r, applied, _ = runner(4, rewind)
    asyncio.run(r.handle([message(9)]))
    assert applied == [9]
    asyncio.run(r.handle([message(10)]))  # the next group goes on from there
    assert applied == [9, 10]


def test_a_hole_given_up_goes_on_from_the_first_record_left_not_the_one_at_hand():
    # retention deleted 5 and 6; 7 and 8 are there, but a record buffered before the
    # seek (9) came first: applying it skipped 7 and 8, lost behind the high-water marks
    rewind = FakeRewind()
    rewind.log_start_offset = 7
    r, applied, _ = runner(4, rewind)
    asyncio.run(r.handle([message(9)]))
    assert applied == [] and rewind.seeks[-1] == ("in", 0, 7)
    asyncio.run(r.handle([message(7), message(8), message(9)]))
    assert applied == [7, 8, 9]


def test_a_hole_whose_records_still_exist_is_never_skipped():
    # seeks can keep failing to bring them (faust delivers what it fetched before the
    # seek after it, and drops the records fetched again below its read offset): after
    # GIVE_UP_AFTER seeks the stage applied the record at hand, and every record of
    # the hole was lost for good (the receivers' high-water marks pass them)
    rewind = FakeRewind()
    rewind.log_start_offset = 0
    r, applied, _ = runner(4, rewind)
    rewind._asked[("in", 0)] = (5, 0.0, GIVE_UP_AFTER)
    asyncio.run(r.handle([message(9)]))
    assert applied == [] and rewind.seeks == [("in", 0, 5)]
    asyncio.run(r.handle([message(5), message(6)]))  # they come in the end
    assert applied == [5, 6]


def test_missing_records_behind_a_later_one_in_the_same_group_are_applied():
    # after a seek back, the records faust buffered before it (past the hole) still
    # reach the agent first, and the records sought back come behind them, often in
    # the same group: they were thrown away with it, and only a later seek (or none,
    # once nothing more arrives) brought them again
    rewind = FakeRewind()
    r, applied, committed = runner(4, rewind)
    asyncio.run(r.handle([message(5), message(8)]))  # 6 and 7 missing: sought back
    assert applied == [5] and rewind.seeks == [("in", 0, 6)]
    asyncio.run(r.handle([message(9), message(6), message(7), message(8), message(9)]))
    assert applied == [5, 6, 7, 8, 9]
    assert committed == [5, 9]


def test_a_group_spanning_partitions_sends_one_record_per_destination():
    settings = Settings.from_env({}, partitions=4)
    table = SimpleNamespace(data=FakeStore(-1))
    seen: list = []

    def process(txn, items, outbox):
        outbox.internal(topics.CHANNEL, "google / cpc / brand", ChannelDelta("c", 1, {}))

    r = StageRunner("t", settings, table, process, lambda v: [], None, rewind=FakeRewind())
    r._fresh = lambda txn, msg, outbox: [msg.offset]

    async def commit(applied, outbox, opened=None):
        seen.extend(outbox.internal_records())
        return True

    r.commit = commit
    asyncio.run(r.handle([message(0, 0), message(0, 2), message(1, 0)]))
    [(destination, [record])] = seen  # one destination partition, one record
    assert destination[0] == topics.CHANNEL.name(settings)
    segments = DECODERS["channel"].decode(record)
    # a segment per source partition and input record, each deduplicated on its own
    assert [(src, seq >> PART_BITS) for src, seq, _ in segments] == [
        ("t:0", 0),
        ("t:0", 1),
        ("t:2", 0),
    ]
