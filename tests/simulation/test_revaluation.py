"""USD figures follow the prices that reached the profile partition: a token's first
price at once, a changed or deleted price at the next tick, whatever happened in
between."""

from __future__ import annotations

import json

from stream.sim import Input, Simulator
from tests.simulation.profile_scenarios import forget, price_input

HOUR = 3_600_000
T0 = 1_788_048_000_000
TOKEN = "0x" + "a1" * 20


def wallet(i: int) -> str:
    return f"0x{0x5EED0000 + i:040x}"


def holding(address: str, balance: int, at: int) -> Input:
    event = {
        "wallet": address,
        "chain_id": 1,
        "token": TOKEN,
        "balance": str(balance),
        "block_number": 10,
        "observed_at": f"2026-08-30T{at // HOUR % 24:02d}:00:00Z",
    }
    return Input("chain.holdings", json.dumps(event).encode(), key=address)


def price(usd: float | None) -> Input:
    return price_input(TOKEN, usd, 18)


def worth(sim: Simulator, address: str) -> tuple[float, list[str]]:
    view = sim.persons()[sim.person_of("wallet:" + address)]["w"]
    return view["net_worth_usd"], view["unpriced_tokens"]


def test_a_holder_published_before_its_token_had_a_price_is_valued_when_the_price_comes():
    # A was published while the token had no price: the price's arrival at the
    # partition revalues it at once (no tick needed), and the next tick has nothing to do
    sim = Simulator(partitions=1, seed=0, check_views=True)
    a, b = wallet(1), wallet(2)
    sim.run([holding(a, 7 * 10**18, 1 * HOUR)])
    assert worth(sim, a) == (0.0, [f"1:{TOKEN}"])
    sim.run([price(2000.0)])
    assert worth(sim, a) == (14000.0, [])
    assert sim.profile.stats["revalued"] == 1
    sim.run([holding(b, 10**18, 2 * HOUR), Input("tick", now=T0 + 3 * HOUR)])
    assert worth(sim, b) == (2000.0, [])
    assert sim.profile.stats["revalued"] == 1  # the tick found every snapshot current


def test_a_price_change_revalues_the_holders_at_the_next_tick_only():
    # a feed may move a price every few seconds: holders are revalued once per tick
    sim = Simulator(partitions=1, seed=0, check_views=True)
    a = wallet(1)
    sim.run([price(2000.0), holding(a, 10**18, 1 * HOUR)])
    sim.run([price(2100.0), price(2200.0)])
    assert worth(sim, a) == (2000.0, [])
    sim.run([Input("tick", now=T0 + 2 * HOUR)])
    assert worth(sim, a) == (2200.0, [])
    assert sim.profile.stats["revalued"] == 1


def test_a_token_priced_before_anyone_held_it_costs_no_revaluation_at_the_next_tick():
    # its snapshot is taken when it is first valued, between ticks; nobody was shown
    # unpriced, so the tick has nothing to redo (every holder, at a deployment's first
    # tick, was a burst of thousands of publishes)
    sim = Simulator(partitions=1, seed=0, check_views=True)
    sim.run([price(2000.0)] + [holding(wallet(i), 10**18, 1 * HOUR) for i in range(5)])
    sim.run([Input("tick", now=T0 + 2 * HOUR)])
    assert sim.profile.stats["revalued"] == 0
    assert worth(sim, wallet(3)) == (2000.0, [])


def test_a_deleted_price_leaves_its_holders_unpriced_at_the_next_tick():
    sim = Simulator(partitions=1, seed=0, check_views=True)
    a = wallet(1)
    sim.run([price(2000.0), holding(a, 10**18, 1 * HOUR), Input("tick", now=T0 + 2 * HOUR)])
    assert worth(sim, a) == (2000.0, [])
    sim.run([price(None), Input("tick", now=T0 + 3 * HOUR)])
    assert worth(sim, a) == (0.0, [f"1:{TOKEN}"])
    sim.run([holding(wallet(2), 10**18, 4 * HOUR)])  # a new holder: not at the old price
    assert worth(sim, wallet(2)) == (0.0, [f"1:{TOKEN}"])


def test_an_older_quote_arriving_after_a_newer_one_is_not_applied():
    # a feed backfilling, or a second source, produces an older quote after a newer
    # one: the holders keep the newer price, at the tick too, and the table the API
    # values at holds it; a quote of the same time, or a newer one, applies as before
    sim = Simulator(partitions=3, seed=0, check_views=True)
    a = wallet(1)
    sim.run([price_input(TOKEN, 2000.0, 18, "2026-09-01T12:00:00Z"), holding(a, 10**18, HOUR)])
    sim.run([price_input(TOKEN, 1000.0, 18, "2026-09-01T11:59:59Z")])
    sim.run([Input("tick", now=T0 + 2 * HOUR)])
    assert worth(sim, a) == (2000.0, [])
    assert sim.prices[f"1:{TOKEN}"][0] == 2000.0
    sim.run([price_input(TOKEN, 2100.0, 18, "2026-09-01T12:00:00Z")])  # the same time
    sim.run([Input("tick", now=T0 + 3 * HOUR)])
    assert worth(sim, a) == (2100.0, [])
    sim.run([price(None), price_input(TOKEN, 900.0, 18, "2026-09-01T00:00:00Z")])
    sim.run([Input("tick", now=T0 + 4 * HOUR)])  # a deletion forgets the time held
    assert worth(sim, a) == (900.0, [])


def test_a_resend_brings_the_price_held_where_the_tokens_last_record_is_an_older_quote():
    # the prices topic is compacted: once an older quote came after the newer one, it
    # is the token's last record, and `c360 resend` produces it (what a profile state
    # rebuilt without its copies of the prices needs): the price held must come back
    sim = Simulator(partitions=3, seed=0, check_views=True)
    older = price_input(TOKEN, 1000.0, 18, "2026-09-01T11:00:00Z")
    sim.run([price_input(TOKEN, 2000.0, 18, "2026-09-01T12:00:00Z"), older])
    forget(sim, "profile", "pl:")  # rebuilt without its copies of the prices
    sim.run([older])  # c360 resend prices: the topic's last record of the token again
    sim.run([holding(wallet(3), 10**18, HOUR)])
    assert worth(sim, wallet(3)) == (2000.0, [])
