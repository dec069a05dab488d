"""Merges at the profile stage: what an absorbed person sends on, and to whom."""

from __future__ import annotations

from stream import topics
from stream.core.aggregate import Aggregator
from stream.core.facts import Fact
from stream.core.messages import Absorb, Event, Members, MergeIn
from stream.core.profile import ProfileStage
from stream.core.rules import DEFAULT
from stream.core.state import Collected, MemoryState

TS = 1_790_000_000_000
DEVICE, WALLET = "anon:device-1", "wallet:0x" + "51ce" * 10


def page(n: int, ident: str) -> Fact:
    return Fact(f"e{n}", ident, "page", TS + n, "web.events")


def run(stage: ProfileStage, state: MemoryState, *messages) -> Collected:
    out = Collected()
    stage.process(state, list(messages), out)
    state.commit()
    return out


def test_an_absorbed_person_without_facts_sends_nothing_and_forwards_what_comes_later():
    stage, state = ProfileStage(Aggregator(DEFAULT)), MemoryState()
    survivor, absorbed = "p-survivor", "p-absorbed"
    out = run(
        stage,
        state,
        Event(survivor, 1, page(1, DEVICE)),
        Members(survivor, 1, [DEVICE, WALLET]),
        Absorb(absorbed, survivor, 1),
    )
    assert out.of(topics.PROFILE) == []  # no MergeIn: it holds nothing
    [change] = out.of(topics.PROFILE_CHANGES)
    assert change.person_id == survivor
    assert change.changes["identifiers"].new == {"anon": [DEVICE], "wallet": [WALLET]}
    assert stage.stats["merges"] == 1

    # an event sent to the absorbed person before the route stage knew goes on
    late = Event(absorbed, 0, page(2, WALLET))
    out = run(stage, state, late)
    assert out.of(topics.PROFILE) == [Event(survivor, 0, late.fact)]
    assert out.of(topics.PROFILE_CHANGES) == []
    out = run(stage, state, *out.of(topics.PROFILE))
    [change] = out.of(topics.PROFILE_CHANGES)
    assert change.changes["events"].new == 2

    assert run(stage, state, Absorb(absorbed, survivor, 1)).internal_messages == []  # repeated


def test_an_absorbed_person_with_facts_sends_them_to_the_survivor_once():
    stage, state = ProfileStage(Aggregator(DEFAULT)), MemoryState()
    survivor, absorbed = "p-survivor", "p-absorbed"
    run(stage, state, Event(survivor, 0, page(1, DEVICE)), Event(absorbed, 0, page(2, WALLET)))
    out = run(stage, state, Absorb(absorbed, survivor, 1))
    [merge] = out.of(topics.PROFILE)
    assert isinstance(merge, MergeIn)
    assert (merge.source, merge.target, set(merge.fragments)) == (absorbed, survivor, {WALLET})
    [gone] = out.of(topics.PROFILE_CHANGES)
    assert (gone.person_id, gone.merged_into) == (absorbed, survivor)

    changes = [c for _ in range(2) for c in run(stage, state, merge).of(topics.PROFILE_CHANGES)]
    [change] = changes  # the repeated MergeIn changes nothing
    assert change.changes["events"].new == 2
    assert change.cause.kind == "merge" and change.cause.persons == [absorbed]


def test_a_merge_that_brings_no_fragments_changes_nothing_shown_and_counts_once():
    stage, state = ProfileStage(Aggregator(DEFAULT)), MemoryState()
    survivor, absorbed = "p-survivor", "p-absorbed"
    run(stage, state, Event(survivor, 0, page(1, DEVICE)))
    run(stage, state, Members(absorbed, 1, [WALLET]))  # a row, but no facts
    [merge] = run(stage, state, Absorb(absorbed, survivor, 2)).of(topics.PROFILE)
    assert (merge.fragments, merge.absorbed) == ({}, [absorbed])
    assert run(stage, state, merge).of(topics.PROFILE_CHANGES) == []
    assert state.get("p:" + survivor)["ab"] == [absorbed]  # a repeat is a no-op
    assert run(stage, state, merge).internal_messages == []
