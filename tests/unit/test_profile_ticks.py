"""A profile tick fires a bounded number of timers per message and goes on in parts."""

from __future__ import annotations

from unittest import mock

from stream import topics
from stream.core import profile
from stream.core.aggregate import Aggregator
from stream.core.facts import Fact
from stream.core.messages import Event, Price, Tick
from stream.core.profile import ProfileStage
from stream.core.rules import DEFAULT
from stream.core.state import Collected, MemoryState

DAY = 86_400_000
T0 = 1_790_000_000_000
USDC = "1:0x" + "aa" * 20


def populated(persons: int) -> tuple[ProfileStage, MemoryState]:
    """Persons with one page view and one USDC transfer each, long ago: their lifecycle
    timers are due at T0 + 100 days, and they hold USDC (revalued when its price moves)."""
    stage, state = ProfileStage(Aggregator(DEFAULT)), MemoryState()
    events: list = [Price(USDC, [1.0, 6, "USDC"])]
    for i in range(persons):
        wallet = f"wallet:0x{i:040x}"
        events.append(Event(f"p{i:03d}", 0, Fact(f"w{i}", wallet, "page", T0 + i, "web.events")))
        transfer = {"chain": 1, "block": 10 + i, "token": USDC, "value": 10**6, "side": "out"}
        events.append(
            Event(f"p{i:03d}", 0, Fact(f"t{i}", wallet, "transfer", T0 + i, "chain", data=transfer))
        )
    stage.process(state, [Tick(T0, 0), *events], Collected())
    state.commit()
    stage.process(state, [Price(USDC, [2.0, 6, "USDC"])], Collected())  # every holder is due
    state.commit()  # for revaluation at the next tick too
    return stage, state


def test_a_tick_fires_at_most_tick_max_timers_per_message_and_goes_on_with_a_cursor():
    stage, state = populated(23)
    tick, kinds, fired = Tick(T0 + 100 * DAY, 0), [], []
    with mock.patch.object(profile, "TICK_MAX", 5):
        while tick is not None:
            timers = [k for k, _ in state.scan("t:", "t;")]
            out = Collected()
            stage.process(state, [tick], out)
            state.commit()
            gone = [k for k in timers if k not in {k for k, _ in state.scan("t:", "t;")}]
            fired.append(len(gone))
            causes = [c.cause.kind for c in out.of(topics.PROFILE_CHANGES)]
            kinds.append((causes.count("tick"), causes.count("revaluation")))
            [*onward] = out.of(topics.PROFILE)
            assert [key for _, key, _ in out.internal_messages] == ["#0" for _ in onward]
            if onward:  # the same tick, to its own partition, after the last timer it fired
                [nxt] = onward
                assert (nxt.now, nxt.partition, nxt.cursor) == (tick.now, 0, max(gone))
                tick = nxt
            else:
                tick = None
    # 23 timers in parts of 5; every holder revalued by the first part (its 5 fired
    # persons' changes say "tick")
    assert fired == [5, 5, 5, 5, 3]
    assert kinds == [(5, 18), (5, 0), (5, 0), (5, 0), (3, 0)]
    assert stage.stats["tick_parts"] == 4

    whole_stage, whole = populated(23)
    whole_stage.process(whole, [Tick(T0 + 100 * DAY)], Collected())  # no partition: no bound
    whole.commit()
    views = lambda s: {k: row["w"] for k, row in s.scan("p:", "p;")}  # noqa: E731
    assert views(state) == views(whole)
    assert {v["lifecycle"] for v in views(state).values()} == {"churned"}
    assert {v["volume_usd"] for v in views(state).values()} == {2.0}


def test_steps_pause_between_messages_and_between_published_persons():
    """The worker runs a record a step at a time (it serves lookups between steps); what
    it computes is process's, however the steps are spaced."""
    by_process = ProfileStage(Aggregator(DEFAULT)), MemoryState()
    by_steps = ProfileStage(Aggregator(DEFAULT)), MemoryState()
    events = [
        Event(f"p{i}", 0, Fact(f"e{i}", f"wallet:0x{i:040x}", "page", T0 + i, "web.events"))
        for i in range(5)
    ]
    out_process, out_steps = Collected(), Collected()
    by_process[0].process(by_process[1], events, out_process)
    pauses = sum(1 for _ in by_steps[0].steps(by_steps[1], events, out_steps))
    assert pauses == len(events) + 5  # one after each message and each person touched
    by_process[1].commit()
    by_steps[1].commit()
    stored = dict(by_process[1].scan("", "\U0010ffff"))
    assert stored and dict(by_steps[1].scan("", "\U0010ffff")) == stored
    assert out_steps.of(topics.PROFILE_CHANGES) == out_process.of(topics.PROFILE_CHANGES)
    assert len(out_steps.of(topics.PROFILE_CHANGES)) == 5
