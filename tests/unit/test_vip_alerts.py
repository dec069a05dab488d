"""A VIP alert says what reached the tier, and the rules keep tiers reachable."""

from __future__ import annotations

import pytest

from stream.core.aggregate import Aggregator
from stream.core.profile import ProfileStage
from stream.core.rules import DEFAULT, Rules, RulesError, VipTier
from stream.core.state import Collected


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
