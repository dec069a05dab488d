"""What the output topics say beyond the profile's fields: VIP alerts (one per human
reaching a tier, however identity moves it), the cause a change names, and its time.
The fold of profile.changes against the stored profiles: test_profiles.py; a consumer
keyed by identifier: test_change_consumers.py."""

from __future__ import annotations

import json

import pytest

from stream.core.messages import person_of
from stream.core.partitioner import partition_for
from stream.core.profile import FLOOR_WAIT_MS
from stream.core.rules import DEFAULT, Rules
from stream.sim import Input, Simulator

NOW = 1_762_074_000_000  # 2025-11-02


def wallet(i: int) -> str:
    return f"0x{0xABC00000 + i:040x}"


def connect(n: int, device: str, address: str) -> Input:
    event = {"type": "track", "event": "Wallet Connected", "messageId": f"c{n}",
             "anonymousId": device, "timestamp": "2025-11-02T09:00:00Z",
             "properties": {"address": address, "chainId": 1}}  # fmt: skip
    return Input("web.events", json.dumps(event).encode())


def holding(address: str, eth: int, block: int = 100) -> Input:
    snapshot = {
        "wallet": address,
        "chain_id": 1,
        "token": "native",
        "balance": str(eth * 10**18),
        "block_number": block,
        "observed_at": "2025-11-02T09:00:00Z",
    }
    return Input("chain.holdings", json.dumps(snapshot).encode(), key=address)


PRICE = Input(
    "prices",
    json.dumps(
        {
            "chain_id": 1,
            "token": "native",
            "symbol": "ETH",
            "decimals": 18,
            "price_usd": 3400.0,
            "timestamp": "2025-11-01T00:00:00Z",
        }
    ).encode(),
    key="1:native",
)


def tiers_alerted(sim: Simulator) -> list[tuple[str, str]]:
    return [(a.person_id, a.details["tier"]) for a in sim.outputs.alerts]


def test_a_vip_absorbed_by_a_new_device_is_not_alerted_again():
    # the human reaches gold ($680k) on devA; a new device with a smaller person id then
    # connects the same wallet: the survivor starts from no tier, but the VIP desk
    # already knows this human is gold
    new = next(
        d
        for d in (f"dev{i}" for i in range(1000))
        if person_of("anon:" + d) < person_of("anon:devA")
    )
    sim = Simulator(partitions=3, seed=1, inject_probability=0.0)
    sim.run([PRICE, Input("tick", now=NOW), connect(1, "devA", wallet(1)), holding(wallet(1), 200)])
    assert tiers_alerted(sim) == [(sim.person_of("anon:devA"), "gold")]
    sim.run([connect(2, new, wallet(1))])
    assert sim.person_of("anon:devA") == person_of("anon:" + new)  # absorbed by the new one
    assert tiers_alerted(sim) == [(person_of("anon:devA"), "gold")]
    # reaching a higher tier after the merge is news
    sim.run([holding(wallet(1), 400, block=101)])
    assert tiers_alerted(sim)[1:] == [(person_of("anon:" + new), "whale")]


@pytest.mark.parametrize(("seed", "inject"), [(1, 0.0), *((s, 0.5) for s in range(10, 22))])
def test_two_vips_glued_and_split_again_are_alerted_once_each(seed, inject):
    # with injected delays, fragments reach a person after it was split, and go on
    # to where they were split to (a SplitIn that must carry the tier too)
    rules = Rules(max_joins={"anon": 2})
    sim = Simulator(partitions=3, seed=seed, inject_probability=inject, rules=rules)
    sim.run(
        [PRICE, Input("tick", now=NOW)]
        + [connect(1, "devA", wallet(1)), holding(wallet(1), 200)]
        + [connect(2, "devB", wallet(2)), holding(wallet(2), 200)]
        + [connect(10 + n, "kiosk", wallet(n)) for n in (1, 2)]  # glued: $1.36M, a whale
        + [connect(13, "kiosk", wallet(3))]  # the kiosk is a hub: the merges are undone
    )
    assert sim.person_of("anon:devA") != sim.person_of("anon:devB")
    alerted = tiers_alerted(sim)
    tiers = [tier for _, tier in alerted]
    # each human is announced (alone, or in the glued whale if it was shown), and no
    # human twice for a tier: not again for the part split off the glued person
    assert len(alerted) >= 2, alerted
    assert tiers.count("gold") <= 2 and tiers.count("whale") <= 1, alerted
    assert len(alerted) == len(set(alerted)), alerted


def label(address: str, category: str) -> Input:
    value = {
        "chain_id": 1,
        "address": address,
        "updated_at": "2025-11-02T10:00:00Z",
        "labels": [{"label": "Fund", "category": category}],
    }
    return Input("labels", json.dumps(value).encode(), key=f"1:{address}")


def test_a_change_made_by_a_wallet_label_says_so():
    sim = Simulator(partitions=3, seed=1, inject_probability=0.0)
    sim.run([PRICE, Input("tick", now=NOW), connect(1, "devA", wallet(1))])
    sim.run([label(wallet(1), "fund")])
    last = sim.outputs.profile_changes[-1]
    assert set(last.changes) == {"labels"}, last
    assert (last.cause.kind, last.cause.events) == ("events", 0)  # v1 has no "label" kind


def test_a_change_before_any_tick_is_dated_by_its_events():
    # a replay without ticks: a person known only by a holdings snapshot has no
    # activity time, and its change was dated 0 (1970)
    sim = Simulator(partitions=2, seed=1, inject_probability=0.0)
    sim.run([PRICE, holding(wallet(5), 1)])
    (change,) = [
        c for c in sim.outputs.profile_changes if c.person_id == person_of(f"wallet:{wallet(5)}")
    ]
    assert change.at > 0


def test_a_revaluation_before_any_tick_is_dated_like_the_change_before_it():
    # a replay without ticks: a wallet known only by a holdings snapshot, its token's
    # first price coming after it; the revaluation made it gold, and its change, its
    # segment entry and its VIP alert were dated 0 (1970), after a change dated 2025
    sim = Simulator(partitions=2, seed=1, inject_probability=0.0)
    sim.run([holding(wallet(5), 200)])
    sim.run([PRICE])
    person = person_of(f"wallet:{wallet(5)}")
    first, second = [c for c in sim.outputs.profile_changes if c.person_id == person]
    assert second.cause.kind == "revaluation" and "vip_tier" in second.changes
    assert first.at > 0
    assert second.at == first.at
    (segment,) = sim.outputs.segments
    assert (segment.segment, segment.at) == ("vip:gold", first.at)
    (alert,) = sim.outputs.alerts
    assert alert.at == first.at


def absorbed_before_its_price(sim: Simulator) -> tuple[str, bytes]:
    """A gold VIP (devA) absorbed by a new device whose profile partition has not had
    the price yet: the new person's id, and the price record held back from it."""
    new = next(
        d
        for d in (f"dev{i}" for i in range(1000))
        if person_of("anon:" + d) < person_of("anon:devA")
        and partition_for(person_of("anon:" + d), 3) != partition_for(person_of("anon:devA"), 3)
    )
    survivor = person_of("anon:" + new)
    sim.feed(PRICE)
    late = sim.channels[("prices", "profile", partition_for(survivor, 3))].popleft()
    sim.run([Input("tick", now=NOW), connect(1, "devA", wallet(1)), holding(wallet(1), 200)])
    assert tiers_alerted(sim) == [(sim.person_of("anon:devA"), "gold")]
    sim.run([connect(2, new, wallet(1))])
    assert sim.person_of("anon:devA") == survivor
    shown = sim.persons()[survivor]["w"]
    assert shown["vip_tier"] is None and shown["unpriced_tokens"] == ["1:native"]
    return survivor, late


def test_a_vip_absorbed_where_its_price_has_not_arrived_yet_is_not_alerted_again():
    # a price reaches every profile partition, one after another: the survivor's came
    # after the merge. Its first publish showed no tier, which ended the merge's floor,
    # and the price then made it gold again: announced twice (6 of 300 shuffled runs)
    sim = Simulator(partitions=3, seed=1, inject_probability=0.0)
    survivor, late = absorbed_before_its_price(sim)
    sim.channels[("prices", "profile", partition_for(survivor, 3))].append(late)  # it comes
    sim.run([])
    assert sim.persons()[survivor]["w"]["vip_tier"] == "gold"
    assert tiers_alerted(sim) == [(person_of("anon:devA"), "gold")]  # not again
    # and a tier above the absorbed one's is news
    sim.run([holding(wallet(1), 400, block=101)])
    assert tiers_alerted(sim)[1:] == [(survivor, "whale")]


@pytest.mark.parametrize("cooldown", [0, 24])
def test_the_floor_kept_for_a_price_lasts_five_minutes_of_the_partitions_clock(cooldown):
    # a token that is never priced must not silence a person's alerts for good (the
    # floor alone: without the cooldown, which now keeps the survivor from re-paging)
    rules = Rules(vip_alert_cooldown_hours=cooldown)
    sim = Simulator(partitions=3, seed=1, inject_probability=0.0, rules=rules)
    survivor, late = absorbed_before_its_price(sim)
    sim.run([Input("tick", now=NOW + FLOOR_WAIT_MS + 60_000)])
    sim.channels[("prices", "profile", partition_for(survivor, 3))].append(late)
    sim.run([])
    again = [(survivor, "gold")] if cooldown == 0 else []
    assert tiers_alerted(sim) == [(person_of("anon:devA"), "gold"), *again]


def test_a_vip_absorbed_by_a_new_device_is_announced_once_however_deliveries_interleave():
    # shuffled deliveries: the price or the first tick can reach the survivor's
    # partition after the merge (a floor kept before any tick waited from 1970 and
    # ended at the tick: announced twice in 1 of 400 runs)
    new = next(
        d
        for d in (f"dev{i}" for i in range(1000))
        if person_of("anon:" + d) < person_of("anon:devA")
    )
    twice = []
    for seed in range(300):
        sim = Simulator(partitions=3, seed=seed, inject_probability=0.9)
        gold = [connect(1, "devA", wallet(1)), holding(wallet(1), 200)]
        sim.run([PRICE, Input("tick", now=NOW), *gold, connect(2, new, wallet(1))])
        if len(tiers_alerted(sim)) != 1:
            twice.append((seed, tiers_alerted(sim)))
    assert twice == []


# --- the VIP alert cooldown (rules: vip_alert_cooldown_hours) ---
HOUR = 3_600_000


def price(usd: float) -> Input:
    quote = {"chain_id": 1, "token": "native", "symbol": "ETH", "decimals": 18,
             "price_usd": usd, "timestamp": "2025-11-01T00:00:00Z"}  # fmt: skip
    return Input("prices", json.dumps(quote).encode(), key="1:native")


def flap(start: int, times: int, low: float = 2000.0, high: float = 3400.0) -> list[Input]:
    """ETH down to ``low`` and up to ``high`` again ``times`` times, an hour apart (a
    changed price revalues its holders at the next tick)."""
    out = []
    for k in range(times):
        at = start + 2 * k * HOUR
        out += [price(low), Input("tick", now=at), price(high), Input("tick", now=at + HOUR)]
    return out


def gold_near_its_threshold(rules: Rules = DEFAULT) -> tuple[Simulator, str]:
    """40 ETH at $3,400 ($136k): gold, which $2,000 ETH ($80k) takes back to silver."""
    sim = Simulator(partitions=3, seed=1, inject_probability=0.0, rules=rules)
    sim.run([PRICE, Input("tick", now=NOW), connect(1, "devA", wallet(1)), holding(wallet(1), 40)])
    person = sim.person_of("anon:devA")
    assert tiers_alerted(sim) == [(person, "gold")]
    return sim, person


def gold_entries(sim: Simulator, person: str) -> list[str]:
    return [
        s.action for s in sim.outputs.segments if s.person_id == person and s.segment == "vip:gold"
    ]


def test_a_net_worth_flapping_across_a_threshold_is_alerted_once_within_the_cooldown():
    # prices move with ticks: a whale near a threshold paged the VIP desk at each entry
    sim, person = gold_near_its_threshold()
    sim.run(flap(NOW + HOUR, 5))
    assert sim.persons()[person]["w"]["vip_tier"] == "gold"
    assert tiers_alerted(sim) == [(person, "gold")]  # once
    # every entry and exit is still a segment change (state, not a page)
    assert gold_entries(sim, person) == ["enter"] + ["exit", "enter"] * 5
    assert sim.profile.stats["vip_alerts_suppressed"] == 5


def test_a_tier_reached_again_after_the_cooldown_is_alerted_again():
    sim, person = gold_near_its_threshold()
    sim.run(flap(NOW + HOUR, 2))
    assert len(tiers_alerted(sim)) == 1
    sim.run(flap(NOW + 24 * HOUR, 1))  # back in gold 25 h after the alert
    assert tiers_alerted(sim) == [(person, "gold")] * 2
    # and the cooldown runs from that alert
    sim.run(flap(NOW + 30 * HOUR, 2))
    assert tiers_alerted(sim) == [(person, "gold")] * 2


def test_a_higher_tier_within_the_cooldown_is_alerted_at_once_and_then_cools_down():
    sim, person = gold_near_its_threshold()
    sim.run([price(30_000.0), Input("tick", now=NOW + HOUR)])  # $1.2M: whale
    assert tiers_alerted(sim) == [(person, "gold"), (person, "whale")]
    # whale and gold back and forth: nothing new within the cooldown of the whale alert
    sim.run(flap(NOW + 2 * HOUR, 3, low=3400.0, high=30_000.0))
    sim.run(flap(NOW + 8 * HOUR, 2, low=2000.0, high=3400.0))
    assert tiers_alerted(sim) == [(person, "gold"), (person, "whale")]


def test_a_cooldown_of_zero_alerts_every_entry_as_before():
    sim, person = gold_near_its_threshold(Rules(vip_alert_cooldown_hours=0))
    sim.run(flap(NOW + HOUR, 3))
    assert tiers_alerted(sim) == [(person, "gold")] * 4
    assert gold_entries(sim, person) == ["enter"] + ["exit", "enter"] * 3
    assert sim.profile.stats["vip_alerts_suppressed"] == 0


def test_a_row_from_before_the_cooldown_counts_as_never_alerted():
    sim, person = gold_near_its_threshold()
    for (stage, _), state in sim.states.items():
        row = state.get("p:" + person) if stage == "profile" else None
        if row is not None:
            del row["va"]  # what a row written before the cooldown holds
            state.put("p:" + person, row)
            state.commit()
    sim.run(flap(NOW + HOUR, 2))
    assert tiers_alerted(sim) == [(person, "gold")] * 2  # the first entry since: alerted


def test_a_vip_paged_and_absorbed_is_not_paged_again_within_the_cooldown():
    # devA is paged for gold, falls to silver, and is absorbed by a new device: the
    # merge's floor is silver (what devA showed), so gold again was paged again
    new = next(
        d
        for d in (f"dev{i}" for i in range(1000))
        if person_of("anon:" + d) < person_of("anon:devA")
    )
    survivor = person_of("anon:" + new)
    sim, person = gold_near_its_threshold()
    sim.run([price(2000.0), Input("tick", now=NOW + HOUR)])
    assert sim.persons()[person]["w"]["vip_tier"] == "silver"
    sim.run([connect(2, new, wallet(1))])
    assert sim.person_of("anon:devA") == survivor
    sim.run([price(3400.0), Input("tick", now=NOW + 2 * HOUR)])
    assert sim.persons()[survivor]["w"]["vip_tier"] == "gold"
    assert tiers_alerted(sim) == [(person, "gold")]  # not again, under the survivor's id
    assert sim.profile.stats["vip_alerts_suppressed"] == 1
    # after the cooldown of devA's alert, the survivor's entry is news
    sim.run(flap(NOW + 25 * HOUR, 1))
    assert tiers_alerted(sim) == [(person, "gold"), (survivor, "gold")]
