"""The profile stage's metric totals (``s:counts``) equal a count over the live views,
through merges, splits, ticks and revaluations, in any arrival order."""

from __future__ import annotations

from collections import Counter

import pytest

from stream.core.profile import COUNTS
from stream.core.rules import Rules
from stream.sim import Input, Simulator
from tests.simulation.profile_scenarios import profile_scenario
from tests.simulation.scenarios import scenario

RULES = Rules(retract_window_hours=10**6)


def totals(sim: Simulator) -> tuple[int, Counter, Counter]:
    persons, lifecycle, vip = 0, Counter(), Counter()
    for (stage, _), state in sim.states.items():
        counts = state.get(COUNTS) if stage == "profile" else None
        if counts:
            persons += counts["n"]
            lifecycle.update(counts["lc"])
            vip.update(counts["vip"])
    return persons, +lifecycle, +vip


def expected(sim: Simulator) -> tuple[int, Counter, Counter]:
    views = [row["w"] for row in sim.persons().values() if row["w"]]
    lifecycle = Counter(v["lifecycle"] for v in views if v.get("lifecycle") is not None)
    vip = Counter(v["vip_tier"] for v in views if v.get("vip_tier") is not None)
    return len(views), lifecycle, vip


@pytest.mark.parametrize("seed", range(6))
def test_counts_follow_profiles_with_merges_ticks_and_revaluations(seed):
    sc = profile_scenario(seed)
    sim = Simulator(partitions=1 + seed % 4, seed=seed, rules=RULES)
    sim.run(sc.inputs)
    sim.run([Input("tick", now=sc.now)])
    assert totals(sim) == expected(sim)
    assert totals(sim)[0] > 0


@pytest.mark.parametrize("seed", range(6))
def test_counts_follow_persons_through_splits(seed):
    sc = scenario(seed, 60, labels=True, size=8)
    sim = Simulator(partitions=1 + seed % 3, seed=seed, rules=Rules(max_joins={"anon": 2}))
    sim.run(sc.inputs)
    assert totals(sim) == expected(sim)
