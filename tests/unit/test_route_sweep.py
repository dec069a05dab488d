"""The route stage's duplicate window: facts already outside it are not remembered, and
old keys are forgotten in bounded parts, paid for by the facts that follow."""

from __future__ import annotations

from stream import topics
from stream.core.facts import Fact
from stream.core.messages import Tick
from stream.core.route import DAY_MS, SWEEP_MAX, SWEEP_PER_FACT, SWEEPING, RouteStage
from stream.core.rules import DEFAULT, Compiled
from stream.core.state import Collected, MemoryState

DAY = 20_000
NOW = (DAY + 30) * DAY_MS


def old_keys(state: MemoryState, counts: dict[str, int]) -> None:
    """``counts[src]`` keys of a day 30 days before the newest of ``src``."""
    for src, n in counts.items():
        for i in range(n):
            state.put(f"d:{src}:{DAY:06d}:anon:a{i}:e{i}", 1)
        state.put(f"dd:{src}", DAY + 30)
    state.commit()


def keys(state: MemoryState) -> set[str]:
    return {k for k, _ in state.scan("d:", "d;")}


def facts(n: int, tag: str) -> list[Fact]:
    """``n`` new facts of today (their own keys are in the window)."""
    return [Fact(f"{tag}{i}", f"anon:{tag}{i}", "page", NOW + i, "web.events") for i in range(n)]


def run(stage: RouteStage, state: MemoryState, messages: list) -> Collected:
    out = Collected()
    stage.process(state, messages, out)
    state.commit()
    return out


def test_a_tick_forgets_a_bounded_part_and_the_facts_that_follow_pay_for_the_rest():
    state = MemoryState()
    old_keys(state, {"chain": SWEEP_MAX + 3, "web.events": 2 * SWEEP_MAX + 7})
    due = keys(state)
    stage = RouteStage(Compiled(DEFAULT))

    out = run(stage, state, [Tick(NOW, 3)])
    assert out.internal_messages == []  # nothing sent on: the rest waits in the state
    assert len(due - keys(state)) == SWEEP_MAX
    now, cursor, paid = state.get(SWEEPING)
    assert (now, cursor, paid) == (NOW, max(due - keys(state)), 0)

    per_part = SWEEP_MAX // SWEEP_PER_FACT
    forgotten = [SWEEP_MAX]
    for part in range(3):
        before = keys(state) & due
        run(stage, state, facts(per_part - 1, f"p{part}-"))
        assert keys(state) & due == before  # not yet paid for
        assert state.get(SWEEPING)[2] == (per_part - 1) * SWEEP_PER_FACT
        run(stage, state, facts(1, f"q{part}-"))
        forgotten.append(len(before - keys(state)))
    assert forgotten == [SWEEP_MAX, SWEEP_MAX, SWEEP_MAX, 10]
    assert keys(state) & due == set()
    assert state.get(SWEEPING) is None  # done: facts pay nothing more
    assert all(k.startswith(f"d:web.events:{DAY + 30:06d}:") for k in keys(state))


def test_facts_pay_for_nothing_when_no_sweep_is_left():
    state = MemoryState()
    old_keys(state, {"web.events": 10})
    stage = RouteStage(Compiled(DEFAULT))
    run(stage, state, facts(SWEEP_MAX, "a"))
    assert len(keys(state)) == 10 + SWEEP_MAX  # the old keys wait for a tick
    assert state.get(SWEEPING) is None
    run(stage, state, [Tick(NOW)])
    assert len(keys(state)) == SWEEP_MAX
    assert state.get(SWEEPING) is None


def test_the_next_tick_starts_over_and_finds_a_late_key_behind_the_cursor():
    state = MemoryState()
    old_keys(state, {"web.events": SWEEP_MAX + 5})
    stage = RouteStage(Compiled(DEFAULT))
    run(stage, state, [Tick(NOW)])
    _, cursor, _ = state.get(SWEEPING)
    late = f"d:web.events:{DAY - 1:06d}:anon:late:e"  # a fact of an old day, behind it
    assert late < cursor
    state.put(late, 1)
    state.commit()
    run(stage, state, facts(SWEEP_MAX // SWEEP_PER_FACT, "a"))  # pays for the rest
    assert state.get(SWEEPING) is None
    assert late in keys(state)  # behind the cursor: left to the next tick
    run(stage, state, [Tick(NOW)])
    assert late not in keys(state)
    assert all(k.startswith(f"d:web.events:{DAY + 30:06d}:") for k in keys(state))


def test_a_tick_sent_on_by_an_older_worker_goes_on_at_its_cursor():
    state = MemoryState()
    old_keys(state, {"web.events": 10})
    cursor = sorted(keys(state))[4]
    kept = {k for k in keys(state) if k <= cursor}
    run(RouteStage(Compiled(DEFAULT)), state, [Tick(NOW, 0, cursor)])
    assert keys(state) == kept and len(kept) == 5


def to_profile(out: Collected) -> list[str]:
    return [m.fact.id for m in out.of(topics.PROFILE)]


def fact_of(day: int, n: int, op: int = 1) -> Fact:
    return Fact(f"e{n}", f"anon:d{n}", "page", day * DAY_MS + 1000, "web.events", op=op)


def test_a_fact_outside_the_window_is_applied_as_it_comes_and_not_remembered():
    state, stage = MemoryState(), RouteStage(Compiled(DEFAULT))
    run(stage, state, [Tick(NOW)])
    today = DAY + 30
    recent, late = fact_of(today - 7, 1), fact_of(today - 8, 2)
    out = run(stage, state, [fact_of(today, 0), recent, recent, late, late])
    assert to_profile(out) == ["e0", "e1", "e2", "e2"]  # the late one counts twice
    assert keys(state) - {f"d:web.events:{today:06d}:anon:d0:e0"} == {
        f"d:web.events:{today - 7:06d}:anon:d1:e1"
    }
    assert stage.stats["outside_window"] == 2 and stage.stats["duplicates"] == 1
    out = run(stage, state, [fact_of(today - 8, 2, op=-1), fact_of(today - 7, 1, op=-1)])
    assert to_profile(out) == ["e2", "e1"]  # a reorg undoes the late one too
    assert stage.stats["outside_window"] == 3 and stage.stats["retracts"] == 1
    assert len(keys(state)) == 1  # today's
    out = run(stage, state, [fact_of(today - 7, 1, op=-1)])
    assert to_profile(out) == [] and stage.stats["retract_unknown"] == 1


def test_before_the_first_tick_every_fact_is_remembered():
    state, stage = MemoryState(), RouteStage(Compiled(DEFAULT))
    late = fact_of(DAY, 1)
    out = run(stage, state, [fact_of(DAY + 30, 0), late, late])
    assert to_profile(out) == ["e0", "e1"]
    assert stage.stats["outside_window"] == 0


def test_one_fact_dated_in_the_future_does_not_empty_the_window():
    state, stage = MemoryState(), RouteStage(Compiled(DEFAULT))
    run(stage, state, [Tick(NOW)])
    today = DAY + 30
    yesterday = fact_of(today - 1, 1)
    out = run(stage, state, [fact_of(today + 100, 0), yesterday, yesterday])
    assert to_profile(out) == ["e0", "e1"]  # the horizon is capped at the tick's day
    run(stage, state, [Tick(NOW)])  # and the sweep keeps yesterday's key
    assert f"d:web.events:{today - 1:06d}:anon:d1:e1" in keys(state)


def test_a_part_forgets_at_most_sweep_max_keys_and_keeps_what_a_large_record_paid():
    state = MemoryState()
    old_keys(state, {"web.events": 5 * SWEEP_MAX})
    due = keys(state)
    stage = RouteStage(Compiled(DEFAULT))
    # a tick and facts in one record: the tick's part is the record's
    run(stage, state, [Tick(NOW), *facts(SWEEP_MAX, "a")])
    assert len(due - keys(state)) == SWEEP_MAX
    assert state.get(SWEEPING)[2] == 0  # its facts paid for no other
    # a record of 1,500 facts pays 3,000 keys: one part, the rest kept (at most a part)
    run(stage, state, facts(3 * SWEEP_MAX // 2, "b"))
    assert len(due - keys(state)) == 2 * SWEEP_MAX
    assert state.get(SWEEPING)[2] == SWEEP_MAX
    run(stage, state, facts(1, "c"))  # and the next record runs it
    assert len(due - keys(state)) == 3 * SWEEP_MAX


def test_the_cap_is_the_latest_tick_not_the_greatest():
    state, stage = MemoryState(), RouteStage(Compiled(DEFAULT))
    today = DAY + 30
    run(stage, state, [Tick((today + 100) * DAY_MS)])  # a tick sent by hand, far ahead
    run(stage, state, [Tick(NOW)])  # then the ticker's
    yesterday = fact_of(today - 1, 1)
    out = run(stage, state, [fact_of(today + 100, 0), yesterday, yesterday])
    assert to_profile(out) == ["e0", "e1"]


def test_a_retract_outside_the_window_takes_a_key_kept_from_before_with_it():
    state, stage = MemoryState(), RouteStage(Compiled(DEFAULT))
    today = DAY + 30
    run(stage, state, [fact_of(today, 0), fact_of(today - 10, 1)])  # no tick yet: kept
    assert f"d:web.events:{today - 10:06d}:anon:d1:e1" in keys(state)
    run(stage, state, [Tick(NOW)])  # a tick (its sweep would forget it too)
    state.put(f"d:web.events:{today - 10:06d}:anon:d1:e1", 1)  # not yet swept, say
    state.commit()
    out = run(stage, state, [fact_of(today - 10, 1, op=-1)])
    assert to_profile(out) == ["e1"]
    assert f"d:web.events:{today - 10:06d}:anon:d1:e1" not in keys(state)
