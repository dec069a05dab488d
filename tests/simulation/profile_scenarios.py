"""Random profile scenarios: real input payloads, plus what each means in plain terms.

Every generated event is rendered as the payload a producer would send, and
described independently of the core as ``Truth`` records (one per fact, with the
plain attributes the offline definitions need). Chain events may be reorged:
retracted (same payload, ``op: retract``) and re-emitted in a new block version.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from stream.core.state import prefix_end
from stream.sim import Input

DAY = 86_400_000
T0 = 1_788_000_000_000  # 2026-08-29
USDC = "0x" + "c0" * 20
WETH = "0x" + "e0" * 20


def wallet(i: int) -> str:
    return f"0x{(0x5EED0000 + i):040x}"


def price_input(
    token: str, usd: float | None, decimals: int, at: str = "2026-09-01T00:00:00Z"
) -> Input:
    """A prices record of chain 1 quoted at ``at`` (``usd`` None: the deletion of the
    token's price)."""
    key = f"1:{token}"
    if usd is None:
        return Input("prices", None, key=key)
    body = {
        "chain_id": 1,
        "token": token,
        "symbol": "T",
        "decimals": decimals,
        "price_usd": usd,
        "timestamp": at,
    }
    return Input("prices", json.dumps(body).encode(), key=key)


def forget(sim, stage: str, prefix: str) -> None:
    """Delete ``prefix``'s keys from every partition of ``stage`` in ``sim``: a state
    rebuilt without them (what ``c360 resend`` of prices or labels is for)."""
    for (name, _), state in sim.states.items():
        if name == stage:
            for key, _ in list(state.scan(prefix, prefix_end(prefix))):
                state.delete(key)
            state.commit()


def label_input(address: str, categories: list[str], chain: int = 1) -> Input:
    """A labels record: ``address``'s labels on ``chain`` (none: deleted)."""
    labels = [{"label": c, "category": c} for c in categories]
    body = {"chain_id": chain, "address": address, "labels": labels}
    return Input("labels", json.dumps(body).encode(), key=f"{chain}:{address}")


def iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Truth:
    """One fact as the offline definitions see it."""

    id: str
    ident: str
    ts: int
    own: bool = True  # the person's own action (receiving tokens, an agent's ticket change is not)
    web: bool = False
    page: bool = False
    chain: int | None = None  # a chain used
    onchain: bool = False  # own onchain activity (first/last transaction)
    tx_out: bool = False
    touch: dict | None = None
    volume: dict[str, int] = field(default_factory=dict)
    fees: dict[str, int] = field(default_factory=dict)
    revenue: dict[str, int] = field(default_factory=dict)
    holding: tuple | None = None  # (wallet, token, block, balance)
    ticket: tuple | None = None  # (ticket, ts, status, priority, subject)
    csat: int | None = None
    assoc: list[str] = field(default_factory=list)


@dataclass
class ProfileScenario:
    inputs: list[Input]
    truths: dict[str, Truth]  # by fact id: what is applied at the end
    prices: dict[str, tuple[float, int]]  # token -> (usd, decimals), final
    now: int  # the final tick, sent once the pipeline is quiet (time passes, then we look)


class ProfileGenerator:
    def __init__(self, rnd: random.Random, persons: int, who: random.Random | None = None) -> None:
        self.r = rnd
        # who made a ticket change: drawn apart, so the rest of a seed's scenario (and the
        # examples pinned by seed) stays what it was before tickets said who acted
        self.who = who or random.Random(0)
        self.persons = persons
        self.inputs: list[Input] = []
        self.truths: dict[str, Truth] = {}
        self.n = 0
        self.block = 20_000_000
        self.chain_events: list[tuple[dict, list[Truth]]] = []
        self.prices: dict[str, tuple[float, int]] = {}
        self.clock = T0  # events arrive roughly in time order, as in production
        self.retryable: list[tuple[Input, int]] = []  # and its oldest event time
        self.repeats: list[tuple[int, int]] = []  # (index in inputs, oldest event time)

    def _id(self, prefix: str = "m") -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def advance(self) -> None:
        # mostly minutes apart (so reorgs can happen), sometimes hours or a day
        step = self.r.choice([5 * 60_000, 20 * 60_000, 3 * 3_600_000, 26 * 3_600_000])
        self.clock += self.r.randrange(0, step)

    def _ts(self) -> int:
        """An event time: mostly just now; sometimes late (an offline queue), even weeks."""
        late = self.r.random()
        if late < 0.9:
            return self.clock - self.r.randrange(0, 30 * 60_000)
        return self.clock - self.r.randrange(0, 20 * DAY)

    def _block(self) -> tuple[int, int]:
        """The next block and its timestamp (a block every 12 s)."""
        self.block = max(self.block + 1, 20_000_000 + (self.clock - T0) // 12_000)
        return self.block, T0 + (self.block - 20_000_000) * 12_000

    def _device(self, p: int) -> str:
        return f"dev-{p}-{self.r.randrange(2)}"

    def _add(self, topic: str, payload: dict, truths: list[Truth], key: str | None = None) -> None:
        item = Input(topic, json.dumps(payload).encode(), key=key)
        self.inputs.append(item)
        for t in truths:
            self.truths[t.id] = t
        if truths:
            self.retryable.append((item, min(t.ts for t in truths)))

    # --- web ----------------------------------------------------------------------
    def page(self) -> None:
        p = self.r.randrange(self.persons)
        device = self._device(p)
        mid, ts = self._id(), self._ts()
        event = {"type": "page", "messageId": mid, "anonymousId": device, "timestamp": iso(ts)}
        touch = None
        if self.r.random() < 0.3:
            source = self.r.choice(["twitter", "google", "newsletter"])
            medium = {"twitter": "social", "google": "cpc", "newsletter": "email"}[source]
            campaign = self.r.choice(["launch", "season-2"])
            event["context"] = {
                "campaign": {"source": source, "medium": medium, "name": campaign},
                "page": {"url": "https://app.c360.dev/", "referrer": "https://ref.example"},
            }
            touch = {
                "ts": ts,
                "source": source,
                "medium": medium,
                "campaign": campaign,
                "referrer": "https://ref.example",
                "landing": "https://app.c360.dev/",
            }
        self._add(
            "web.events",
            event,
            [Truth(mid, f"anon:{device}", ts, web=True, page=True, touch=touch)],
        )

    def track(self) -> None:
        p = self.r.randrange(self.persons)
        device = self._device(p)
        mid, ts = self._id(), self._ts()
        event = {"type": "track", "event": "Quest Done", "messageId": mid, "anonymousId": device}
        event["timestamp"] = iso(ts)
        self._add("web.events", event, [Truth(mid, f"anon:{device}", ts, web=True)])

    def siwe(self) -> None:
        p = self.r.randrange(self.persons)
        device, address = self._device(p), wallet(p * 2 + self.r.randrange(2))
        mid, ts = self._id(), self._ts()
        chain = self.r.choice([1, 8453])
        event = {
            "type": "track",
            "event": "SIWE Sign In",
            "messageId": mid,
            "anonymousId": device,
            "timestamp": iso(ts),
            "properties": {
                "address": address,
                "chainId": chain,
                "message": "m",
                "signature": "0x00",
            },
            "context": {"c360": {"siwe": {"verified": True, "address": address}}},
        }
        self._add("web.events", event, [Truth(mid, f"anon:{device}", ts, web=True, chain=chain)])

    def identify(self) -> None:
        p = self.r.randrange(self.persons)
        device = self._device(p)
        mid, ts = self._id(), self._ts()
        event = {
            "type": "identify",
            "messageId": mid,
            "userId": f"user-{p}",
            "anonymousId": device,
            "timestamp": iso(ts),
            "traits": {"email": f"person{p}@c360.dev"},
            "context": {"c360": {"auth": "server"}},
        }
        self._add("web.events", event, [Truth(mid, f"user:user-{p}", ts, web=True)])

    # --- chain -----------------------------------------------------------------------
    def transfer(self) -> None:
        a, b = self.r.randrange(self.persons * 2), self.r.randrange(self.persons * 2)
        if a == b:
            return
        block, ts = self._block()
        token = self.r.choice([USDC, WETH])
        value = self.r.randrange(1, 10**6) * (10**12 if token == WETH else 1)
        block_hash = f"0x{self.n + 1:064x}"
        self.n += 1
        event = {
            "event_id": f"1:{block_hash}:0",
            "op": "upsert",
            "kind": "log",
            "chain_id": 1,
            "block_number": block,
            "block_hash": block_hash,
            "block_timestamp": ts // 1000,
            "tx_hash": f"0x{self.n:064x}",
            "log_index": 0,
            "address": token,
            "decoded": {
                "standard": "erc20",
                "from": wallet(a),
                "to": wallet(b),
                "value": str(value),
            },
        }
        key = f"1:{token}"
        truths = [
            Truth(
                f"{event['event_id']}:from",
                f"wallet:{wallet(a)}",
                ts,
                chain=1,
                onchain=True,
                volume={key: value},
            ),
            Truth(
                f"{event['event_id']}:to", f"wallet:{wallet(b)}", ts, own=False, volume={key: value}
            ),
        ]
        self._add("chain.events", event, truths, key=f"1:{event['tx_hash']}")
        self.chain_events.append((event, truths))

    def tx(self) -> None:
        a = self.r.randrange(self.persons * 2)
        block, ts = self._block()
        self.n += 1
        block_hash = f"0x{self.n:064x}"
        value = self.r.randrange(0, 10**18)
        fee = self.r.randrange(10**13, 10**15)
        event = {
            "event_id": f"1:{block_hash}:tx:0",
            "op": "upsert",
            "kind": "tx",
            "chain_id": 1,
            "block_number": block,
            "block_hash": block_hash,
            "block_timestamp": ts // 1000,
            "tx_hash": f"0x{self.n:064x}",
            "tx_from": wallet(a),
            "tx_to": wallet(999),
            "tx_value": str(value),
            "fee_wei": str(fee),
        }
        eid = event["event_id"]
        truths = [
            Truth(
                f"{eid}:from",
                f"wallet:{wallet(a)}",
                ts,
                chain=1,
                onchain=True,
                tx_out=True,
                volume={"1:native": value} if value else {},
                fees={"1:native": fee},
            )
        ]
        if value:
            truths.append(
                Truth(
                    f"{eid}:to", f"wallet:{wallet(999)}", ts, own=False, volume={"1:native": value}
                )
            )
        if self.r.random() < 0.4:
            amount = fee // 2
            event["revenue"] = {"payer": wallet(a), "token": "native", "amount": str(amount)}
            truths.append(
                Truth(
                    f"{eid}:rev",
                    f"wallet:{wallet(a)}",
                    ts,
                    onchain=True,
                    revenue={"1:native": amount},
                )
            )
        self._add("chain.events", event, truths, key=f"1:{event['tx_hash']}")
        self.chain_events.append((event, truths))

    def reorg(self) -> None:
        """Retract a recent chain event; sometimes re-emit it in a new block version.

        Reorgs are recent: within the reorg window of the chain head (256 blocks)."""
        recent = [
            i for i, (e, _) in enumerate(self.chain_events) if e["block_number"] > self.block - 200
        ]
        if not recent:
            return
        event, truths = self.chain_events.pop(self.r.choice(recent))
        self.inputs.append(Input("chain.events", json.dumps({**event, "op": "retract"}).encode()))
        for t in truths:
            self.truths.pop(t.id, None)
        if self.r.random() < 0.6:
            self.n += 1
            block_hash = f"0x{self.n:064x}"
            suffix = event["event_id"].split(":", 2)[2]
            again = {**event, "block_hash": block_hash, "event_id": f"1:{block_hash}:{suffix}"}
            new_truths = []
            for t in truths:
                side = t.id.rsplit(":", 1)[1]
                new_truths.append(Truth(**{**t.__dict__, "id": f"{again['event_id']}:{side}"}))
            self._add("chain.events", again, new_truths)
            self.chain_events.append((again, new_truths))

    def holding(self) -> None:
        a = self.r.randrange(self.persons * 2)
        token = self.r.choice([USDC, WETH, "native"])
        block = self.r.randrange(1, 100)
        balance = self.r.randrange(0, 10**24)
        ts = self._ts()
        payload = {
            "wallet": wallet(a),
            "chain_id": 1,
            "token": token,
            "balance": str(balance),
            "block_number": block,
            "observed_at": iso(ts),
        }
        key = f"1:{token}"
        t = Truth(
            f"hold:wallet:{wallet(a)}:{key}:{block}:{ts}",
            f"wallet:{wallet(a)}",
            ts,
            own=False,
            holding=(wallet(a), key, block, balance),
        )
        self._add("chain.holdings", payload, [t], key=wallet(a))

    # --- support ----------------------------------------------------------------------
    def ticket(self) -> None:
        p = self.r.randrange(self.persons)
        ext = str(self.r.randrange(self.persons * 2))
        ts = self._ts()
        status = self.r.choice(["new", "open", "solved"])
        priority = self.r.choice([None, "low", "high"])
        eid = self._id("t")
        payload = {
            "event_id": eid,
            "system": "zendesk",
            "external_id": ext,
            "event": "updated",
            "occurred_at": iso(ts),
            "status": status,
            "requester": {"user_id": f"user-{p}"},
        }
        if priority:
            payload["priority"] = priority
        csat = self.r.choice([None, None, 4, 5])
        if csat:
            payload["csat"] = {"score": csat}
        # the requester, an agent (not the person's activity), or unknown (counted as theirs)
        by_requester = self.who.choice([True, False, None])
        if by_requester is not None:
            payload["by_requester"] = by_requester
        self._add(
            "support",
            payload,
            [
                Truth(
                    eid,
                    f"user:user-{p}",
                    ts,
                    own=by_requester is not False,
                    ticket=(f"zendesk:{ext}", ts, status, priority, None),
                    csat=csat,
                )
            ],
        )

    def price(self, token: str, usd: float, decimals: int) -> None:
        self.prices[f"1:{token}"] = (usd, decimals)
        self.inputs.append(price_input(token, usd, decimals))

    def duplicate(self) -> None:
        """An SDK retry or a connector replay: a recent payload again (counted once).
        Only a payload inside the dedupe window by now: outside it, a repeat counts
        again (docs/identity.md, "Duplicates and retractions")."""
        recent = self.clock - 5 * DAY
        candidates = [
            (i, ts) for i, ts in self.retryable[-12:] if i.topic != "chain.events" and ts >= recent
        ]
        live = [
            (e, min(t.ts for t in truths))
            for e, truths in self.chain_events[-3:]
            if truths and min(t.ts for t in truths) >= recent
        ]
        if live and self.r.random() < 0.3:
            event, ts = self.r.choice(live)
            self.repeats.append((len(self.inputs), ts))
            self.inputs.append(Input("chain.events", json.dumps(event).encode()))
        elif candidates:
            item, ts = self.r.choice(candidates)
            self.repeats.append((len(self.inputs), ts))
            self.inputs.append(item)


def profile_scenario(seed: int, events: int = 120, persons: int = 6) -> ProfileScenario:
    r = random.Random(seed)
    g = ProfileGenerator(r, persons, random.Random(f"{seed}:who"))
    g.price("native", 3000.0, 18)
    g.price(USDC, 1.0, 6)
    steps = [g.page] * 5 + [
        g.track,
        g.siwe,
        g.siwe,
        g.identify,
        g.transfer,
        g.transfer,
        g.tx,
        g.tx,
        g.reorg,
        g.holding,
        g.ticket,
        g.duplicate,
    ]
    tick, tick_now = -1, 0  # the mid-stream tick: where, and its time
    for i in range(events):
        g.advance()
        r.choice(steps)()
        if i == events // 2:
            g.price("native", r.choice([2500.0, 3500.0]), 18)  # a price moves mid-stream
            tick, tick_now = len(g.inputs), g.clock
            g.inputs.append(Input("tick", now=tick_now))
    # the tick can reach the route stage before records sent earlier: a repeat from
    # before it must still be inside the window at the tick's time (or it counts again)
    late = {i for i, ts in g.repeats if i < tick and ts < tick_now - 5 * DAY}
    inputs = [item for i, item in enumerate(g.inputs) if i not in late]
    now = g.clock + r.choice([1, 15, 35]) * DAY  # active, at risk or churned by then
    return ProfileScenario(inputs, g.truths, dict(g.prices), now)
