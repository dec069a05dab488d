"""The profile aggregate is a commutative monoid, and apply is a homomorphism into it.

- ``combine(empty, a) == a``; ``combine(a, b) == combine(b, a)``;
  ``combine(a, combine(b, c)) == combine(combine(a, b), c)``;
- folding any list of facts equals combining the folds of any split of it (so
  merging two persons equals having had all their facts in one person);
- a retract after its upsert restores the aggregate (inside the reorg window).

Equality is checked on the stored aggregate (through JSON, as stored) and on the
published view, with a fixed clock, prices and labels.
"""

from __future__ import annotations

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.aggregate import SESSION_GAP, Aggregator, Context, sessions_add
from stream.core.facts import Fact

PRICES = {"1:native": [3000.0, 18, "ETH"], "1:0x" + "aa" * 20: [1.0, 6, "USDC"]}
AGG = Aggregator()
CTX = Context(PRICES, {})
T0 = 1_790_000_000_000
TOKENS = ["1:native", "1:0x" + "aa" * 20, "8453:0x" + "bb" * 20]


def roundtrip(value):
    return msgspec.json.decode(msgspec.json.encode(value))


@st.composite
def facts(draw, ident=None):
    i = draw(st.integers(0, 10**6))
    ts = T0 + draw(st.integers(0, 60 * 86_400_000))
    who = ident or draw(st.sampled_from(["anon:a", "anon:b", "wallet:0x" + "01" * 20, "user:u"]))
    kind = draw(
        st.sampled_from(
            ["page", "track", "wallet", "tx", "transfer", "revenue", "holding", "ticket", "social"]
        )
    )
    data: dict = {}
    if kind in ("page", "track") and draw(st.booleans()):
        data["touch"] = {
            "ts": ts,
            "source": draw(st.sampled_from(["x", "google", "newsletter"])),
            "medium": draw(st.sampled_from(["social", "cpc", "email"])),
            "campaign": draw(st.sampled_from(["a", "b"])),
        }
    if kind == "wallet":
        data["chain"] = draw(st.sampled_from([1, 10, 8453]))
    if kind in ("tx", "transfer", "revenue"):
        data["chain"] = 1
        data["block"] = draw(st.integers(1_000, 1_400))
        ts = T0 + data["block"] * 12_000  # every fact of a block has the block's time
    if kind == "tx":
        data["side"] = draw(st.sampled_from(["out", "in"]))
        data["value"] = draw(st.integers(0, 10**20))
        if data["side"] == "out":
            data["fee"] = draw(st.integers(0, 10**16))
    if kind == "transfer":
        data["side"] = draw(st.sampled_from(["out", "in"]))
        data["token"] = draw(st.sampled_from(TOKENS))
        data["value"] = draw(st.integers(1, 10**24))
    if kind == "revenue":
        data["token"] = draw(st.sampled_from(TOKENS))
        data["amount"] = draw(st.integers(1, 10**18))
    if kind == "holding":
        data = {
            "token": draw(st.sampled_from(TOKENS)),
            "balance": draw(st.integers(0, 10**22)),
            "block": draw(st.integers(1, 50)),
        }
    if kind == "ticket":
        data = {
            "ticket": draw(st.sampled_from(["zendesk:1", "zendesk:2", "intercom:9"])),
            "event": "updated",
            "status": draw(st.sampled_from(["new", "open", "solved", "closed"])),
            "priority": draw(st.sampled_from([None, "low", "urgent"])),
        }
        if draw(st.booleans()):
            data["csat"] = draw(st.integers(1, 5))
        data["by_requester"] = draw(st.sampled_from([None, True, False]))
        data = {k: v for k, v in data.items() if v is not None}
    if kind == "social":
        data = {
            "platform": "discord",
            "account": draw(st.sampled_from(["discord:1", "discord:2"])),
            "verified": draw(st.booleans()),
            "revoked": False,
            "method": "oauth",
        }
    assoc = [draw(st.sampled_from(["email:x@y.io", "discord:ada"]))] if draw(st.booleans()) else []
    return Fact(f"f{i}", who, kind, ts, "t", assoc=assoc, data=data)


def fold(items) -> dict:
    agg = AGG.empty()
    for f in items:
        AGG.apply(agg, f)
        agg = roundtrip(agg)
    return agg


def view(agg: dict, members=("anon:a",)) -> dict:
    row = {"a": agg, "m": dict.fromkeys(members, 0), "now": T0 + 70 * 86_400_000}
    return AGG.view("p", row, CTX)


def same(a: dict, b: dict) -> None:
    assert roundtrip(a) == roundtrip(b)
    assert view(a) == view(b)


@settings(max_examples=200, deadline=None)
@given(st.lists(facts(), max_size=12))
def test_empty_is_the_identity(items):
    a = fold(items)
    same(AGG.combine(AGG.empty(), a), a)
    same(AGG.combine(a, AGG.empty()), a)


@settings(max_examples=200, deadline=None)
@given(st.lists(facts(), max_size=10), st.lists(facts(), max_size=10))
def test_combine_is_commutative(x, y):
    same(AGG.combine(fold(x), fold(y)), AGG.combine(fold(y), fold(x)))


@settings(max_examples=200, deadline=None)
@given(st.lists(facts(), max_size=8), st.lists(facts(), max_size=8), st.lists(facts(), max_size=8))
def test_combine_is_associative(x, y, z):
    a, b, c = fold(x), fold(y), fold(z)
    same(AGG.combine(a, AGG.combine(b, c)), AGG.combine(AGG.combine(a, b), c))


@settings(max_examples=300, deadline=None)
@given(st.lists(facts(), max_size=20), st.data())
def test_folding_a_union_is_combining_the_folds(items, data):
    cut = data.draw(st.integers(0, len(items)))
    order = data.draw(st.permutations(items))
    same(fold(order), AGG.combine(fold(items[:cut]), fold(items[cut:])))


@settings(max_examples=300, deadline=None)
@given(st.lists(facts(), max_size=15), facts(), st.data())
def test_a_retract_undoes_its_upsert(items, extra, data):
    """Wherever its upsert was, and even when the retract comes first (it may travel
    another path through merges)."""
    if extra.kind not in ("tx", "transfer", "revenue"):
        return
    before = fold(items)
    retract = msgspec.structs.replace(extra, op=-1)
    a, b = sorted(data.draw(st.lists(st.integers(0, len(items)), min_size=2, max_size=2)))
    first, second = (extra, retract) if data.draw(st.booleans()) else (retract, extra)
    after = fold([*items[:a], first, *items[a:b], second, *items[b:]])
    assert view(after) == view(before)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(0, 6 * 3_600_000), max_size=30))
def test_sessions_are_the_30_minute_runs_of_the_event_times_in_any_order(offsets):
    """Adding event times one by one (in time order, the fast path, or not) gives the
    runs of the sorted times with gaps of at most 30 minutes."""
    times = [T0 + o for o in offsets]
    expected: list[list[int]] = []
    for ts in sorted(times):
        if expected and ts - expected[-1][1] <= SESSION_GAP:
            expected[-1][1] = ts
        else:
            expected.append([ts, ts])
    for order in (times, sorted(times)):
        sessions: list = []
        for ts in order:
            sessions = sessions_add(sessions, ts)
        assert sessions == expected


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=40), st.data())
def test_associations_are_capped_to_the_same_set_in_any_order_or_split(emails, data):
    from unittest import mock

    from stream.core import aggregate

    items = [
        Fact(f"f{i}", "anon:a", "identify", T0 + i, "t", assoc=[f"email:u{n:02d}@x.io"])
        for i, n in enumerate(emails)
    ]
    with mock.patch.object(aggregate, "MAX_ASSOCIATIONS", 5):
        whole = fold(items)
        cut = data.draw(st.integers(0, len(items)))
        same(fold(data.draw(st.permutations(items))), whole)
        same(AGG.combine(fold(items[:cut]), fold(items[cut:])), whole)
        expected = sorted({f"email:u{n:02d}@x.io" for n in emails})[:5]
        assert view(whole)["associations"] == expected


def test_a_device_asserting_thousands_of_emails_keeps_a_bounded_row():
    # 2,000 identify calls, a new 254-character email each, grew one row past 1 MB
    from stream.core.aggregate import MAX_ASSOCIATIONS

    agg = AGG.empty()
    for i in range(2_000):
        email = f"email:{i:05d}{'x' * 230}@example.org"
        AGG.apply(agg, Fact(f"f{i}", "anon:a", "identify", T0 + i, "t", assoc=[email]))
    assert len(agg["as"]) == MAX_ASSOCIATIONS
    assert len(msgspec.json.encode(agg)) < 64 * 1024


@st.composite
def sprays(draw):
    """Facts over many tokens and tickets, one fact per (kind, token or ticket) so that
    nothing is retracted or updated: what the caps keep is then a function of the set."""
    kinds = draw(
        st.lists(st.sampled_from(["transfer", "revenue", "holding", "ticket"]), max_size=40)
    )
    items = []
    for i, kind in enumerate(kinds):
        n = draw(st.integers(0, 30))
        token = f"1:0x{n:040x}"
        wallet = draw(st.sampled_from(["wallet:0x" + "01" * 20, "wallet:0x" + "02" * 20]))
        ts = T0 + draw(st.integers(0, 10**6))
        if kind == "transfer":
            data = {"chain": 1, "block": 1_000, "side": "in", "token": token, "value": n + 1}
        elif kind == "revenue":
            data = {"chain": 1, "block": 1_000, "token": token, "amount": n + 1}
        elif kind == "holding":
            data = {"token": token, "balance": n + 1, "block": 7}
        else:
            data = {"ticket": f"zendesk:{i}", "event": "created", "status": "open"}
        items.append(Fact(f"f{i}", wallet, kind, ts, "t", data=data))
    # one fact per token and map: a second transfer of a token would add to the first
    seen: set = set()
    unique = []
    for f in items:
        key = (f.kind, f.ident if f.kind == "holding" else "", f.data.get("token"))
        if f.kind == "ticket" or key not in seen:
            seen.add(key)
            unique.append(f)
    return unique


@settings(max_examples=200, deadline=None)
@given(sprays(), st.data())
def test_tokens_and_tickets_are_capped_to_the_same_set_in_any_order_or_split(items, data):
    from unittest import mock

    from stream.core import aggregate

    with mock.patch.multiple(aggregate, MAX_TOKENS=4, MAX_TICKETS=3):
        whole = fold(items)
        cut = data.draw(st.integers(0, len(items)))
        same(fold(data.draw(st.permutations(items))), whole)
        same(AGG.combine(fold(items[:cut]), fold(items[cut:])), whole)
        for kind, field in (("transfer", "vol"), ("revenue", "rev")):
            tokens = sorted({f.data["token"] for f in items if f.kind == kind})
            assert sorted(whole[field]) == tokens[:4]
        held = sorted({f.data["token"] for f in items if f.kind == "holding"})
        assert sorted(aggregate._holdings(whole["hold"])) == held[:4]
        tickets = [f for f in items if f.kind == "ticket"]
        latest = sorted(tickets, key=lambda f: (f.ts, f.data["ticket"]), reverse=True)[:3]
        assert sorted(whole["tk"]) == sorted(f.data["ticket"] for f in latest)
        assert abs(view(whole)["tickets_total"] - len(tickets)) <= max(2, len(tickets) // 20)


def test_a_wallet_sprayed_with_tokens_and_a_ticket_bot_keep_a_bounded_row():
    """20,000 spam tokens received, held (over three wallets) and paid in (one block
    each, all within the retract window), and 5,000 tickets with the longest subjects:
    the row stays far below Kafka's record size."""
    from stream.contract.inputs import SHORT_TEXT_MAX
    from stream.core.aggregate import MAX_RECENT_BLOCKS, MAX_TICKETS, MAX_TOKENS, _holdings
    from stream.topics import MAX_RECORD_BYTES

    agg = AGG.empty()
    wallets = ["wallet:0x" + f"{w:02x}" * 20 for w in range(3)]
    for i in range(20_000):
        token = f"1:0x{i * 7919 % 10**9:040x}"
        chain = {"chain": 1, "block": 1_000 + i, "side": "in", "token": token, "value": 10**30}
        AGG.apply(agg, Fact(f"t{i}", wallets[0], "transfer", T0 + i, "t", data=chain))
        paid = {"chain": 1, "block": 1_000 + i, "token": token, "amount": 10**30}
        AGG.apply(agg, Fact(f"r{i}", wallets[0], "revenue", T0 + i, "t", data=paid))
        held = {"token": token, "balance": 10**30, "block": 7}
        AGG.apply(agg, Fact(f"h{i}", wallets[i % 3], "holding", T0 + i, "t", data=held))
    for i in range(5_000):
        ticket = {"ticket": f"zendesk:{i}", "event": "created", "status": "open",
                  "priority": "urgent", "subject": "s" * SHORT_TEXT_MAX}  # fmt: skip
        AGG.apply(agg, Fact(f"k{i}", "email:bot@x.io", "ticket", T0 + i, "t", data=ticket))
    assert len(agg["vol"]) == len(agg["rev"]) == len(_holdings(agg["hold"])) == MAX_TOKENS
    assert len(agg["ct"]["r"]) == MAX_RECENT_BLOCKS  # 20,000 blocks paid in, all recent
    shown = view(agg, members=wallets)
    assert (shown["first_transaction_at"], shown["last_transaction_at"]) == (T0, T0 + 19_999)
    assert abs(shown["tickets_total"] - 5_000) <= 5_000 * 0.05  # the sketch: ~3 % error
    assert shown["tickets_open"] == MAX_TICKETS
    assert shown["last_ticket"]["ticket"] == "zendesk:4999"
    row = msgspec.json.encode({"a": agg, "w": shown})
    # a change event carries a field's old and new values: twice the row still fits
    assert 2 * len(row) < MAX_RECORD_BYTES / 2, len(row)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 12), st.sampled_from(["open", "closed"])), max_size=40),
    st.data(),
)
def test_tickets_past_the_cap_count_the_same_in_any_order_with_updates(events, data):
    """Updates of a ticket the cap dropped do not count it again, in any order or split
    (the count comes from a sketch of every ticket id, merged like a set)."""
    from unittest import mock

    from stream.core import aggregate

    items = [
        Fact(
            f"k{n}",
            "email:bot@x.io",
            "ticket",
            T0 + n,
            "t",
            data={"ticket": f"zendesk:{t}", "event": "updated", "status": s},
        )
        for n, (t, s) in enumerate(events)
    ]
    with mock.patch.object(aggregate, "MAX_TICKETS", 3):
        whole = fold(items)
        cut = data.draw(st.integers(0, len(items)))
        shuffled = fold(data.draw(st.permutations(items)))
        split = AGG.combine(fold(items[:cut]), fold(items[cut:]))
        totals = {view(x)["tickets_total"] for x in (whole, shuffled, split)}
    distinct = len({t for t, _ in events})
    assert len(totals) == 1 and abs(totals.pop() - distinct) <= 1, (totals, distinct)


def test_a_ticket_bot_closed_in_bulk_counts_each_ticket_once():
    agg = AGG.empty()
    for n, status in enumerate(["open"] * 1_500 + ["closed"] * 1_500):
        event = {"ticket": f"zendesk:{n % 1_500}", "event": "updated", "status": status}
        AGG.apply(agg, Fact(f"k{n}", "email:bot@x.io", "ticket", T0 + n, "t", data=event))
    shown = view(agg)
    assert abs(shown["tickets_total"] - 1_500) <= 1_500 * 0.05, shown["tickets_total"]
    assert shown["tickets_open"] == 0  # the 1,000 kept are the latest: all closed


def test_native_coins_are_kept_before_tokens_past_the_cap():
    from unittest import mock

    from stream.core import aggregate

    agg = AGG.empty()
    with mock.patch.object(aggregate, "MAX_TOKENS", 3):
        for n, token in enumerate(["1:0x" + f"{i:040x}" for i in range(5)] + ["1:native"]):
            data = {"chain": 1, "block": 1_000 + n, "side": "in", "token": token, "value": 7}
            AGG.apply(agg, Fact(f"t{n}", "wallet:0x" + "01" * 20, "transfer", T0, "t", data=data))
    assert sorted(agg["vol"]) == ["1:0x" + f"{i:040x}" for i in range(2)] + ["1:native"]


def test_socials_and_chains_are_capped():
    from stream.core.aggregate import MAX_ASSOCIATIONS

    agg = AGG.empty()
    for n in range(200):
        social = {
            "platform": "discord",
            "account": f"discord:{10**17 + n}",
            "verified": True,
            "revoked": False,
            "method": "oauth",
        }
        AGG.apply(agg, Fact(f"s{n}", "user:u", "social", T0 + n, "t", data=social))
        AGG.apply(agg, Fact(f"w{n}", "anon:a", "wallet", T0 + n, "t", data={"chain": n + 1}))
    assert len(agg["so"]) == len(agg["ch"]) == MAX_ASSOCIATIONS


DAY = 86_400_000


def _ticket(n: int, ts: int, by_requester: bool | None, op: int = 1) -> Fact:
    data = {"ticket": "zendesk:7", "event": "updated", "status": "solved"}
    if by_requester is not None:
        data["by_requester"] = by_requester
    return Fact(f"z{n}", "user:u", "ticket", ts, "support", op=op, data=data)


def _activity(agg: dict, now: int) -> dict:
    return AGG.view_groups(("activity",), {"a": agg, "m": {"user:u": 0}, "now": now}, CTX)


def _seen_60_days_ago() -> dict:
    agg = AGG.empty()
    AGG.apply(agg, Fact("p1", "user:u", "page", T0, "web.events"))
    return agg


def test_an_agents_update_of_a_churned_persons_ticket_does_not_resurrect_them():
    now = T0 + 60 * DAY
    agg = _seen_60_days_ago()
    before = _activity(agg, now)
    assert (before["lifecycle"], before["last_seen"]) == ("churned", T0)
    AGG.apply(agg, _ticket(1, now - 3_600_000, by_requester=False))
    assert _activity(agg, now) == before  # no active day, first/last seen as they were
    support = AGG.view_groups(("support",), {"a": agg, "m": {}, "now": now}, CTX)
    assert support["last_ticket"]["status"] == "solved"  # the ticket itself is applied
    assert support["tickets_total"] == 1 and support["tickets_open"] == 0


def test_a_requesters_reply_resurrects_a_churned_person_and_so_does_one_of_unknown_author():
    # unknown: an older producer, a help desk that does not tell (counted as before)
    now = T0 + 60 * DAY
    for by_requester in (True, None):
        agg = _seen_60_days_ago()
        AGG.apply(agg, _ticket(1, now - 3_600_000, by_requester))
        after = _activity(agg, now)
        assert after["lifecycle"] == "resurrected", by_requester
        assert (after["last_seen"], after["active_days_30"]) == (now - 3_600_000, 1)


def test_an_agents_updates_do_not_keep_an_at_risk_person_active():
    now = T0 + 20 * DAY
    agg = _seen_60_days_ago()
    for n in range(5):
        AGG.apply(agg, _ticket(n, T0 + (15 + n) * DAY, by_requester=False))
    assert _activity(agg, now)["lifecycle"] == "at_risk"


def test_a_retracted_ticket_event_takes_back_exactly_the_activity_it_gave():
    """The fact's own data decides on apply and on retract, whichever comes first: an
    agent's update gives and takes back nothing, a requester's its active day."""
    now = T0 + 60 * DAY
    for by_requester in (True, False, None):
        before = roundtrip(_seen_60_days_ago())
        upsert = _ticket(1, now - 3_600_000, by_requester)
        retract = msgspec.structs.replace(upsert, op=-1)
        for pair in ((upsert, retract), (retract, upsert)):
            agg = roundtrip(before)
            AGG.apply(agg, pair[0])
            if by_requester is False:
                assert _activity(agg, now) == _activity(before, now)
            AGG.apply(agg, pair[1])
            assert (agg["days"], agg["n"], agg["k"]) == (before["days"], before["n"], before["k"])
            if by_requester is False:
                assert _activity(agg, now) == _activity(before, now)
