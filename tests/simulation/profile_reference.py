"""Plain offline definitions of a profile, from its facts. Does not import the core."""

from __future__ import annotations

import itertools

from tests.simulation.profile_scenarios import DAY, Truth

GAP = 30 * 60 * 1000


def sessions(times: list[int]) -> int:
    ordered = sorted(times)
    return sum(1 for a, b in itertools.pairwise(ordered) if b - a > GAP) + (1 if ordered else 0)


def lifecycle(days: list[int], first: int, last: int, now: int) -> str | None:
    if not days:
        return None
    today = now // DAY
    if now - last >= 30 * DAY:
        return "churned"
    if now - last >= 14 * DAY:
        return "at_risk"
    gaps = [(b, b - a) for a, b in itertools.pairwise(days)]
    returns = [b for b, gap in gaps if gap >= 30]
    if returns and today - returns[-1] < 30:
        return "resurrected"
    if sum(1 for d in days if today - 30 < d <= today) >= 5:
        return "power"
    if now - first < 7 * DAY:
        return "new"
    return "returning"


def usd(amounts: dict[str, int], prices: dict[str, tuple[float, int]]) -> tuple[float, set[str]]:
    total = 0.0
    unpriced = set()
    for token, raw in amounts.items():
        if not raw:
            continue
        if token in prices:
            price, decimals = prices[token]
            total += raw / 10**decimals * price
        else:
            unpriced.add(token)
    return total, unpriced


def tier(net_worth: float, volume: float, fees: float) -> str | None:
    for name, nw, vol, fee in (
        ("whale", 1_000_000, 10_000_000, 50_000),
        ("gold", 100_000, 1_000_000, 5_000),
        ("silver", 10_000, 100_000, 500),
    ):
        if net_worth >= nw or volume >= vol or fees >= fee:
            return name
    return None


def add(target: dict[str, int], amounts: dict[str, int]) -> None:
    for token, raw in amounts.items():
        target[token] = target.get(token, 0) + raw


def expected_profile(truths: list[Truth], prices: dict[str, tuple[float, int]], now: int) -> dict:
    own = [t for t in truths if t.own]
    days = sorted({t.ts // DAY for t in own})
    first = min((t.ts for t in own), default=None)
    last = max((t.ts for t in own), default=None)
    onchain = [t.ts for t in truths if t.onchain]
    touches = sorted((t.touch["ts"], t.id, t.touch) for t in truths if t.touch)
    volume: dict[str, int] = {}
    fees: dict[str, int] = {}
    revenue: dict[str, int] = {}
    for t in truths:
        add(volume, t.volume)
        add(fees, t.fees)
        add(revenue, t.revenue)
    latest: dict[tuple[str, str], tuple[int, int]] = {}
    for t in truths:
        if t.holding:
            wallet, token, block, balance = t.holding
            current = latest.get((wallet, token))
            if current is None or (block, balance) > current:
                latest[(wallet, token)] = (block, balance)
    holdings: dict[str, int] = {}
    for (_, token), (_, balance) in latest.items():
        add(holdings, {token: balance})
    tickets: dict[str, tuple] = {}
    for t in truths:
        if t.ticket:
            ticket, ts, status, _priority, _subject = t.ticket
            if ticket not in tickets or (ts, status) > tickets[ticket]:
                tickets[ticket] = (ts, status)
    csats = sorted((t.ts, t.csat) for t in truths if t.csat)
    today = now // DAY
    volume_usd, u1 = usd(volume, prices)
    fees_usd, u2 = usd(fees, prices)
    revenue_usd, u3 = usd(revenue, prices)
    worth, u4 = usd(holdings, prices)
    return {
        "events": len(truths),
        "first_seen": first,
        "last_seen": last,
        "sessions": sessions([t.ts for t in truths if t.web]),
        "page_views": sum(1 for t in truths if t.page),
        "active_days_30": sum(1 for d in days if today - 30 < d <= today),
        "chains": sorted({t.chain for t in own if t.chain is not None}),
        "campaign_touches": len(touches),
        "first_touch": touches[0][2] if touches else None,
        "last_touch": touches[-1][2] if touches else None,
        "transactions": sum(1 for t in truths if t.tx_out),
        "first_transaction_at": min(onchain, default=None),
        "last_transaction_at": max(onchain, default=None),
        "volume": {k: str(v) for k, v in sorted(volume.items()) if v},
        "fees": {k: str(v) for k, v in sorted(fees.items()) if v},
        "revenue": {k: str(v) for k, v in sorted(revenue.items()) if v},
        "holdings": {k: str(v) for k, v in sorted(holdings.items()) if v},
        "volume_usd": volume_usd,
        "fees_usd": fees_usd,
        "revenue_usd": revenue_usd,
        "net_worth_usd": worth,
        "unpriced_tokens": sorted(u1 | u2 | u3 | u4),
        "tickets_total": len(tickets),
        "tickets_open": sum(
            1 for _, status in tickets.values() if status in ("new", "open", "pending", "hold")
        ),
        "last_csat": None if not csats else {"score": csats[-1][1], "at": csats[-1][0]},
        "lifecycle": lifecycle(days, first, last, now) if days else None,
        "vip_tier": tier(worth, volume_usd, fees_usd),
    }
