"""The partition's copy of a wallet's labels (``lb:``) is shared by every person of the
partition that lists the wallet, while a label change names one person only (found by
the second reading of the change that made labels come through the input).

The route stage sends a wallet's facts straight to the profile partition of the person
it last heard of (an ``Assign`` of a newer seq), ahead of the link stage's own messages
to that partition: for a while two live persons of one partition list the wallet, the
one the link stage's last ``Refresh`` names and the one the newer facts reached. So
labels are read from the copy at every publish: the second person shows the change at
its next publish, and every view stays whole (check_views)."""

from __future__ import annotations

import random

import pytest

from stream.core.aggregate import Aggregator
from stream.core.facts import Fact
from stream.core.messages import Event, Members, Refresh
from stream.core.profile import ProfileStage
from stream.core.rules import DEFAULT
from stream.core.state import Collected, MemoryState
from stream.sim import Input, Simulator
from tests.simulation.profile_scenarios import label_input
from tests.simulation.scenarios import scenario, wallet

TS = 1_790_000_000_000
WALLET = "wallet:0x" + "51ce" * 10
CATEGORIES = [
    "exchange",
    "contract",
    "bridge",
    "router",
    "fund",
    "dao",
    "sanctioned",
    "scam",
    "bot",
    "other",
]


def run(stage: ProfileStage, state: MemoryState, *messages) -> Collected:
    out = Collected()
    stage.process(state, list(messages), out)
    state.commit()
    return out


def test_a_label_change_reaches_every_person_of_the_partition_that_shows_the_wallet():
    stage, state = ProfileStage(Aggregator(DEFAULT), check_views=True), MemoryState()
    old, new = "p-old", "p-new"
    # the link stage put the labelled wallet in `old` ...
    run(stage, state, Members(old, 1, [WALLET], {WALLET: {"1": ["dao"]}}))
    # ... then moved it to `new` (seq 2): the route stage's events for it come first
    run(stage, state, Event(new, 2, Fact("e1", WALLET, "page", TS, "web.events")))
    assert state.get("p:" + new)["w"]["labels"] == {WALLET: ["dao"]}
    # the link stage's Refresh of a label change sent before the move (it names `old`)
    run(stage, state, Refresh(old, 1, WALLET, {"1": ["bot"]}))
    # `new` changes for another reason: its view must be its whole view
    run(stage, state, Event(new, 2, Fact("e2", WALLET, "page", TS + 1, "web.events")))
    assert state.get("p:" + new)["w"]["labels"] == {WALLET: ["bot"]}


def _label(r: random.Random, w: int) -> Input:
    categories = [] if r.random() < 0.3 else r.sample(CATEGORIES, r.randint(1, 2))
    return label_input(wallet(w), categories, chain=r.choice([1, 1, 10]))


@pytest.mark.parametrize(
    ("seed", "partitions", "size", "events"),
    [(23, 2, 5, 80), (65, 2, 12, 150), (80, 5, 12, 150), (121, 4, 12, 150)],
)
def test_labels_changing_during_merges_and_splits_keep_every_view_whole(
    seed, partitions, size, events
):
    r = random.Random(seed)
    inputs = list(scenario(seed, events=events, labels=True, size=size).inputs)
    for _ in range(30 if size == 5 else 25):
        inputs.insert(r.randrange(len(inputs) + 1), _label(r, r.randrange(size)))
    sim = Simulator(partitions=partitions, seed=seed, check_views=True)
    sim.run(inputs)
    for row in sim.persons().values():
        if not row["w"]:
            continue
        expected = {}
        for ident in row["m"]:
            entry = sim.labels.get(ident) if ident.startswith("wallet:") else None
            if entry:
                expected[ident] = sorted({c for cs in entry.values() for c in cs})
        assert row["w"]["labels"] == expected
