"""Without per-person limits (the one guard that is first come, first served), the
final persons do not depend on the order the inputs arrive in, nor on the partition
count: hub detection counts distinct proposals (docs/identity.md, guard 2), and a
label blocks its wallet whether it comes before or after the links."""

from __future__ import annotations

import json
import os
import random

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from stream.core.rules import Blocked, Rules
from stream.sim import Simulator
from tests.simulation.scenarios import scenario

EXAMPLES = int(os.environ.get("C360_PROPERTY_EXAMPLES", "150")) // 3

HUBS_AND_LABELS = Rules(
    limits={},
    max_joins={"anon": 3, "wallet": 3},
    blocked=Blocked(exact=[], patterns=[]),
    blocked_label_categories=["exchange"],
)


def _not_a_removal(item) -> bool:
    """Not a label removed or replaced by one that does not block: the refusals a wallet
    got while blocked are not replayed after (docs/identity.md), an order dependence."""
    if item.topic != "labels":
        return True
    labels = json.loads(item.value)["labels"]
    return bool(labels) and all(label["category"] == "exchange" for label in labels)


def partition(seed: int, partitions: int, shuffle: bool) -> set[frozenset[str]]:
    sc = scenario(seed, 80, labels=True, size=10)
    inputs = [i for i in sc.inputs if _not_a_removal(i)]
    if shuffle:
        random.Random(seed).shuffle(inputs)
    sim = Simulator(partitions=partitions, seed=seed + partitions, rules=HUBS_AND_LABELS)
    sim.run(inputs)
    universe = {f.primary for f in sc.facts} | {i for f in sc.facts for i in f.links}
    persons: dict[str, set[str]] = {}
    for ident in universe:
        persons.setdefault(sim.person_of(ident), set()).add(ident)
    return {frozenset(members) for members in persons.values()}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10**9), partitions=st.integers(1, 16))
# a label before a device's link to its wallet kept the kiosk under its cap (the link
# to the blocked wallet was not counted): seed 3 held a blob in one order only
@example(seed=3, partitions=1)
def test_without_limits_the_persons_do_not_depend_on_arrival_order(seed, partitions):
    assert partition(seed, partitions, shuffle=True) == partition(seed, 1, shuffle=False)
