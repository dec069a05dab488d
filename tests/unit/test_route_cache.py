"""The route stage's cache of linked and refused pairs, across a version change."""

from __future__ import annotations

from stream import topics
from stream.core.facts import Fact
from stream.core.messages import Assign
from stream.core.route import ROW_VERSION, RouteStage
from stream.core.rules import DEFAULT, Compiled
from stream.core.state import Collected, MemoryState

DEVICE, WALLET, OTHER = "anon:d1", "wallet:0x" + "ab" * 20, "wallet:0x" + "cd" * 20


def sign_in(n: int, wallet: str) -> Fact:
    return Fact(f"m{n}", DEVICE, "siwe", 1_790_000_000_000, "web.events", links=((wallet, "siwe"),))


def run(stage: RouteStage, state: MemoryState, message) -> Collected:
    out = Collected()
    stage.process(state, [message], out)
    state.commit()
    return out


def test_a_row_from_before_the_version_has_its_refusals_decided_again_but_not_its_links():
    """Before ROW_VERSION the link stage kept no record of the refusals the route stage
    cached, so it could never tell it to forget one (a person split by a hub stayed
    split): an older row's refusals go to the link stage again, its known pairs do not."""
    state = MemoryState()
    state.put("i:" + DEVICE, {"p": "p" + "0" * 20, "s": 3, "k": [OTHER], "r": [WALLET]})
    state.commit()
    stage = RouteStage(Compiled(DEFAULT))

    assert [s for s, _, _ in run(stage, state, sign_in(1, WALLET)).internal_messages] == [
        topics.LINK
    ]
    assert [s for s, _, _ in run(stage, state, sign_in(2, OTHER)).internal_messages] == [
        topics.PROFILE
    ]
    # the link stage refuses it again: cached, in a row of this version, and trusted
    run(stage, state, Assign(DEVICE, "p" + "0" * 20, 4, refused=[WALLET]))
    row = state.get("i:" + DEVICE)
    assert (row["r"], row["v"], row["k"]) == ([WALLET], ROW_VERSION, [OTHER])
    assert [s for s, _, _ in run(stage, state, sign_in(3, WALLET)).internal_messages] == [
        topics.PROFILE
    ]


def test_forget_drops_a_pair_from_both_lists_and_creates_no_row():
    state = MemoryState()
    stage = RouteStage(Compiled(DEFAULT))
    run(stage, state, Assign(DEVICE, "p" + "1" * 20, 1, known=[OTHER], refused=[WALLET]))
    run(stage, state, Assign(DEVICE, "p" + "1" * 20, 2, forget=[OTHER, WALLET]))
    row = state.get("i:" + DEVICE)
    assert (row["k"], row["r"], row["p"]) == ([], [], "p" + "1" * 20)
    run(stage, state, Assign("anon:never-seen", "p" + "2" * 20, 2, forget=[WALLET]))
    assert state.get("i:anon:never-seen") is None
