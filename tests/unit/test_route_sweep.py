"""The route stage forgets old duplicate keys a bounded number at a time."""

from __future__ import annotations

from stream import topics
from stream.core.messages import Tick
from stream.core.route import DAY_MS, SWEEP_MAX, RouteStage
from stream.core.rules import DEFAULT, Compiled
from stream.core.state import Collected, MemoryState


def test_a_sweep_forgets_a_bounded_number_of_keys_and_sends_the_tick_on_to_its_partition():
    state = MemoryState()
    day = 20_000
    old = {"chain": SWEEP_MAX + 3, "web.events": 2 * SWEEP_MAX + 7}
    for src, n in old.items():
        for i in range(n):
            state.put(f"d:{src}:{day:06d}:anon:a{i}:e{i}", 1)
        state.put(f"dd:{src}", day + 30)
    recent = f"d:web.events:{day + 30:06d}:anon:b:e"
    state.put(recent, 1)
    state.commit()
    stage = RouteStage(Compiled(DEFAULT))

    tick, rounds, forgotten = Tick((day + 30) * DAY_MS, 3), 0, []
    while tick is not None:
        before = [k for k, _ in state.scan("d:", "d;")]
        out = Collected()
        stage.process(state, [tick], out)
        state.commit()
        rounds += 1
        after = {k for k, _ in state.scan("d:", "d;")}
        gone = [k for k in before if k not in after]
        forgotten.append(len(gone))
        assert out.records == []
        if out.internal_messages:  # more are due: the tick, to its own partition, with
            [(spec, key, onward)] = out.internal_messages  # the last key it forgot
            assert (spec, key) == (topics.ROUTE, "#3")
            assert (onward.now, onward.partition, onward.cursor) == (tick.now, 3, max(gone))
            tick = onward
        else:
            tick = None
    assert forgotten == [SWEEP_MAX, SWEEP_MAX, SWEEP_MAX, 10]
    assert [k for k, _ in state.scan("d:", "d;")] == [recent]


def test_a_tick_that_does_not_name_its_partition_leaves_the_rest_to_the_next_tick():
    state = MemoryState()
    for i in range(SWEEP_MAX + 1):
        state.put(f"d:web.events:000001:anon:a{i}:e{i}", 1)
    state.put("dd:web.events", 100)
    state.commit()
    out = Collected()
    RouteStage(Compiled(DEFAULT)).process(state, [Tick(100 * DAY_MS)], out)
    state.commit()
    assert out.internal_messages == []
    assert len(list(state.scan("d:", "d;"))) == 1
