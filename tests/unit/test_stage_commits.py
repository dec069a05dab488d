"""A stage partition's state stays open across groups until it is due, then is committed
once: with the input offset of its last record, after the outputs of all its records
were acknowledged. A rebalance drops what is open (its input is redone)."""

from __future__ import annotations

import asyncio
import json
import time
from types import SimpleNamespace

import pytest
from faust.types import TP

from stream import topics
from stream.core.messages import ChannelDelta
from stream.settings import Settings
from stream.shell import stage as stage_mod
from stream.shell.stage import StageRunner
from stream.shell.store import INPUT_OFFSET, BatchStore, Txn, open_db, write_batch


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class FakeSent:
    def __init__(self, log: list, what: tuple) -> None:
        self.log, self.what = log, what

    async def last_offset(self) -> int:
        self.log.append(("ack", *self.what))
        return len(self.log)


class FakeSender:
    """Records what was sent and when its acknowledgement was awaited."""

    def __init__(self) -> None:
        self.log: list = []

    async def send(self, topic: str, partition: int, records: list) -> FakeSent:
        self.log.append(("send", topic, partition, len(records)))
        return FakeSent(self.log, (topic, partition))


class Store:
    """The BatchStore methods a runner uses, over real rocksdict databases."""

    def __init__(self, tmp_path, log: list) -> None:
        self.dbs = {p: open_db(str(tmp_path / f"p{p}")) for p in range(2)}
        self.log = log
        self.prepare = BatchStore.prepare

    def txn(self, partition: int) -> Txn:
        return Txn(self.dbs[partition])

    def input_offset(self, partition: int) -> dict:
        raw = self.dbs[partition].get(INPUT_OFFSET)
        return {} if raw is None else json.loads(raw)

    def apply_local(self, partition, changes, marker, changelog_offset) -> None:
        self.log.append(("write", partition))
        batch = write_batch(changes)
        batch.put(INPUT_OFFSET, marker)
        self.dbs[partition].write(batch)


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(stage_mod.time, "monotonic", c.monotonic)
    return c


def message(offset: int, partition: int = 0):
    return SimpleNamespace(
        topic="in", partition=partition, offset=offset, value=b"[]", timestamp=None, tp=None
    )


def runner(tmp_path, interval: float):
    sender = FakeSender()
    store = Store(tmp_path, sender.log)
    table = SimpleNamespace(
        data=store, changelog_topic=SimpleNamespace(get_topic_name=lambda: "changelog")
    )
    seen: list = []  # the count each record read before adding itself

    def process(txn, items, outbox):
        count = txn.get("count") or 0
        seen.append(count)
        txn.put("count", count + 1)
        outbox.internal(topics.CHANNEL, "x", ChannelDelta("x", 1, {}))

    settings = Settings.from_env({"C360_STATE_COMMIT_INTERVAL": str(interval)})
    r = StageRunner("t", settings, table, process, lambda v: [], lambda: sender)
    r.rewind.settled = lambda: True
    r._fresh = lambda txn, msg, outbox: [msg.offset]
    return r, store, sender, seen


def stored(store: Store, partition: int) -> tuple:
    db = store.dbs[partition]
    count = db.get(b"count")
    return (None if count is None else int(count), store.input_offset(partition))


def test_groups_share_an_open_transaction_until_it_is_due(tmp_path, clock):
    r, store, sender, seen = runner(tmp_path, 0.2)
    asyncio.run(r.handle([message(0)]))
    clock.now += 0.05
    asyncio.run(r.handle([message(1), message(2)]))
    assert seen == [0, 1, 2]  # later groups read the open writes
    assert stored(store, 0) == (None, {})  # nothing written yet
    assert not [e for e in sender.log if e[1] == "changelog"]
    assert r.due_in() == pytest.approx(0.15)
    clock.now += 0.16
    asyncio.run(r.handle([message(3)]))
    assert stored(store, 0) == (4, {"in:0": 3})  # once, up to the last record
    assert [e for e in sender.log if e[0] == "send" and e[1] == "changelog"] == [
        ("send", "changelog", 0, 2)  # one changed key and the marker
    ]
    assert r.due_in() is None


def test_the_state_is_written_after_every_output_was_acknowledged(tmp_path, clock):
    r, _, sender, _ = runner(tmp_path, 0.2)
    asyncio.run(r.handle([message(0)]))
    clock.now += 0.3
    asyncio.run(r.handle([message(1)]))
    write = sender.log.index(("write", 0))
    acks = [i for i, e in enumerate(sender.log) if e[0] == "ack"]
    sends = [i for i, e in enumerate(sender.log) if e[0] == "send"]
    assert len(acks) == len(sends) == 3  # two groups' outputs, one changelog
    assert max(acks) < write


def test_an_empty_group_commits_what_is_due_and_only_that(tmp_path, clock):
    r, store, _, _ = runner(tmp_path, 0.2)
    asyncio.run(r.handle([message(0, partition=0)]))
    clock.now += 0.1
    asyncio.run(r.handle([message(0, partition=1)]))
    clock.now += 0.11
    asyncio.run(r.handle([]))
    assert stored(store, 0) == (1, {"in:0": 0})
    assert stored(store, 1) == (None, {})  # open for 0.1 s only
    assert r.due_in() == pytest.approx(0.09)
    clock.now += 0.11
    asyncio.run(r.handle([]))
    assert stored(store, 1) == (1, {"in:1": 0})


def test_interval_zero_commits_every_group(tmp_path, clock):
    r, store, _, _ = runner(tmp_path, 0)
    asyncio.run(r.handle([message(0)]))
    assert stored(store, 0) == (1, {"in:0": 0})
    asyncio.run(r.handle([message(1)]))
    assert stored(store, 0) == (2, {"in:0": 1})


def test_a_large_open_transaction_is_committed_early(tmp_path, clock, monkeypatch):
    monkeypatch.setattr(stage_mod, "OPEN_MAX_WRITES", 1)
    r, store, _, _ = runner(tmp_path, 60)
    asyncio.run(r.handle([message(0)]))
    assert stored(store, 0) == (1, {"in:0": 0})


def test_a_rebalance_drops_the_open_transaction_and_its_input_is_redone(tmp_path, clock):
    r, store, _, seen = runner(tmp_path, 0.2)
    asyncio.run(r.handle([message(0)]))
    clock.now += 0.3
    asyncio.run(r.handle([message(1)]))  # committed: count 2 at offset 1
    asyncio.run(r.handle([message(2)]))  # open
    r.forget()
    assert r.due_in() is None
    # redelivered from the stored offset: applied again on the committed state
    asyncio.run(r.handle([message(1), message(2)]))
    assert seen == [0, 1, 2, 2]
    clock.now += 0.3
    asyncio.run(r.handle([]))
    assert stored(store, 0) == (3, {"in:0": 2})


class Rewind:
    """Records seeks; the group's committed offsets are given."""

    def __init__(self, committed: dict) -> None:
        self.offsets = committed
        self.seeks: list = []
        self.unsticks: list = []
        self.is_settled = True

    def settled(self) -> bool:
        return self.is_settled

    def committed(self, tp) -> int | None:
        return self.offsets.get(tp)

    def floor_of(self, topic: str, partition: int) -> int:
        return 0  # no hole given up

    async def hole(self, msg, expected: int, who: str) -> tuple[int, bool]:
        return expected, await self.to(msg.topic, msg.partition, expected, who)

    async def to(
        self, topic: str, partition: int, offset: int, why: str, reason: str = "hole"
    ) -> bool:
        self.seeks.append((topic, partition, offset))
        return True

    async def unstick(self, tp, expected: int, busy: bool) -> bool:
        self.unsticks.append((tp.topic, tp.partition, expected, busy))
        return False

    def forget(self) -> None:
        pass


def test_realign_seeks_back_what_the_group_committed_past_the_state(tmp_path, clock):
    r, store, _, _ = runner(tmp_path, 0.2)
    asyncio.run(r.handle([message(0), message(1)]))
    clock.now += 0.3
    asyncio.run(r.handle([message(0, partition=1)]))  # in:0 committed at 1; in:1 open
    clock.now += 0.3
    asyncio.run(r.handle([message(2)]))  # in:1 committed at 0; in:0 open, then dropped
    r.forget()
    assert stored(store, 0) == (2, {"in:0": 1}) and stored(store, 1) == (1, {"in:1": 0})
    tps = [TP("in", 0), TP("in", 1), TP("other", 0)]
    # faust committed what the groups acknowledged: in:0 up to 3, in:1 up to 1
    rewind = Rewind({TP("in", 0): 3, TP("in", 1): 1, TP("other", 0): 9})
    r.rewind = rewind
    r.topic = "in"
    r.table.app = SimpleNamespace(
        should_stop=False, consumer=SimpleNamespace(assignment=lambda: set(tps))
    )
    rewind.is_settled = False
    asyncio.run(r.realign())
    assert rewind.seeks == []  # not before faust has settled
    rewind.is_settled = True
    asyncio.run(r.realign())
    assert rewind.seeks == [("in", 0, 2)]  # in:1's state holds all it committed
    asyncio.run(r.realign())
    assert rewind.seeks == [("in", 0, 2)]  # once per rebalance


def test_unstick_checks_each_assigned_partition_from_its_next_record(tmp_path, clock):
    r, _, _, _ = runner(tmp_path, 0.2)
    asyncio.run(r.handle([message(0), message(1)]))  # in:0 open at 1
    tps = [TP("in", 0), TP("in", 1), TP("other", 0)]
    rewind = Rewind({})
    r.rewind = rewind
    r.topic = "in"
    r.table.app = SimpleNamespace(
        should_stop=False, consumer=SimpleNamespace(assignment=lambda: set(tps))
    )
    asyncio.run(r.unstick())
    assert rewind.unsticks == []  # not before realign has run after the start
    asyncio.run(r.realign())
    rewind.is_settled = False
    asyncio.run(r.unstick())
    assert rewind.unsticks == []  # nor while faust assigns or recovers
    rewind.is_settled = True
    asyncio.run(r.unstick())
    # its own topic's partitions, from the record after the last one applied (open or
    # stored; none yet: the first), idle between groups
    assert rewind.unsticks == [("in", 0, 2, False), ("in", 1, 0, False)]
    seen_busy = []
    process = r.process

    def process_and_look(txn, items, outbox):
        seen_busy.append(r._busy)
        process(txn, items, outbox)

    r.process = process_and_look
    asyncio.run(r.handle([message(2)]))
    assert seen_busy == [True] and not r._busy  # busy while it handles a group


def test_a_rebalance_while_a_group_is_sent_drops_the_group(tmp_path, clock):
    r, store, sender, seen = runner(tmp_path, 0)  # every group due at once
    send = sender.send

    async def send_during_a_rebalance(topic, partition, records):
        r.forget()  # the rebalance completes while the group's records are in flight
        return await send(topic, partition, records)

    sender.send = send_during_a_rebalance
    asyncio.run(r.handle([message(0)]))
    assert stored(store, 0) == (None, {})  # nothing written
    sender.send = send
    asyncio.run(r.handle([message(0)]))  # delivered again: applied again, on what is stored
    assert seen == [0, 0]
    assert stored(store, 0) == (1, {"in:0": 0})


def test_a_partition_with_no_state_stored_starts_at_its_first_record(tmp_path, clock):
    # its state was open when the worker stopped, and faust committed its records 0..4
    r, store, _, seen = runner(tmp_path, 0)
    rewind = Rewind({TP("in", 0): 5})
    r.rewind = rewind
    asyncio.run(r.handle([message(5), message(6)]))
    assert seen == [] and rewind.seeks == [("in", 0, 0)]
    asyncio.run(r.handle([message(0), message(1)]))
    assert seen == [0, 1] and stored(store, 0) == (2, {"in:0": 1})


def test_a_rebalance_while_a_group_is_applied_drops_the_group(tmp_path, clock):
    r, store, sender, seen = runner(tmp_path, 0)
    process = r.process

    def process_during_a_rebalance(txn, items, outbox):
        process(txn, items, outbox)
        r.forget()  # it completes at the group's next await (a yield, a seek)

    r.process = process_during_a_rebalance
    asyncio.run(r.handle([message(0)]))
    assert stored(store, 0) == (None, {}) and r.due_in() is None
    assert not [e for e in sender.log if e[0] == "send"]  # not even its outputs
    r.process = process
    asyncio.run(r.handle([message(0)]))  # delivered again: applied on what is stored
    assert seen == [0, 0] and stored(store, 0) == (1, {"in:0": 0})


def test_a_group_cut_short_by_a_stop_keeps_nothing_and_does_not_stop_the_process(tmp_path, clock):
    r, store, sender, seen = runner(tmp_path, 0.2)
    asyncio.run(r.handle([message(0)]))  # open
    r.table.app = SimpleNamespace(should_stop=False)
    send = sender.send

    async def send_while_stopping(topic, partition, records):
        r.table.app.should_stop = True  # the tables close their databases
        raise RuntimeError("database closed")

    sender.send = send_while_stopping
    asyncio.run(r.handle([message(1)]))  # logged, not fatal (that would exit the tests)
    assert r.due_in() is None and stored(store, 0) == (None, {})
    r.table.app.should_stop = False  # (the next process) delivered again from the start
    sender.send = send
    asyncio.run(r.handle([message(0), message(1)]))
    assert seen == [0, 1, 0, 1]
    clock.now += 0.3
    asyncio.run(r.handle([]))
    assert stored(store, 0) == (2, {"in:0": 1})


def _busy(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def test_a_stage_working_in_steps_lets_others_in_within_a_record(tmp_path, clock):
    r, store, _, _ = runner(tmp_path, 0)
    others_ran: list[bool] = []

    def steps(txn, items, outbox):
        other = asyncio.Event()
        asyncio.get_running_loop().call_soon(other.set)  # runs once the runner yields
        _busy(r.yield_after * 2)
        yield
        others_ran.append(other.is_set())
        txn.put("count", 1)
        yield

    r.process = steps
    asyncio.run(r.handle([message(0)]))
    assert others_ran == [True]  # between two steps of one record
    assert stored(store, 0) == (1, {"in:0": 0})


def test_a_rebalance_while_a_commit_encodes_sends_no_changelog(tmp_path, clock):
    r, store, sender, _ = runner(tmp_path, 0)
    r.yield_after = -1.0  # rest after every change encoded
    send = sender.send

    async def send_then_rebalance(topic, partition, records):
        if topic != "changelog":
            asyncio.get_running_loop().call_soon(r.forget)  # comes at the next rest
        return await send(topic, partition, records)

    sender.send = send_then_rebalance
    asyncio.run(r.handle([message(0)]))
    assert not [e for e in sender.log if e[0] == "send" and e[1] == "changelog"]
    assert stored(store, 0) == (None, {})  # its input is redone from the stored offset


def test_counters_count_each_record_once_when_a_rebalance_redoes_it(tmp_path, clock):
    """The stage's counters (c360_stage_records_total and those its hook moves by the
    pure stage's counts) move for the records whose state was written: work a
    rebalance drops is redone, and counting it when applied counted it twice."""
    from stream.shell.metrics import METRICS
    from stream.shell.observe import ROUTE_OUTCOMES, route_hook

    r, store, _, _ = runner(tmp_path, 0.2)
    stats = dict.fromkeys((*ROUTE_OUTCOMES, "outside_window", "retracts"), 0)
    process = r.process

    def routing(txn, items, outbox):  # a route stage: each record one fact to profiles
        stats["to_profile"] += 1
        return process(txn, items, outbox)

    r.process = routing
    r.observe = route_hook(SimpleNamespace(stats=stats))

    def counted() -> tuple[float, float]:
        value = METRICS.registry.get_sample_value
        return (
            value("c360_route_facts_total", {"outcome": "to_profile"}) or 0.0,
            value("c360_stage_records_total", {"stage": "t"}) or 0.0,
        )

    before = counted()
    asyncio.run(r.handle([message(0)]))  # open
    clock.now += 0.05
    asyncio.run(r.handle([message(1)]))  # open still
    r.forget()  # a rebalance drops both: redone from the stored offset
    asyncio.run(r.handle([message(0), message(1)]))
    clock.now += 0.3
    asyncio.run(r.handle([]))  # due: written
    assert stored(store, 0) == (2, {"in:0": 1})
    after = counted()
    assert (after[0] - before[0], after[1] - before[1]) == (2, 2)


async def test_a_revoked_partition_leaves_no_open_transaction_holding_its_database(tmp_path):
    """faust's store drops a revoked partition's database without closing it (closed when
    its last reference goes); an open transaction kept it open, and RocksDB refuses a
    second open in one process: the partition assigned back here (a standby replaying
    its changelog, or an active) failed on the lock until the rebalance completed."""
    from stream.app import create_app

    c360 = create_app(Settings.from_env({}, data_dir=tmp_path / "data"))
    runner = c360.stages["profile"]
    runner._open[0] = stage_mod._Open(Txn(open_db(str(tmp_path / "db"))), "c360.profile:0", 5, 0.0)
    with pytest.raises(Exception, match="lock"):
        open_db(str(tmp_path / "db"))
    await c360.app.on_partitions_revoked.send({TP("c360.profile", 0)})
    assert not runner._open
    open_db(str(tmp_path / "db")).close()  # the lock went with the transaction


def test_a_changelog_is_sent_only_once_the_outputs_it_covers_were_acknowledged(tmp_path, clock):
    """Recovery applies a changelog whose marker it finds: a marker sent beside outputs
    that then failed (the worker stops on it) had the restart skip records whose outputs
    were never written."""
    r, _, sender, _ = runner(tmp_path, 0.2)
    asyncio.run(r.handle([message(0)]))
    clock.now += 0.3
    asyncio.run(r.handle([message(1)]))
    log = sender.log
    changelog = log.index(("send", "changelog", 0, 2))
    outputs = [i for i, e in enumerate(log) if e[0] == "ack" and e[1] != "changelog"]
    assert len(outputs) == 2 and max(outputs) < changelog


def test_a_rebalance_during_a_commit_stops_its_changelog_sends_there(tmp_path, clock):
    """The commit checked for a rebalance once, before its first changelog send; a send
    can wait in the producer, and a partition's records sent after faust flushed and
    handed the partition over land in a changelog its next owner is already reading."""
    r, _, sender, _ = runner(tmp_path, 0.2)
    asyncio.run(r.handle([message(0, 0), message(0, 1)]))  # both partitions open
    send = sender.send

    async def rebalance_during_first_changelog_send(topic, partition, records):
        sent = await send(topic, partition, records)
        if topic == "changelog":
            r.forget()  # what faust's revocation does while the send waits
        return sent

    sender.send = rebalance_during_first_changelog_send
    clock.now += 0.3
    asyncio.run(r.handle([]))  # an idle commit of both
    changelog = [e for e in sender.log if e[0] == "send" and e[1] == "changelog"]
    assert len(changelog) == 1  # the second partition's records were not sent
    assert not [e for e in sender.log if e[0] == "write"]  # and nothing was written
