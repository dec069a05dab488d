"""Profile aggregates: every field is mergeable (empty, update from one fact, combine).

``combine`` is associative and commutative, so merging two persons is combining
their aggregates and the order in which facts and merges arrive does not change
the final profile. A chain ``retract`` (``op=-1``) applies the inverse update of
its upsert: sums and counts subtract, and the first/last chain times fall back
to the previous ones (see :class:`ChainTimes`). Everything is computed from
event time, never arrival time.

The internal aggregate (a dict with short keys, stored per person and per
identifier fragment) is turned into the published profile by :meth:`Aggregator.view`,
which also needs the time (``now``), the prices and the wallet labels: the profile
stage's own copies of them (``pl:{token}``, ``lb:{wallet}``), which only its input
changes (:class:`Stored`), so that a batch redone after a crash computes the same.
"""

from __future__ import annotations

import bisect
import heapq
import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from hashlib import blake2b
from typing import Any

from stream.core.facts import Fact
from stream.core.identifiers import kind_of
from stream.core.rules import VIP_METRICS, Lifecycle, Rules, VipTier
from stream.core.state import State, prefix_end

DAY = 86_400_000
HOUR = 3_600_000

# The published profile, in groups of fields that change together; a fact changes
# only some groups (Aggregator.groups_of), so only those are recomputed.
ALL_GROUPS = ("ids", "labels", "socials", "activity", "touch", "value", "support", "events")
# Wallet labels: the partition's copy (``lb:``), shared by every person of the partition
# that lists the wallet, while a change of it names one person (the link stage's, and the
# route stage may already have sent the wallet's facts to the next one): read at every
# publish, from the partition's state (so a redo still computes the same).
ALWAYS = frozenset({"labels"})
HOLDING_GROUPS = frozenset({"value", "events"})
CHAIN_GROUPS = frozenset({"value", "activity", "events"})
TICKET_GROUPS = frozenset({"support", "activity", "events"})
SOCIAL_GROUPS = frozenset({"socials", "activity", "events"})
TOUCH_GROUPS = frozenset({"touch", "activity", "events"})
WEB_GROUPS = frozenset({"activity", "events"})
IDS_GROUPS = frozenset({"ids"})
SESSION_GAP = 30 * 60 * 1000
HISTORY_DAYS = 400  # days of activity and sessions kept exactly (older ones are summarized)

WEB = frozenset(
    {"page", "screen", "track", "identify", "alias", "group"}
    | {"wallet", "chain_switch", "siwe", "tx_intent"}
)
PAGE = frozenset({"page", "screen"})
CHAIN = frozenset({"tx", "transfer", "revenue", "log"})
OPEN_TICKETS = frozenset({"new", "open", "pending", "hold"})


def _add(target: dict, key: Any, amount: int) -> None:
    """target[key] += amount, dropping zeros (so combine and retract stay canonical)."""
    value = target.get(key, 0) + amount
    if value:
        target[key] = value
    else:
        target.pop(key, None)


def _merge_counts(a: dict, b: dict) -> dict:
    out = dict(a)
    for key, value in b.items():
        _add(out, key, value)
    return out


MAX_ASSOCIATIONS = 64
"""Asserted identifiers (associations) a profile keeps: the first in sorted order, so
that the kept set is the same in whatever order facts and merges arrive. Members are
bounded by the rules' limits; associations were not, and one device sending identify
calls with a new typed email each grew its person's row (and every record carrying it)
past what Kafka accepts, a worker crash loop (2026-11-30, found by an audit)."""


MAX_TOKENS = 1024
"""Tokens a profile keeps amounts of, in each of volumes, fees and revenue, and in its
holdings over all its wallets: the first in sorted order (the same set in any order,
as for associations). The chain connector reads only the contracts it is given, but
any producer may write the chain topics, and a wallet sprayed with spam tokens grew
its person's row by ~180 bytes a token, past what Kafka accepts after ~15,000. Native
coins come first (see :func:`_token_order`)."""

MAX_TICKETS = 1000
"""Tickets a profile keeps: the latest by their last event (then ticket id). Past it,
``tickets_total`` is estimated from a HyperLogLog sketch of every ticket id seen
(``tkh``, 1,024 registers: ~3 % error), which merges like a set, so the count is the
same in any order and split and a ticket updated after it was dropped is not counted
twice. A requester opening tickets without end (a bot behind a help desk form) grew
its person's row without bound."""

HLL_BITS = 10
"""log2 of the registers of the tickets' sketch (see :data:`MAX_TICKETS`)."""

MAX_RECENT_BLOCKS = 1024
"""Blocks of the retract window a profile keeps times of (see :class:`ChainTimes`)."""

CAPS = ("associations", "tokens", "holdings", "tickets", "socials", "chains")
"""The capped maps of a profile, as counted in ``Aggregator.capped``."""


def _token_order(token: str) -> tuple[bool, str]:
    """Native coins first, then tokens in sorted order: spam tokens of a chain
    (``1:0x…`` sorts before ``1:native``) must not push out its coin."""
    return not token.endswith(":native"), token


def _hll_add(registers: bytearray, item: str) -> None:
    h = int.from_bytes(blake2b(item.encode(), digest_size=8).digest(), "big")
    rest = h & ((1 << (64 - HLL_BITS)) - 1)
    rank = 64 - HLL_BITS - rest.bit_length() + 1
    index = h >> (64 - HLL_BITS)
    if rank > registers[index]:
        registers[index] = rank


def _hll(agg: dict) -> bytearray:
    """The tickets' sketch of ``agg``: its own, else one of the ticket ids it holds
    (an aggregate without one has dropped no ticket: its map holds every id)."""
    if agg.get("tkh"):
        return bytearray.fromhex(agg["tkh"])
    registers = bytearray(1 << HLL_BITS)
    for ticket in agg["tk"]:
        _hll_add(registers, ticket)
    return registers


def _hll_count(hex_registers: str) -> int:
    registers = bytes.fromhex(hex_registers)
    m = len(registers)
    estimate = 0.7213 / (1 + 1.079 / m) * m * m / sum(2.0**-r for r in registers)
    zeros = registers.count(0)
    if estimate <= 2.5 * m and zeros:
        estimate = m * math.log(m / zeros)  # linear counting for small sets
    return round(estimate)


def _touch_key(touch: dict) -> tuple:
    """Order of touches: event time, then event id, then content (a total order)."""
    return touch["ts"], touch.get("id", ""), sorted((k, str(v)) for k, v in touch.items())


# --- chain activity times -----------------------------------------------------------
class ChainTimes:
    """First/last time of the person's own onchain activity, exact under retractions.

    A retract targets a block of the last minutes (the chain connector stops on a
    reorg deeper than its window), so the times of recent blocks are kept per
    block (``r``: "chain:block" -> [first ts, last ts, facts]); blocks older than
    the *horizon* — the newest chain event time the partition has applied, minus
    ``retract_window_hours`` (event time, so a worker catching up on a backlog
    keeps its window) —
    are folded into ``lo``/``hi`` whenever the aggregate is updated, and so are the
    oldest beyond :data:`MAX_RECENT_BLOCKS` (a bot active in every block of a fast
    chain grew its row by ~40 bytes a block within the window). Folding never
    changes the bounds; it only forgets what a retract would need, so a retract
    arriving more than the window after its block is not undone for these two
    times (sums and counts are always undone). A retract may reach a person before
    its upsert (they can travel different paths through merges), so a block's count
    may be negative for a while: only blocks with a positive count have times.
    """

    @staticmethod
    def empty() -> dict:
        return {"r": {}, "lo": None, "hi": None}

    @staticmethod
    def apply(ct: dict, chain: int, block: int, ts: int, sign: int, horizon: int) -> None:
        key = f"{chain}:{block}"
        entry = ct["r"].get(key)
        if entry is None:
            ct["r"][key] = [ts, ts, sign]
        else:
            entry[0], entry[1] = min(entry[0], ts), max(entry[1], ts)
            entry[2] += sign
            if entry[2] == 0:
                del ct["r"][key]
        ChainTimes.settle(ct, horizon)

    @staticmethod
    def settle(ct: dict, horizon: int) -> None:
        recent = ct["r"]
        old = [k for k, e in recent.items() if e[1] < horizon]
        if len(recent) - len(old) > MAX_RECENT_BLOCKS:
            young = [(e[1], k) for k, e in recent.items() if e[1] >= horizon]
            excess = len(young) - MAX_RECENT_BLOCKS
            old += [k for _, k in heapq.nsmallest(excess, young)]
        for key in old:
            first, last, count = recent.pop(key)
            if count > 0:
                ct["lo"] = first if ct["lo"] is None else min(ct["lo"], first)
                ct["hi"] = last if ct["hi"] is None else max(ct["hi"], last)

    @staticmethod
    def combine(a: dict, b: dict, horizon: int) -> dict:
        recent = {k: list(v) for k, v in a["r"].items()}
        for key, (first, last, count) in b["r"].items():
            mine = recent.get(key)
            if mine is None:
                recent[key] = [first, last, count]
            elif mine[2] + count == 0:
                del recent[key]
            else:
                recent[key] = [min(mine[0], first), max(mine[1], last), mine[2] + count]
        out = {"r": recent, "lo": _opt(min, a["lo"], b["lo"]), "hi": _opt(max, a["hi"], b["hi"])}
        ChainTimes.settle(out, horizon)
        return out

    @staticmethod
    def bounds(ct: dict) -> tuple[int | None, int | None]:
        recent = [e for e in ct["r"].values() if e[2] > 0]
        lows = [x for x in (ct["lo"], min((e[0] for e in recent), default=None)) if x is not None]
        highs = [x for x in (ct["hi"], max((e[1] for e in recent), default=None)) if x is not None]
        return (min(lows) if lows else None, max(highs) if highs else None)


# --- sessions -----------------------------------------------------------------------------
def sessions_add(intervals: list, ts: int) -> list:
    """Add one web event time to sorted, disjoint [start, end] intervals (30-minute rule)."""
    if intervals:
        last = intervals[-1]
        if ts >= last[0]:  # in time order, the common case: the last session or a new one
            if ts <= last[1]:
                return intervals
            if ts <= last[1] + SESSION_GAP:
                return [*intervals[:-1], [last[0], ts]]
            return [*intervals, [ts, ts]]
    i = bisect.bisect_left(intervals, [ts, ts])
    start, end = ts, ts
    lo = i
    if lo > 0 and intervals[lo - 1][1] + SESSION_GAP >= ts:
        lo -= 1
        start = min(start, intervals[lo][0])
        end = max(end, intervals[lo][1])
    hi = i
    while hi < len(intervals) and intervals[hi][0] - SESSION_GAP <= end:
        end = max(end, intervals[hi][1])
        hi += 1
    return [*intervals[:lo], [start, end], *intervals[hi:]]


def sessions_combine(a: list, b: list) -> list:
    merged: list = []
    for start, end in sorted([*a, *b]):
        if merged and start - SESSION_GAP <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def _met(tier: VipTier, value: Mapping[str, Any]) -> tuple[str, float] | None:
    """The first threshold of ``tier`` that ``value`` meets: (metric, threshold)."""
    for metric in VIP_METRICS:
        threshold = getattr(tier, metric)
        if threshold is not None and value.get(metric, 0) >= threshold:
            return metric, threshold
    return None


# --- the aggregator ---------------------------------------------------------------------------
class Stored(Mapping):
    """The keys under ``prefix`` of a partition's state, as a read-only mapping without
    the prefix: the profile stage's copy of the prices (``pl:``) or of the wallet labels
    (``lb:``) that its input brought. Valuing and labelling from the global tables,
    which change on their own, made a change sent again after a crash differ from the
    first under the same version."""

    __slots__ = ("prefix", "state")

    def __init__(self, state: State, prefix: str) -> None:
        self.state, self.prefix = state, prefix

    def get(self, key: str, default: Any = None) -> Any:
        value = self.state.get(self.prefix + key)
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        value = self.state.get(self.prefix + key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.state.get(self.prefix + key) is not None

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        start = len(self.prefix)
        for key, value in self.state.scan(self.prefix, prefix_end(self.prefix)):
            yield key[start:], value

    def __iter__(self) -> Iterator[str]:
        return (key for key, _ in self.items())

    def __len__(self) -> int:
        return sum(1 for _ in self.items())


PRICES = "pl:"
"""The profile stage's prices ``pl:{token}`` = [price_usd, decimals, symbol] (Price)."""
LABELS = "lb:"
"""The profile stage's wallet labels ``lb:{wallet}`` = {chain: [categories]} (Members,
Refresh)."""


@dataclass
class Context:
    """What one batch of the profile stage reads besides its own rows.

    Valuation uses the partition's price snapshot (``pv:{token}``): the price at
    which the partition valued a token, taken from its prices (``pl:``) the first
    time the token is valued and refreshed by ticks, which then revalue the holders.
    So a profile's USD figures move with a price change only on ticks (one revaluation
    per tick, however often a feed moves a price), and are the same whichever field
    group was recomputed last. A token valued while it has no price is marked
    (``pz:{token}``): its first price revalues its holders when it comes
    (:meth:`Aggregator.price_came`), not at the next tick, so no profile shows it
    unpriced once the partition has a price for it.
    """

    #: token -> [price_usd, decimals, symbol] (the partition's, from its input: Stored)
    prices: Mapping[str, Any] = field(default_factory=dict)
    #: wallet -> {chain: [categories]}
    labels: Mapping[str, Any] = field(default_factory=dict)
    #: persons whose timer fired in this batch
    fired: set[str] = field(default_factory=set)
    #: the partition's state (for the price snapshot); None: value at live prices
    state: State | None = None
    #: (active days in order, first seen, last seen) of the person being published
    summary: tuple[list[int], int | None, int | None] | None = None
    #: tokens this batch already marked as valued without a price (``pz:``)
    unpriced: set[str] = field(default_factory=set)

    def now(self, state: State) -> int:
        """The partition's clock: the latest tick."""
        return state.get("clock") or 0

    def price(self, token: str) -> Any:
        """[price_usd, decimals, symbol] at which this partition values ``token``."""
        if self.state is None:
            return self.prices.get(token)
        key = "pv:" + token
        snapshot = self.state.get(key)
        if snapshot is None:
            snapshot = self.prices.get(token)
            if snapshot is not None:
                self.state.put(key, snapshot)
            elif token not in self.unpriced:
                self.unpriced.add(token)
                if self.state.get("pz:" + token) is None:
                    self.state.put("pz:" + token, 1)
        return snapshot


class Aggregator:
    """Empty, apply, combine and view of the profile aggregate (see the module doc)."""

    def __init__(
        self,
        rules: Rules | None = None,
    ) -> None:
        self.rules = rules or Rules()
        self.retract_window = self.rules.retract_window_hours * HOUR
        self.horizon = 0  # partition clock - retract window; set per batch (see context)
        self.lifecycle: Lifecycle = self.rules.lifecycle
        self.tiers: list[VipTier] = list(self.rules.vip)
        self._empty_view: dict[str, Any] | None = None
        #: times a map reached its cap and kept only its first entries, by cap (metrics)
        self.capped = dict.fromkeys(CAPS, 0)

    def _cap(self, counts: dict, most: int, cap: str, key: Any = None) -> dict:
        """``counts`` within ``most`` keys (the smallest in ``key``'s order), counting
        when it was over."""
        if len(counts) <= most:
            return counts
        self.capped[cap] += 1
        return {k: counts[k] for k in sorted(counts, key=key)[:most]}

    def _cap_tokens(self, amounts: dict) -> dict:
        """``amounts`` by token within :data:`MAX_TOKENS` (native coins first)."""
        return self._cap(amounts, MAX_TOKENS, "tokens", _token_order)

    def _cap_holdings(self, hold: dict) -> dict:
        """``hold`` with at most :data:`MAX_TOKENS` tokens over all wallets, the smallest."""
        if sum(map(len, hold.values())) <= MAX_TOKENS:
            return hold  # the hot path: no set built
        tokens = {token for balances in hold.values() for token in balances}
        if len(tokens) <= MAX_TOKENS:
            return hold
        self.capped["holdings"] += 1
        keep = set(sorted(tokens, key=_token_order)[:MAX_TOKENS])
        out = {}
        for wallet, balances in hold.items():
            kept = {token: entry for token, entry in balances.items() if token in keep}
            if kept:
                out[wallet] = kept
        return out

    def _cap_tickets(self, agg: dict) -> None:
        """Keep the :data:`MAX_TICKETS` latest tickets of ``agg``; the sketch (``tkh``)
        then counts every ticket id seen (see :data:`MAX_TICKETS`)."""
        tickets = agg["tk"]
        if len(tickets) <= MAX_TICKETS:
            return
        self.capped["tickets"] += 1
        agg["tkh"] = _hll(agg).hex()  # every id held: none dropped yet, or in the sketch
        order = sorted(tickets, key=lambda t: (tickets[t][0], t), reverse=True)
        agg["tk"] = {ticket: tickets[ticket] for ticket in order[:MAX_TICKETS]}

    def context(self, state: State) -> Context:
        """The batch's context; also sets the horizon of retractable chain times."""
        chain_clock = state.get("cc") or 0
        self.horizon = chain_clock - self.retract_window if chain_clock else 0
        return Context(Stored(state, PRICES), Stored(state, LABELS), state=state)

    def observe(self, state: State, fact: Fact) -> None:
        """Advance the partition's chain clock (the newest chain event time applied)."""
        if fact.kind in CHAIN and fact.op > 0 and fact.ts > (state.get("cc") or 0):
            state.put("cc", fact.ts)

    # --- empty / apply / combine ------------------------------------------------------
    def empty(self) -> dict[str, Any]:
        return {
            "n": 0, "k": {}, "as": {},
            "w0": None, "w1": None, "days": {}, "ses": [], "sold": 0, "pv": 0, "ch": {},
            "ft": None, "lt": None, "tc": 0,
            "tx": 0, "ct": ChainTimes.empty(),
            "vol": {}, "fee": {}, "rev": {}, "hold": {},
            "tk": {}, "csat": None, "so": {},
        }  # fmt: skip

    def apply(self, agg: dict[str, Any], fact: Fact) -> None:
        sign = fact.op
        kind = fact.kind
        data = fact.data
        agg["n"] += sign
        _add(agg["k"], kind, sign)
        if fact.assoc:
            for ident in fact.assoc:
                _add(agg["as"], ident, sign)
            agg["as"] = self._cap(agg["as"], MAX_ASSOCIATIONS, "associations")
        if kind == "holding":
            snapshot = {fact.ident: {data["token"]: [data["block"], data["balance"]]}}
            agg["hold"] = self._cap_holdings(_holdings_combine(agg["hold"], snapshot))
            return
        side = data.get("side")
        chain_fact = kind in CHAIN
        # not the person's own activity: receiving a transfer, a ticket change the help
        # desk says someone else made (an agent closing it); unknown counts as theirs
        own = side != "in" and data.get("by_requester") is not False
        ts = fact.ts
        if own:
            _add(agg["days"], str(ts // DAY), sign)
            if chain_fact:
                ChainTimes.apply(agg["ct"], data["chain"], data["block"], ts, sign, self.horizon)
            else:
                agg["w0"] = ts if agg["w0"] is None else min(agg["w0"], ts)
                agg["w1"] = ts if agg["w1"] is None else max(agg["w1"], ts)
            if "chain" in data and kind != "revenue":
                _add(agg["ch"], str(data["chain"]), sign)
                agg["ch"] = self._cap(agg["ch"], MAX_ASSOCIATIONS, "chains")
        if kind in WEB:
            agg["ses"] = sessions_add(agg["ses"], ts)
            if kind in PAGE:
                agg["pv"] += 1
        touch = data.get("touch")
        if touch is not None:
            touch = {**touch, "id": fact.id}
            agg["tc"] += 1
            if agg["ft"] is None or _touch_key(touch) < _touch_key(agg["ft"]):
                agg["ft"] = touch
            if agg["lt"] is None or _touch_key(touch) > _touch_key(agg["lt"]):
                agg["lt"] = touch
        if chain_fact:
            native = f"{data['chain']}:native"
            if kind == "tx":
                if side == "out":
                    agg["tx"] += sign
                    if data.get("fee"):
                        _add(agg["fee"], native, sign * data["fee"])
                        agg["fee"] = self._cap_tokens(agg["fee"])
                if data.get("value"):
                    _add(agg["vol"], native, sign * data["value"])
                    agg["vol"] = self._cap_tokens(agg["vol"])
            elif kind == "transfer":
                _add(agg["vol"], data["token"], sign * data["value"])
                agg["vol"] = self._cap_tokens(agg["vol"])
            elif kind == "revenue":
                _add(agg["rev"], data["token"], sign * data["amount"])
                agg["rev"] = self._cap_tokens(agg["rev"])
        elif kind == "ticket":
            priority, subject = data.get("priority"), data.get("subject")
            entry = [
                ts,
                data["status"],
                None if priority is None else [ts, priority],
                None if subject is None else [ts, subject],
                ts,
            ]
            agg["tk"] = _tickets_combine(agg["tk"], {data["ticket"]: entry})
            if agg.get("tkh"):  # past the cap: the sketch counts every id seen
                registers = bytearray.fromhex(agg["tkh"])
                _hll_add(registers, data["ticket"])
                agg["tkh"] = registers.hex()
            self._cap_tickets(agg)
            if "csat" in data:
                agg["csat"] = _opt(max, agg["csat"], [ts, data["csat"]])
        elif kind == "social":
            account = data["account"]
            entry = [ts, data["verified"], data.get("handle"), data["platform"], data["revoked"]]
            agg["so"] = self._cap(
                _socials_combine(agg["so"], {account: entry}), MAX_ASSOCIATIONS, "socials"
            )
        self._trim(agg)

    def combine(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        """The aggregate of the union of two sets of facts (never mutates ``b``)."""
        out = {
            "n": a["n"] + b["n"],
            "k": _merge_counts(a["k"], b["k"]),
            "as": self._cap(_merge_counts(a["as"], b["as"]), MAX_ASSOCIATIONS, "associations"),
            "w0": _opt(min, a["w0"], b["w0"]),
            "w1": _opt(max, a["w1"], b["w1"]),
            "days": _merge_counts(a["days"], b["days"]),
            "ses": sessions_combine(a["ses"], b["ses"]),
            "sold": a["sold"] + b["sold"],
            "pv": a["pv"] + b["pv"],
            "ch": self._cap(_merge_counts(a["ch"], b["ch"]), MAX_ASSOCIATIONS, "chains"),
            "ft": _opt(lambda x, y: min(x, y, key=_touch_key), a["ft"], b["ft"]),
            "lt": _opt(lambda x, y: max(x, y, key=_touch_key), a["lt"], b["lt"]),
            "tc": a["tc"] + b["tc"],
            "tx": a["tx"] + b["tx"],
            "ct": ChainTimes.combine(a["ct"], b["ct"], self.horizon),
            "vol": self._cap_tokens(_merge_counts(a["vol"], b["vol"])),
            "fee": self._cap_tokens(_merge_counts(a["fee"], b["fee"])),
            "rev": self._cap_tokens(_merge_counts(a["rev"], b["rev"])),
            "hold": self._cap_holdings(_holdings_combine(a["hold"], b["hold"])),
            "tk": _tickets_combine(a["tk"], b["tk"]),
            "csat": _opt(lambda x, y: max(x, y), a["csat"], b["csat"]),
            "so": self._cap(_socials_combine(a["so"], b["so"]), MAX_ASSOCIATIONS, "socials"),
        }
        if a.get("tkh") or b.get("tkh"):  # a sketch of every id either side has seen
            registers = bytearray(map(max, _hll(a), _hll(b)))
            out["tkh"] = registers.hex()
        self._cap_tickets(out)
        self._trim(out)
        return out

    def _trim(self, agg: dict[str, Any]) -> None:
        """Fold activity older than HISTORY_DAYS before the newest into summaries (once
        the history is long enough to matter: a few hundred days or sessions)."""
        days = agg["days"]
        if len(days) <= HISTORY_DAYS and len(agg["ses"]) <= 2 * HISTORY_DAYS:
            return
        horizon = max(int(d) for d in days) - HISTORY_DAYS
        for d in [d for d in days if int(d) < horizon]:
            del days[d]  # lifecycle never looks further back than a few weeks
        ses = agg["ses"]
        if ses and ses[0][1] < horizon * DAY:
            keep = [s for s in ses if s[1] >= horizon * DAY]
            agg["sold"] += len(ses) - len(keep)
            agg["ses"] = keep

    # --- the published profile ------------------------------------------------------------
    def view(self, person: str, row: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """The whole published profile."""
        return self.view_groups(ALL_GROUPS, row, ctx)

    def empty_view(self) -> dict[str, Any]:
        """The whole view of a person with no facts and no members: what every group
        shows until something touches it (its values are shared: never mutate them).
        It depends on nothing else (no time, prices or labels)."""
        if self._empty_view is None:
            row = {"m": {}, "a": self.empty(), "now": 0}
            self._empty_view = self.view_groups(ALL_GROUPS, row, Context())
        return self._empty_view

    def view_groups(self, groups: Iterable[str], row: dict[str, Any], ctx: Context) -> dict:
        """The fields of some groups of the published profile (see GROUP_FIELDS)."""
        out: dict[str, Any] = {}
        for group in groups:
            out.update(getattr(self, "_view_" + group)(row, ctx))
        return out

    def _view_ids(self, row: dict, ctx: Context) -> dict:
        members = row["m"]
        identifiers: dict[str, list[str]] = {}
        for ident in sorted(members):
            identifiers.setdefault(kind_of(ident), []).append(ident)
        return {
            "identifiers": identifiers,
            "associations": sorted(
                i for i, n in row["a"]["as"].items() if n > 0 and i not in members
            ),
        }

    def _view_labels(self, row: dict, ctx: Context) -> dict:
        wallets = sorted(i for i in row["m"] if i.startswith("wallet:"))
        return {"labels": _labels(wallets, ctx.labels)}

    def _view_socials(self, row: dict, ctx: Context) -> dict:
        return {
            "socials": {
                account: {"platform": p, "handle": h, "verified": bool(v), "revoked": bool(r)}
                for account, (_, v, h, p, r) in sorted(row["a"]["so"].items())
            }
        }

    def _view_activity(self, row: dict, ctx: Context) -> dict:
        agg = row["a"]
        now = row.get("now") or 0
        chain_lo, chain_hi = ChainTimes.bounds(agg["ct"])
        days, first, last = ctx.summary or self.summarize(agg)
        return {
            "first_seen": first,
            "last_seen": last,
            "sessions": len(agg["ses"]) + agg["sold"],
            "page_views": agg["pv"],
            "active_days_30": _active_days(days, now, self.lifecycle.power_window_days),
            "chains": sorted(int(c) for c in agg["ch"]),
            "first_transaction_at": chain_lo,
            "last_transaction_at": chain_hi,
            "lifecycle": self.stage(agg, now, (days, first, last)),
        }

    def _view_touch(self, row: dict, ctx: Context) -> dict:
        agg = row["a"]
        return {
            "first_touch": _public_touch(agg["ft"]),
            "last_touch": _public_touch(agg["lt"]),
            "campaign_touches": agg["tc"],
        }

    def _view_value(self, row: dict, ctx: Context) -> dict:
        agg = row["a"]
        value = self.value(agg, ctx)
        return {
            "transactions": agg["tx"],
            "volume": {t: str(v) for t, v in sorted(agg["vol"].items())},
            "fees": {t: str(v) for t, v in sorted(agg["fee"].items())},
            "revenue": {t: str(v) for t, v in sorted(agg["rev"].items())},
            "holdings": {t: str(v) for t, v in sorted(_holdings(agg["hold"]).items())},
            **value,
            "vip_tier": self.tier(value),
        }

    def _view_support(self, row: dict, ctx: Context) -> dict:
        agg = row["a"]
        tickets = agg["tk"]
        last = max(tickets.items(), key=lambda kv: (kv[1][0], kv[0])) if tickets else None
        return {
            "tickets_total": max(len(tickets), _hll_count(agg["tkh"]))
            if agg.get("tkh")
            else len(tickets),
            "tickets_open": sum(1 for t in tickets.values() if t[1] in OPEN_TICKETS),
            "last_ticket": None
            if last is None
            else {
                "ticket": last[0],
                "status": last[1][1],
                "priority": None if last[1][2] is None else last[1][2][1],
                "subject": None if last[1][3] is None else last[1][3][1],
                "at": last[1][0],
            },
            "last_csat": None
            if agg["csat"] is None
            else {"score": agg["csat"][1], "at": agg["csat"][0]},
        }

    def _view_events(self, row: dict, ctx: Context) -> dict:
        agg = row["a"]
        return {"events": agg["n"], "events_by_kind": dict(sorted(agg["k"].items()))}

    @staticmethod
    def groups_of(fact: Fact) -> frozenset[str]:
        """The view groups a fact can change (the profile stage recomputes only those)."""
        kind = fact.kind
        if kind == "holding":
            groups = HOLDING_GROUPS
        elif kind in CHAIN:
            groups = CHAIN_GROUPS
        elif kind == "ticket":
            groups = TICKET_GROUPS
        elif kind == "social":
            groups = SOCIAL_GROUPS
        elif "touch" in fact.data:
            groups = TOUCH_GROUPS
        else:
            groups = WEB_GROUPS
        return groups | IDS_GROUPS if fact.assoc else groups

    def value(self, agg: dict[str, Any], ctx: Context) -> dict[str, Any]:
        """USD figures: raw amounts x the prices table; unpriced tokens are listed, not zero."""
        unpriced: set[str] = set()

        def usd(amounts: Mapping[str, int]) -> float:
            total = 0.0
            for token, raw in amounts.items():
                price = ctx.price(token)
                if price is None:
                    unpriced.add(token)
                    continue
                total += raw / 10 ** price[1] * price[0]
            return round(total, 2)

        return {
            "volume_usd": usd(agg["vol"]),
            "fees_usd": usd(agg["fee"]),
            "revenue_usd": usd(agg["rev"]),
            "net_worth_usd": usd(_holdings(agg["hold"])),
            "unpriced_tokens": sorted(unpriced),
        }

    def tier_rank(self, tier: str | None) -> int:
        """0 for the highest tier; None ranks below every tier."""
        names = [t.name for t in self.tiers]
        return names.index(tier) if tier in names else len(names)

    def tier(self, value: Mapping[str, Any]) -> str | None:
        for tier in self.tiers:
            if _met(tier, value) is not None:
                return tier.name
        return None

    def reached_by(self, tier_name: str, value: Mapping[str, Any]) -> tuple[str, float] | None:
        """The first threshold of tier ``tier_name`` that ``value`` meets: (metric, threshold)."""
        return next((_met(t, value) for t in self.tiers if t.name == tier_name), None)

    def summarize(self, agg: dict[str, Any]) -> tuple[list[int], int | None, int | None]:
        """(active days in order, first seen, last seen): what lifecycle and timers read."""
        lo, hi = ChainTimes.bounds(agg["ct"])
        return _days(agg), _opt(min, agg["w0"], lo), _opt(max, agg["w1"], hi)

    def stage(self, agg: dict[str, Any], now: int, summary=None) -> str | None:
        """Lifecycle stage at ``now`` (Formo's definitions; thresholds in the rules)."""
        days, first, last = summary or self.summarize(agg)
        if not days:
            return None
        lc = self.lifecycle
        today = now // DAY
        if now - last >= lc.churn_days * DAY:
            return "churned"
        if now - last >= lc.at_risk_days * DAY:
            return "at_risk"
        back = _returned_on(days, lc.churn_days)
        if back is not None and today - back < lc.resurrected_days:
            return "resurrected"
        if _active_days(days, now, lc.power_window_days) >= lc.power_active_days:
            return "power"
        if now - first < lc.new_days * DAY:
            return "new"
        return "returning"

    def next_change(self, agg: dict[str, Any], now: int, summary=None) -> int | None:
        """When the time-dependent fields (lifecycle, active days) next change without events."""
        days, first, last = summary or self.summarize(agg)
        if not days:
            return None
        lc = self.lifecycle
        candidates = [
            last + lc.at_risk_days * DAY,
            last + lc.churn_days * DAY,
            first + lc.new_days * DAY,
        ]
        back = _returned_on(days, lc.churn_days)
        if back is not None:
            candidates.append((back + lc.resurrected_days) * DAY)
        today = now // DAY
        in_window = [d for d in days if d > today - lc.power_window_days]
        if in_window:
            candidates.append((in_window[0] + lc.power_window_days) * DAY)
        future = [c for c in candidates if c > now]
        return min(future) if future else None

    # --- time: timers and revaluation -----------------------------------------------------
    def tick(
        self, state: State, now: int, ctx: Context, cursor: str = "", limit: int | None = None
    ) -> tuple[dict[str, set[str]], str | None]:
        """Advance the partition clock. Returns the persons whose profile may change with
        time (their timer is due: "tick") or with a price that moved ("revaluation"),
        and where to go on when more timers are due than ``limit`` (the last timer key
        fired; None: all done). A later call with that ``cursor`` and the same ``now``
        fires the timers after it: a timer re-armed behind the cursor is not fired
        again by the same tick.

        Revaluation is not bounded: a token's holders are revalued in the call that
        moves its price snapshot, or a person changed in between would show figures at
        the new price next to figures at the old one."""
        clock = state.get("clock") or 0
        if now > clock:
            state.put("clock", now)
        due: dict[str, set[str]] = {}
        start = cursor + "\x00" if cursor else "t:"
        stop = f"t:{max(now, clock) // HOUR + 1:09d}"
        timers = list(state.scan(start, stop, None if limit is None else limit + 1))
        if limit is not None and len(timers) > limit:
            timers, cursor = timers[:limit], timers[limit - 1][0]
        else:
            cursor = None
        for key, _ in timers:
            state.delete(key)
            person = key.rsplit(":", 1)[1]
            ctx.fired.add(person)
            due.setdefault(person, set()).add("tick")
        moved = [token for token, price in ctx.prices.items() if state.get("pv:" + token) != price]
        # a deleted price: its holders are unpriced again
        moved += [k[3:] for k, _ in state.scan("pv:", prefix_end("pv:")) if k[3:] not in ctx.prices]
        for token in moved:
            for person in self._revalue(state, token, ctx.prices.get(token), ctx):
                due.setdefault(person, set()).add("revaluation")
        return due, cursor

    def price_came(self, state: State, token: str, value: list | None, ctx: Context) -> list[str]:
        """A token's price reached the partition (the Price message): it becomes the
        partition's (``pl:``). Returns the persons to revalue now: the holders of a token
        valued here without a price (``pz:``); a price that changed waits for the next
        tick (see :class:`Context`)."""
        key = PRICES + token
        if value is None:
            state.delete(key)
            return []
        state.put(key, value)
        if state.get("pz:" + token) is None:
            return []
        return self._revalue(state, token, value, ctx)

    @staticmethod
    def _revalue(state: State, token: str, price: list | None, ctx: Context) -> list[str]:
        """Value ``token`` at ``price`` (None: unpriced) from now on; its holders."""
        if price is None:
            state.delete("pv:" + token)
        else:
            state.put("pv:" + token, price)
        if state.get("pz:" + token) is not None:
            state.delete("pz:" + token)
        ctx.unpriced.discard(token)
        prefix = f"k:{token}:"
        return [k[len(prefix) :] for k, _ in state.scan(prefix, prefix_end(prefix))]

    def before_view(self, state: State, row: dict[str, Any], ctx: Context) -> None:
        """Bring the row's clock up to the partition's, and summarize its activity once
        for the view and the timers."""
        clock = state.get("clock") or 0
        ctx.summary = summary = self.summarize(row["a"])
        row["now"] = max(clock, summary[2] or 0)

    def maintain(
        self,
        state: State,
        person: str,
        row: dict,
        ctx: Context,
        *,
        timers: bool = True,
        tokens: bool = True,
    ) -> bool:
        """Keep a touched person's timer and token index up to date (the parts its change
        may affect); True if ``row`` changed."""
        changed = False
        agg = row["a"]
        if row.get("mi"):
            timers = tokens = True
        if not timers:
            return self._index_tokens(state, person, row) if tokens else False
        old_due = row.get("due")
        due = None if row.get("mi") else self.next_change(agg, row.get("now") or 0, ctx.summary)
        bucket = None if due is None else due // HOUR
        if bucket != old_due or (bucket is not None and person in ctx.fired):
            if old_due is not None and old_due != bucket:
                state.delete(f"t:{old_due:09d}:{person}")
            if bucket is not None:
                state.put(f"t:{bucket:09d}:{person}", 1)
            row["due"] = bucket
            changed = True
        if tokens:
            changed = self._index_tokens(state, person, row) or changed
        return changed

    def _index_tokens(self, state: State, person: str, row: dict) -> bool:
        """``k:{token}:{person}`` for every token the person has amounts of (revaluation)."""
        agg = row["a"]
        changed = False
        tokens: set[str] = set()
        if not row.get("mi"):
            tokens = {*agg["vol"], *agg["fee"], *agg["rev"], *_holdings(agg["hold"])}
        indexed = set(row.get("tok", []))
        for token in tokens - indexed:
            state.put(f"k:{token}:{person}", 1)
        for token in indexed - tokens:
            state.delete(f"k:{token}:{person}")
        if tokens != indexed:
            row["tok"] = sorted(tokens)
            changed = True
        return changed


# --- helpers -------------------------------------------------------------------------------
def _opt(fn, a, b):
    if a is None:
        return b
    if b is None:
        return a
    return fn(a, b)


def _ticket_combine(a: list, b: list) -> list:
    """Per ticket: [time and status of the latest event, [time, priority] and [time,
    subject] of the latest events that had them, created = the earliest event]."""
    status = max((a[0], a[1]), (b[0], b[1]))
    return [status[0], status[1], _opt(max, a[2], b[2]), _opt(max, a[3], b[3]), min(a[4], b[4])]


def _tickets_combine(a: dict, b: dict) -> dict:
    out = dict(a)
    for ticket, entry in b.items():
        out[ticket] = entry if ticket not in out else _ticket_combine(out[ticket], entry)
    return out


def _socials_combine(a: dict, b: dict) -> dict:
    out = dict(a)
    for account, entry in b.items():
        if account not in out or _social_order(entry) > _social_order(out[account]):
            out[account] = entry
    return out


def _social_order(entry: list) -> tuple:
    return (entry[0], entry[1], entry[2] or "", entry[3], entry[4])


def _holdings_combine(a: dict, b: dict) -> dict:
    out = {wallet: dict(tokens) for wallet, tokens in a.items()}
    for wallet, tokens in b.items():
        mine = out.setdefault(wallet, {})
        for token, (block, balance) in tokens.items():
            current = mine.get(token)
            if current is None or (block, balance) > (current[0], current[1]):
                mine[token] = [block, balance]
    return out


def _holdings(hold: dict) -> dict[str, int]:
    """Balances per token, summed over the person's wallets (latest snapshot of each)."""
    out: dict[str, int] = {}
    for tokens in hold.values():
        for token, (_, balance) in tokens.items():
            _add(out, token, balance)
    return out


def _days(agg: dict[str, Any]) -> list[int]:
    """The person's active days, in order."""
    return sorted(int(d) for d, n in agg["days"].items() if n > 0)


def _active_days(days: list[int], now: int, window: int) -> int:
    """Active days (in order, as :meth:`Aggregator.summarize` gives them) among the
    ``window`` days up to ``now``'s."""
    today = now // DAY
    return bisect.bisect_right(days, today) - bisect.bisect_right(days, today - window)


def _returned_on(days: list, gap: int) -> int | None:
    """The first active day after the last gap of at least ``gap`` days, if any."""
    for i in range(len(days) - 1, 0, -1):
        if int(days[i]) - int(days[i - 1]) >= gap:
            return int(days[i])
    return None


def _public_touch(touch: dict | None) -> dict | None:
    if touch is None:
        return None
    return {k: v for k, v in touch.items() if k != "id"}


def _labels(wallets: list[str], labels: Mapping[str, Any]) -> dict[str, list[str]]:
    out = {}
    for wallet in wallets:
        entry = labels.get(wallet)
        if entry:
            out[wallet] = sorted({c for categories in entry.values() for c in categories})
    return out
