"""The synthetic population: reproducible, valid, realistic, with its traps; and scoring."""

from __future__ import annotations

import itertools
import json
from collections import Counter

import msgspec
import pytest

from stream.core.ingest import Ingest
from stream.core.rules import DEFAULT, Compiled
from stream.loadgen import UNBATCHED
from stream.population import DAY, Population, is_link_event, score
from stream.replay import person_lines, replay
from stream.sim import Input

_encode = msgspec.json.encode


@pytest.fixture(scope="module")
def population() -> Population:
    return Population(400, seed=3)


@pytest.fixture(scope="module")
def events(population) -> list[tuple[str, str, dict]]:
    return list(population.events(12_000))


def test_the_same_seed_gives_the_same_stream_and_another_seed_another():
    def first(seed: int) -> list:
        return list(itertools.islice(Population(200, seed=seed).events(2000), 2000))

    assert first(5) == first(5)
    assert first(5) != first(6)
    assert Population(200, seed=5).truth() == Population(200, seed=5).truth()


def test_a_negative_seed_is_refused():
    # random.Random seeds with the absolute value: seed -5 gave seed 5's population
    with pytest.raises(ValueError, match="seed"):
        Population(10, seed=-5)


def test_every_event_passes_the_contract(events):
    ingest = Ingest(Compiled(DEFAULT))
    for suffix, _key, payload in events:
        if suffix in ("prices", "labels"):
            continue
        out = ingest.record(suffix, _encode(payload))
        assert not out.rejections, (suffix, payload, out.rejections)


def test_every_topic_and_kind_of_traffic_is_there(events):
    topics = Counter(s for s, _, _ in events)
    for suffix in (
        "web.events",
        "chain.events",
        "chain.holdings",
        "support",
        "forms",
        "socials",
        "prices",
        "labels",
    ):
        assert topics[suffix] > 0, suffix
    web = [p for s, _, p in events if s == "web.events"]
    links = [
        p
        for p in web
        if p.get("type") == "identify" or p.get("event", "").startswith(("SIWE", "Wallet"))
    ]
    assert 0.01 < len(links) / len(events) < 0.25, len(links) / len(events)
    sources = {
        p["context"]["campaign"]["source"] for p in web if "campaign" in p.get("context", {})
    }
    assert len(sources) >= 6


def link_share(persons: int, events: int) -> float:
    stream = [(s, p) for s, _, p in Population(persons, seed=4).events(events)]
    activity = [(s, p) for s, p in stream if s not in ("prices", "labels")]
    return sum(is_link_event(s, p) for s, p in activity) / len(activity)


def test_link_events_are_a_few_percent_once_users_return():
    # onboarding ties every identifier to its person (a sign-in per wallet and device),
    # so the share of link events falls as persons come back: a few percent at 100
    # events per person (the benchmark's mix), a quarter while everyone is new
    assert 0.02 < link_share(100, 10_000) < 0.1
    assert link_share(400, 6_000) > 0.15
    # the demo's 12 events a person: as the README and the module doc say
    assert 0.25 < link_share(1000, 12_000) < 0.37


def test_a_returning_persons_traffic_has_a_few_percent_of_link_events():
    pop = Population(100, seed=4)
    stream = [(s, p) for s, _, p in pop.events(30_000) if s not in ("prices", "labels")]
    later = stream[len(stream) // 2 :]  # every onboarding is long past
    assert 0.025 < sum(is_link_event(s, p) for s, p in later) / len(later) < 0.05


def test_spread_arrivals_keep_the_mix_steady_and_onboard_everyone_before_their_activity():
    pop = Population(200, seed=5)
    stream = [(s, k, p) for s, k, p in pop.events(20_000, spread=True) if s not in UNBATCHED]
    tenths = [stream[i * len(stream) // 10 : (i + 1) * len(stream) // 10] for i in range(10)]
    links = [sum(is_link_event(s, p) for s, _, p in part) for part in tenths]
    # the default stream opens with every onboarding; spread, each of the first nine
    # tenths holds about a ninth of them
    assert max(links[:9]) < 2 * min(links[:9])
    default = [(s, p) for s, _, p in Population(200, seed=5).events(20_000)]
    assert sum(is_link_event(s, p) for s, p in default[:2000]) > 2 * links[0]
    # every person arrives, in the order of their first visit
    owner = pop.truth()["owner"]
    first: dict[int, int] = {}
    for n, (_, _, payload) in enumerate(stream):
        ident = payload.get("anonymousId") or ""
        person = owner.get(f"anon:{ident}")
        if person is not None:
            first.setdefault(person, n)
    assert len(first) == 200
    order = [first[p.index] for p in sorted(pop.persons, key=lambda p: p.joined)]
    assert order == sorted(order)  # arrivals in order of their first visit


END = 1_795_000_000_000


def fact_times(population: Population, count: int, spread: bool) -> list[int]:
    """The event times of a population's facts, in order."""
    ingest = Ingest(Compiled(DEFAULT))
    return sorted(
        fact.ts
        for suffix, _key, payload in population.events(count, spread=spread)
        if suffix not in ("prices", "labels")
        for fact in ingest.record(suffix, _encode(payload)).facts
    )


@pytest.mark.parametrize("spread", [False, True])
def test_the_events_fill_the_window_up_to_its_end(spread):
    # the clock moves a step per event: with a step per visit the newest half to two
    # thirds of the window stayed empty, and a large population's every person looked
    # at risk
    times = fact_times(Population(300, seed=4, end=END), 30_000, spread)
    assert END - 2 * DAY < times[-1] <= END  # the newest are recent, none in the future
    assert END - 20 * DAY < times[len(times) // 2] < END - 8 * DAY
    assert 0.15 < sum(t > END - 7 * DAY for t in times) / len(times) < 0.5


@pytest.mark.parametrize(
    ("population", "count", "spread"),
    [
        (Population(1000, seed=4, end=END), 5000, True),  # first visits up to the end
        (Population(300, seed=3, end=END, days=3), 3000, False),  # joined near the end
    ],
)
def test_no_event_is_dated_after_the_end(population, count, spread):
    # a first visit's later devices sign in up to a day after it starts
    assert fact_times(population, count, spread)[-1] <= END


def test_a_stream_that_ends_with_an_onboarding_counts_that_person_as_emitted():
    # the onboarding's last event was yielded, but the person was recorded only when
    # the generator was asked for one more: a stream cut there left them unscored
    arrivals = sorted(Population(20, seed=7).persons, key=lambda p: p.joined)
    second = arrivals[1].devices[0]
    activity = [
        p for s, _, p in Population(20, seed=7).events(200) if s not in ("prices", "labels")
    ]
    boundary = next(n for n, p in enumerate(activity) if p.get("anonymousId") == second)
    pop = Population(20, seed=7)
    assert len(list(pop.events(boundary))) == boundary + 6
    assert pop.truth()["emitted"] == [arrivals[0].index]
    pop = Population(20, seed=7)
    list(pop.events(boundary - 1))
    assert pop.truth()["emitted"] == []


def test_populations_numbered_apart_share_no_identifier():
    a, b = Population(50, seed=1), Population(50, seed=1, first=1000)
    assert not set(a.truth()["owner"]) & set(b.truth()["owner"])
    assert set(b.truth()["owner"].values()) == set(range(1000, 1050))


def test_activity_is_skewed_like_zipf(population, events):
    owner = population.truth()["owner"]
    per_person = Counter(owner.get(f"anon:{k}") for s, k, _ in events if s == "web.events")
    per_person.pop(None, None)
    counts = sorted(per_person.values(), reverse=True)
    top = sum(counts[: max(1, len(counts) // 20)])
    assert top / sum(counts) > 0.2  # the busiest 5% make more than a fifth of the traffic


def test_the_traps_are_there(population, events):
    truth = population.truth()
    kiosk_users = {
        p["userId"]
        for s, k, p in events
        if s == "web.events" and k == population.kiosk and "userId" in p
    }
    kiosk_wallets = {
        p["properties"]["address"]
        for s, k, p in events
        if s == "web.events" and k == population.kiosk and "address" in p.get("properties", {})
    }
    assert len(kiosk_users) + len(kiosk_wallets) >= 3  # many persons on one device
    labelled = {p["address"] for s, _, p in events if s == "labels"}
    assert labelled == set(population.exchanges)
    assert f"anon:{population.kiosk}" in truth["shared"]
    assert {f"wallet:{w}" for w in population.exchanges} <= set(truth["shared"])


def test_truth_owns_every_personal_identifier(population):
    truth = population.truth()
    assert len({truth["owner"][i] for i in truth["owner"]}) == 400
    for person in population.persons:
        for ident in person.identifiers:
            assert truth["owner"][ident] == person.index


def test_every_identifier_c360_makes_of_the_events_is_in_the_truth():
    # the router every swap and many transfers go to became a person of its own that
    # the truth did not know (neither a person's nor shared)
    pop = Population(120, seed=3)
    inputs = [Input(s, json.dumps(p).encode(), key=k) for s, k, p in pop.events(1500)]
    truth = pop.truth()
    known = set(truth["owner"]) | set(truth["shared"])
    placed = {
        ident
        for line in person_lines(replay(inputs))
        for idents in line["identifiers"].values()
        for ident in idents
    }
    assert placed - known == set()


TRUTH = {
    "owner": {"a1": 1, "a2": 1, "b1": 2, "b2": 2, "c1": 3, "c2": 3, "c3": 3},
    "shared": ["kiosk"],
}


def test_a_perfect_answer_scores_one():
    assigned = {i: f"p{o}" for i, o in TRUTH["owner"].items()}
    q = score(TRUTH, assigned)
    assert (q["precision"], q["recall"]) == (1.0, 1.0)
    assert q["pairs_true"] == q["pairs_found"] == 1 + 1 + 3


def test_a_false_merge_costs_precision_and_a_split_costs_recall():
    merged = {i: ("pAB" if o in (1, 2) else "pC") for i, o in TRUTH["owner"].items()}
    q = score(TRUTH, merged)
    assert q["recall"] == 1.0
    assert q["precision"] == pytest.approx(5 / (6 + 3))  # 6 pairs found among a1 a2 b1 b2
    split = {i: (i if i == "c3" else f"p{o}") for i, o in TRUTH["owner"].items()}
    q = score(TRUTH, split)
    assert q["precision"] == 1.0
    assert q["recall"] == pytest.approx(3 / 5)
    c = sorted(i for i, o in TRUTH["owner"].items() if o == 3 and i != "c3")
    assert q["split"] == [{"c3": ["c3"], "p3": c}] and q["merged"] == []
    q = score(TRUTH, merged)
    assert q["split"] == []
    a_b = sorted(i for i, o in TRUTH["owner"].items() if o in (1, 2))
    assert q["merged"] == [{str(o): [i for i in a_b if TRUTH["owner"][i] == o] for o in (1, 2)}]


def test_shared_identifiers_are_left_out_of_the_pairs_and_reported_apart():
    assigned = {i: f"p{o}" for i, o in TRUTH["owner"].items()}
    with_kiosk_merged = {**assigned, "kiosk": "p1"}
    q = score(TRUTH, with_kiosk_merged)
    assert (q["precision"], q["recall"]) == (1.0, 1.0)
    assert q["shared_kept_apart"] == 0
    q = score(TRUTH, {**assigned, "kiosk": "p-kiosk"})
    assert q["shared_kept_apart"] == 1


def test_an_identifier_of_a_person_the_stream_carried_that_c360_did_not_place_costs_recall():
    truth = {**TRUTH, "emitted": [1, 2, 3]}
    assigned = {i: f"p{o}" for i, o in TRUTH["owner"].items() if i != "c3"}
    q = score(truth, assigned)
    assert (q["identifiers_scored"], q["unplaced"]) == (7, 1)
    assert q["precision"] == 1.0 and q["recall"] == pytest.approx(3 / 5)
    # a run that placed nothing, or one identifier per person, cannot score 1.0
    assert score(truth, {})["recall"] == 0.0
    one_each = {i: f"p{o}" for i, o in TRUTH["owner"].items() if i.endswith("1")}
    assert score(truth, one_each)["recall"] == 0.0
    # persons the stream did not carry (cut off by its length) are not expected
    q = score({**TRUTH, "emitted": [1, 2]}, {i: f"p{o}" for i, o in TRUTH["owner"].items()})
    assert (q["identifiers_scored"], q["unplaced"], q["recall"]) == (4, 0, 1.0)


def test_a_truth_written_before_emitted_existed_scores_what_c360_placed():
    assigned = {i: f"p{o}" for i, o in TRUTH["owner"].items() if i != "c3"}
    q = score(TRUTH, assigned)
    assert q["identifiers_scored"] == 6
    assert q["recall"] == 1.0


def test_shared_identifiers_c360_never_saw_are_not_reported_as_merged():
    q = score({**TRUTH, "emitted": [1]}, {"a1": "p1", "a2": "p1"})
    assert (q["shared_identifiers"], q["shared_kept_apart"]) == (0, 0)
