"""What the demo picks and prints: the example persons, the identity quality."""

from __future__ import annotations

from stream import demo
from stream.population import Population, score


def profile(wallets: int, tickets: int) -> dict:
    ids = {"anon": ["anon:d"], "wallet": [f"wallet:0x{n:040x}" for n in range(wallets)]}
    return {"person_id": "p", "identifiers": ids, "tickets_total": tickets}


def test_the_three_wallet_example_has_three_wallets(monkeypatch):
    # ≥ 3 picked the first with a ticket: a person with five wallets under the title
    # "Three wallets and a support history"
    people = sorted(Population(40, seed=7).persons, key=lambda p: -len(p.wallets))
    assert len(people[0].wallets) == 5  # a person with more comes first
    shown = {p.identifiers[0]: profile(len(p.wallets), 1) for p in people}
    monkeypatch.setattr(demo, "profile_of", lambda settings, ident: shown.get(ident))
    title, picked = demo.examples(None, people)[1]
    assert title.startswith("Three wallets") and len(picked["identifiers"]["wallet"]) == 3


def test_without_anyone_with_exactly_three_the_example_has_more(monkeypatch):
    people = [p for p in Population(40, seed=7).persons if len(p.wallets) != 3]
    shown = {p.identifiers[0]: profile(len(p.wallets), 1) for p in people}
    monkeypatch.setattr(demo, "profile_of", lambda settings, ident: shown.get(ident))
    picked = demo.examples(None, people)[1][1]
    assert len(picked["identifiers"]["wallet"]) > 3


def test_a_stream_that_carried_nobody_whole_prints_no_perfect_score():
    # precision and recall are 1.0 over no pair: the demo printed a perfect score
    population = Population(20, seed=7)
    list(population.events(3))  # part of the first onboarding
    lines = demo.quality_lines(score(population.truth(), {}))
    assert not any("1.0000" in line for line in lines)
    assert "nothing to score" in lines[0]


def test_the_quality_lines_give_the_figures():
    population = Population(20, seed=7)
    list(population.events(400))
    truth = population.truth()
    assigned = {i: f"p{o}" for i, o in truth["owner"].items()}
    lines = demo.quality_lines(score(truth, assigned))
    assert lines[0].startswith("precision 1.0000   recall 1.0000")
    assert "persons: 20 found / 20 true" in lines[0]


def test_the_vip_example_shows_the_highest_tier_any_of_them_reached(monkeypatch):
    # the first whale with any tier was shown: a silver VIP beside whales in the stream
    people = Population(40, seed=7).persons
    tiers = {0: "silver", 5: "whale", 9: "gold"}
    shown = {people[i].identifiers[0]: {"vip_tier": t} for i, t in tiers.items()}
    monkeypatch.setattr(demo, "profile_of", lambda settings, ident: shown.get(ident))
    assert demo.best_vip(None, people)["vip_tier"] == "whale"
    assert demo.best_vip(None, people[6:])["vip_tier"] == "gold"
    assert demo.best_vip(None, people[10:]) is None
