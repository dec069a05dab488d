"""A VIP alert says what reached the tier, the rules keep tiers reachable, and a tier
reached again within the cooldown is not paged again."""

from __future__ import annotations

import pytest

from stream import topics
from stream.core.aggregate import Aggregator
from stream.core.facts import Fact
from stream.core.messages import Absorb, Event, MergeIn, Split, SplitIn
from stream.core.profile import ProfileStage
from stream.core.rules import DEFAULT, Rules, RulesError, VipTier, load
from stream.core.state import Collected, MemoryState


def alert_for(view: dict):
    emit = Collected()
    ProfileStage(Aggregator(DEFAULT))._segments("p1", 3, {}, view, 1_762_074_000_000, emit)
    (alert,) = [r for _, _, r in emit.records if hasattr(r, "alert_id")]
    return alert


@pytest.mark.parametrize(
    ("values", "words", "metric"),
    [
        ({"net_worth_usd": 150_000.0}, "net worth $150,000 ≥ $100,000", "net_worth_usd"),
        ({"volume_usd": 2_500_000.0}, "volume $2,500,000 ≥ $1,000,000", "volume_usd"),
        ({"fees_usd": 6_000.0}, "fees $6,000 ≥ $5,000", "fees_usd"),
    ],
)
def test_a_vip_alert_names_the_threshold_that_reached_the_tier(values, words, metric):
    # it always said "net worth $X", also for a person whose volume or fees set the tier
    view = {"vip_tier": "gold", "net_worth_usd": 0.0, "volume_usd": 0.0, "fees_usd": 0.0}
    alert = alert_for({**view, **values})
    assert alert.message == f"person reached VIP tier gold ({words})"
    assert alert.details["metric"] == metric
    assert alert.details["value"] == values[metric]


def test_tiers_listed_from_the_lowest_are_refused():
    # the first tier met is a person's tier: silver first hid gold and whale for ever
    low_first = [
        VipTier("silver", net_worth_usd=10_000),
        VipTier("gold", net_worth_usd=100_000),
    ]
    with pytest.raises(RulesError, match="'gold' has net_worth_usd 100000 above 'silver'"):
        Rules(vip=low_first)
    # a tier may rest on a threshold the one above it does not have
    Rules(vip=[VipTier("whale", net_worth_usd=1e6), VipTier("builder", fees_usd=500)])


def test_the_vip_alert_cooldown_is_a_number_of_hours_not_below_zero(tmp_path):
    assert DEFAULT.vip_alert_cooldown_hours == 24
    assert Rules(vip_alert_cooldown_hours=0).vip_alert_cooldown_hours == 0  # off
    assert Rules(vip_alert_cooldown_hours=0.5).vip_alert_cooldown_hours == 0.5
    for bad in (-1, float("nan"), float("inf"), True, "24"):
        with pytest.raises(RulesError, match="vip_alert_cooldown_hours"):
            Rules(vip_alert_cooldown_hours=bad)
    for text in ('{"vip_alert_cooldown_hours": -1}', '{"vip_alert_cooldown_hours": "a day"}'):
        path = tmp_path / "rules.json"
        path.write_text(text)
        with pytest.raises(RulesError, match="vip_alert_cooldown_hours"):
            load(path)
    path.write_text('{"vip_alert_cooldown_hours": 6}')
    assert load(path).vip_alert_cooldown_hours == 6


HOUR = 3_600_000
AT = 1_762_074_000_000


def test_a_merge_keeps_the_latest_alert_of_each_tier_that_no_higher_later_one_covers():
    stage = ProfileStage(Aggregator(DEFAULT))
    combined = stage._alerted(
        {"gold": AT, "silver": AT + 2 * HOUR}, {"gold": AT + HOUR, "whale": AT - HOUR}
    )
    # whale is older than gold, silver is later than gold: each still silences something
    assert combined == {"whale": AT - HOUR, "gold": AT + HOUR, "silver": AT + 2 * HOUR}
    assert stage._alerted({"silver": AT}, {"gold": AT}) == {"gold": AT}  # covered
    assert stage._alerted(None, {"bronze": AT}) == {}  # a tier the rules no longer have
    assert stage._alerted({"gold": AT}, {"gold": AT}) == stage._alerted({"gold": AT})


def suppressed(stage: ProfileStage, row: dict, tier: str, at: int) -> bool:
    emit = Collected()
    view = {"vip_tier": tier, "net_worth_usd": 0.0}
    stage._segments("p1", 3, {}, view, at, emit, row=row)
    return not [r for _, _, r in emit.records if hasattr(r, "alert_id")]


def test_an_alert_is_suppressed_for_a_tier_as_high_or_lower_within_the_cooldown():
    stage = ProfileStage(Aggregator(Rules(vip_alert_cooldown_hours=24)))
    row: dict = {}  # a row from before the cooldown: never alerted
    assert not suppressed(stage, row, "gold", AT)
    assert row["va"] == {"gold": AT}
    assert suppressed(stage, row, "gold", AT + 24 * HOUR - 1)
    assert suppressed(stage, row, "silver", AT + HOUR)
    assert stage.stats["vip_alerts_suppressed"] == 2
    assert row["va"] == {"gold": AT}  # a suppressed alert does not extend the cooldown
    assert not suppressed(stage, row, "whale", AT + HOUR)  # higher: at once
    assert row["va"] == {"whale": AT + HOUR}  # it covers gold's
    assert suppressed(stage, row, "gold", AT + 24 * HOUR)  # the whale's cooldown
    assert not suppressed(stage, row, "gold", AT + 25 * HOUR)
    assert row["va"] == {"gold": AT + 25 * HOUR}  # the whale's has cooled down: dropped


def test_a_cooldown_of_zero_suppresses_nothing():
    stage = ProfileStage(Aggregator(Rules(vip_alert_cooldown_hours=0)))
    row: dict = {}
    assert not any(suppressed(stage, row, "gold", AT + n) for n in range(3))
    assert stage.stats["vip_alerts_suppressed"] == 0


def test_the_alerts_a_person_was_sent_go_with_its_facts_to_a_survivor_and_a_split_off_part():
    # like the floor (vt): what the VIP desk was paged for goes where the person goes
    stage, state = ProfileStage(Aggregator(DEFAULT)), MemoryState()
    device, wallet = "anon:device-1", "wallet:0x" + "51ce" * 10
    facts = [Fact(f"e{n}", i, "page", AT + n, "web.events") for n, i in enumerate((device, wallet))]
    stage.process(state, [Event("p-vip", 0, f) for f in facts], Collected())
    row = state.get("p:p-vip")
    row["va"] = {"gold": AT}
    state.put("p:p-vip", row)
    state.commit()

    out = Collected()
    stage.process(state, [Split("p-vip", 1, {wallet: "p-part"})], out)
    [split_in] = out.of(topics.PROFILE)
    assert isinstance(split_in, SplitIn) and split_in.alerted == {"gold": AT}
    stage.process(state, [split_in], Collected())
    assert state.get("p:p-part")["va"] == {"gold": AT}
    assert state.get("p:p-vip")["va"] == {"gold": AT}  # the paged person keeps its own

    out = Collected()
    stage.process(state, [Absorb("p-vip", "p-new", 2)], out)
    [merge] = out.of(topics.PROFILE)
    assert isinstance(merge, MergeIn) and merge.alerted == {"gold": AT}
    assert "va" not in state.get("p:p-vip")  # a tombstone: sent on
    stage.process(state, [merge], Collected())
    assert state.get("p:p-new")["va"] == {"gold": AT}
