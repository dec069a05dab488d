"""A synthetic Web3 population: persons, their identifiers and their activity.

Seeded and reproducible. Each person has 1-4 devices, 1-5 wallets, maybe a user
id, an email and verified socials; activity is Zipf-distributed; acquisition is
campaign-driven (a realistic mix of UTM sources, mediums and campaigns). Traffic:
web sessions with page views and tracks, wallet connects and SIWE sign-ins (the
link evidence: ~3.5 % of a returning person's events, but ~44 % of an onboarding's,
which ties every identifier in; so a stream's share depends on its events per
person: ~7 % at 100, ~20 % at ``c360 generate``'s 20, ~31 % at the demo's 12),
server-side identifies, ERC-20
transfers and transactions with fees (some paying protocol revenue), holdings
snapshots, support tickets, form answers, social verifications, prices and
wallet labels. Traps: exchange hot wallets that pay many users, and that one
person in 97 connects as if it were theirs (an exchange's in-app wallet: only the
exchange label keeps those persons apart), and a shared kiosk device that many
persons use.

:meth:`Population.events` yields ``(topic suffix, key, payload)``, none dated after the
population's ``end`` (mostly in time order: see its doc);
:meth:`Population.truth` says which synthetic person each identifier belongs to
(identifiers shared between persons are listed apart).
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

DAY = 86_400_000
MINUTE = 60_000
VISIT_SPAN = 60 * MINUTE
"""How long after its start a later visit's last event can come, at most (a session
runs for minutes; with margin)."""
ONBOARD_SPAN = DAY + 30 * MINUTE
"""The same for a first visit: a person's other devices sign in up to a day later."""
USDC = "0xa0b86991c6218b36c1d19d4a2e9eb0ce3606eb48"
WETH = "0xc02aaa39b223fe8d0a0e5c4f27ead9083c756cc2"
TREASURY = "0x7ea5000000000000000000000000000000c0ffee"
ROUTER = "0x1111111254eeb25477b68fb85ed929f73a960582"
CHANNELS = [  # (source, medium, campaign, weight)
    ("twitter", "social", "season-2-launch", 18),
    ("twitter", "social", "airdrop-teaser", 8),
    ("google", "cpc", "brand", 12),
    ("google", "cpc", "defi-yield", 6),
    ("newsletter", "email", "weekly-digest", 9),
    ("discord", "community", "ama-march", 7),
    ("mirror", "referral", "launch-post", 5),
    ("galxe", "quest", "onboarding-quest", 6),
    ("kol", "influencer", "alpha-thread", 4),
    (None, None, None, 25),  # direct / organic
]
PAGES = ["/", "/swap", "/pools", "/bridge", "/portfolio", "/rewards", "/docs", "/stake"]


def iso(ms: int) -> str:
    return (
        dt.datetime.fromtimestamp(ms / 1000, dt.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def address(kind: int, n: int) -> str:
    return f"0x{kind:08x}{n:032x}"


@dataclass
class Person:
    index: int
    devices: list[str]
    wallets: list[str]
    user: str | None
    email: str | None
    socials: dict[str, str]
    weight: float
    channel: tuple[str | None, str | None, str | None]
    joined: int
    whale: bool = False
    identifiers: list[str] = field(default_factory=list)


class Population:
    """See the module doc."""

    def __init__(
        self,
        persons: int,
        seed: int = 7,
        *,
        days: int = 30,
        end: int | None = None,
        first: int = 0,
    ):
        """``persons`` persons numbered from ``first`` (their identifiers derive from the
        number, so populations with disjoint ranges share no identifier). ``seed`` ≥ 0:
        random.Random seeds with its absolute value, so -7 would repeat 7's population."""
        if seed < 0:
            raise ValueError(f"seed {seed}: a population's seed is ≥ 0")
        self.r = random.Random(seed)
        self.days = days
        self.end = end if end is not None else 1_795_000_000_000  # 2026-11-17
        self.start = self.end - days * DAY
        self.persons = [self._person(i) for i in range(first, first + persons)]
        self.exchanges = [address(0xE8C0, i) for i in range(3)]
        self.kiosk = "kiosk-lobby-1"
        self._seq = itertools.count(1)
        self._block = 21_000_000
        self.onboarded: list[int] = []  # persons whose every identifier a stream carried
        weights = [p.weight for p in self.persons]
        total = sum(weights)
        self._cumulative = list(itertools.accumulate(w / total for w in weights))

    # --- the population --------------------------------------------------------------
    def _person(self, i: int) -> Person:
        r = self.r
        devices = [f"d{i:07d}-{k}" for k in range(r.choice([1, 1, 1, 2, 2, 3, 4]))]
        wallets = [address(0x77A1, i * 8 + k) for k in range(r.choice([1, 1, 2, 2, 3, 4, 5]))]
        identified = r.random() < 0.55
        user = f"u{i:07d}" if identified else None
        email = (
            f"person{i}@{r.choice(['gmail.com', 'proton.me', 'fastmail.com', 'c360.dev'])}"
            if identified and r.random() < 0.8
            else None
        )
        socials = {}
        if r.random() < 0.3:
            socials["discord"] = str(10**17 + i)
        if r.random() < 0.2:
            socials["x"] = str(10**9 + i)
        weight = 1.0 / (1 + i % 997) ** 0.9 * r.uniform(0.5, 1.5)  # Zipf-like activity
        channel = r.choices([c[:3] for c in CHANNELS], weights=[c[3] for c in CHANNELS])[0]
        joined = self.start + int(r.random() ** 2 * self.days * DAY * 0.9)
        person = Person(i, devices, wallets, user, email, socials, weight, channel, joined)
        person.whale = r.random() < 0.01
        person.identifiers = (
            [f"anon:{d}" for d in devices]
            + [f"wallet:{w}" for w in wallets]
            + ([f"user:{user}"] if user else [])
            + ([f"email:{email}"] if email else [])
            + [f"{k}:{v}" for k, v in socials.items()]
        )
        return person

    def truth(self) -> dict[str, Any]:
        """Ground truth: identifier -> synthetic person, the identifiers shared by many
        (the kiosk, the exchange hot wallets, the router),
        and the persons whose every identifier the events generated so far carried
        (``emitted``: their onboarding was generated whole), whom scoring expects c360
        to have placed."""
        owner = {ident: p.index for p in self.persons for ident in p.identifiers}
        return {
            "persons": len(self.persons),
            "owner": owner,
            # the router too: every person's swaps and many transfers go to it
            "shared": [
                f"anon:{self.kiosk}",
                *(f"wallet:{w}" for w in self.exchanges),
                f"wallet:{ROUTER}",
            ],
            "emitted": sorted(self.onboarded),
        }

    def pick(self) -> Person:
        return self.persons[bisect.bisect_left(self._cumulative, self.r.random())]

    # --- events ---------------------------------------------------------------------------
    def reference(self) -> Iterator[tuple[str, str, dict]]:
        """Prices and the exchange labels (sent first)."""
        prices = [("native", "ETH", 18, 3400.0), (USDC, "USDC", 6, 1.0), (WETH, "WETH", 18, 3400.0)]
        for token, symbol, decimals, usd in prices:
            yield (
                "prices",
                f"1:{token}",
                {
                    "chain_id": 1,
                    "token": token,
                    "symbol": symbol,
                    "decimals": decimals,
                    "price_usd": usd,
                    "timestamp": iso(self.start),
                    "source": "synthetic",
                },
            )
        for n, wallet in enumerate(self.exchanges):
            yield (
                "labels",
                f"1:{wallet}",
                {
                    "chain_id": 1,
                    "address": wallet,
                    "updated_at": iso(self.start),
                    "labels": [
                        {
                            "label": f"Exchange hot wallet {n + 1}",
                            "category": "exchange",
                            "source": "synthetic",
                        }
                    ],
                },
            )

    def events(self, count: int, *, spread: bool = False) -> Iterator[tuple[str, str, dict]]:
        """``count`` activity events (plus reference data first), none dated after ``end``.

        Everyone shows up once, in order of their first visit (an onboarding: a
        campaign session and the sign-ins that tie their identifiers together), then
        Zipf activity. By default everyone shows up first, so the stream opens with all
        the onboardings (a quarter of them link events). ``spread`` spaces the arrivals
        evenly over the first 90 % of the events instead, activity picking among those
        who have arrived: the same mix throughout, as a product with a steady flow of
        new users sees it (a paced run of the default stream starts with seconds of
        link-heavy traffic).

        Times: a clock moves through the window a step per event, so the events reach
        the present. Spread, the stream is in time order but for the hours a first
        visit's later sign-ins come after it. By default a first visit is dated when
        the person joined (anywhere in the window), so after the onboardings the
        activity starts again weeks back."""
        yield from self.reference()
        produced = 0
        arrivals = sorted(self.persons, key=lambda p: p.joined)
        spacing = count * 0.9 / len(arrivals) if spread else 0.0
        arrived: list[Person] = []
        weights: list[float] = []  # cumulative weights of ``arrived``
        clock = self.start
        # the clock moves a step per event of the previous visit, so the events fill
        # the window to its end (a step per visit left its newest half to two thirds
        # empty, and every person of a large population looked at risk); no visit
        # runs past ``end``
        step = max(1, (self.end - self.start) // max(1, count))
        latest = self.end - VISIT_SPAN
        latest_first = self.end - ONBOARD_SPAN
        first = iter(arrivals)
        last = 1  # events of the previous visit
        while produced < count:
            clock = min(latest, clock + int(self.r.expovariate(1 / step) * last))
            before = produced
            if not spread:
                newcomer = next(first, None)
                person = newcomer if newcomer is not None else self.pick()
                ts = (
                    max(clock, person.joined)
                    if newcomer is None
                    else min(person.joined, latest_first)
                )
            else:
                due = len(arrived) < len(arrivals) and produced >= len(arrived) * spacing
                newcomer = next(first) if due or not arrived else None
                if newcomer is not None:
                    arrived.append(newcomer)
                    weights.append((weights[-1] if weights else 0.0) + newcomer.weight)
                    person = newcomer
                else:
                    at = self.r.random() * weights[-1]
                    person = arrived[bisect.bisect_left(weights, at)]
                ts = clock if newcomer is None else min(clock, latest_first)
            # the visit drawn whole (nothing else draws meanwhile: the same stream), so
            # that a newcomer counts as onboarded as its last event goes out, even when
            # that event ends the stream
            visit = list(self._activity(person, ts, first_visit=newcomer is not None))
            for n, event in enumerate(visit, 1):
                if newcomer is not None and n == len(visit):
                    self.onboarded.append(newcomer.index)  # its onboarding was yielded whole
                yield event
                produced += 1
                if produced >= count:
                    return
            last = produced - before

    def _activity(self, p: Person, ts: int, first_visit: bool) -> Iterator[tuple[str, str, dict]]:
        r = self.r
        if first_visit:
            yield from self._onboarding(p, ts)
            return
        roll = r.random()
        device = r.choice(p.devices)
        if roll < 0.45:
            yield from self._session(p, device, ts, campaign=first_visit)
        elif roll < 0.85:
            yield from self._chain(p, ts)
        elif roll < 0.9:
            yield from self._holdings(p, ts)
        elif roll < 0.93:
            yield self._ticket(p, ts)
        elif roll < 0.95:
            yield self._form(p, device, ts)
        elif roll < 0.97 and p.socials:
            yield self._social(p, ts)
        else:
            yield from self._session(
                p, self.kiosk if r.random() < 0.3 else device, ts, campaign=False
            )

    def _onboarding(self, p: Person, ts: int) -> Iterator[tuple[str, str, dict]]:
        """A person's first visit: a campaign session, then every identifier gets the
        evidence that ties it to the person (so that resolution can be scored against
        the truth): each wallet signs in from the first device, each other device signs
        in with the first wallet, the server identifies the user and the email, and
        verified socials are verified."""
        device = p.devices[0]
        yield from self._session(p, device, ts, campaign=True, extras=False)
        at = ts + 10 * MINUTE
        for n, wallet in enumerate(p.wallets):
            yield self._siwe(p, device, wallet, at + n * 1000)
        for n, other in enumerate(p.devices[1:], 1):
            yield self._siwe(p, other, p.wallets[0], at + n * DAY // 3)
        if p.index % EXCHANGE_CONNECT_EVERY == 13:
            # an exchange's in-app wallet connected as if it were the person's own: only
            # the exchange label keeps the persons who do that apart
            yield self._web(
                p,
                device,
                at + 20_000,
                "track",
                event="Wallet Connected",
                properties={"address": self.exchanges[p.index % len(self.exchanges)], "chainId": 1},
            )
        if p.user:
            traits = {"email": p.email} if p.email else {}
            event = {
                "type": "identify",
                "messageId": self._mid(),
                "userId": p.user,
                "anonymousId": device,
                "timestamp": iso(at + 30_000),
                "traits": traits,
                "context": {"c360": {"auth": "server"}},
            }
            yield "web.events", p.user, event
        for n, platform in enumerate(p.socials):  # every one, so that each is tied in
            yield self._social(p, at + 60_000 + n * 1000, platform)

    def _siwe(self, p: Person, device: str, wallet: str, ts: int) -> tuple[str, str, dict]:
        event = {
            "type": "track",
            "event": "SIWE Sign In",
            "messageId": self._mid(),
            "anonymousId": device,
            "timestamp": iso(ts),
            "properties": {
                "address": wallet,
                "chainId": 1,
                "message": "sign in",
                "signature": "0x00",
            },
            "context": {"c360": {"siwe": {"verified": True, "address": wallet, "chain_id": 1}}},
        }
        return "web.events", device, event

    def _mid(self) -> str:
        return f"syn-{next(self._seq)}"

    def _web(
        self, p: Person, device: str, ts: int, kind: str, **fields: Any
    ) -> tuple[str, str, dict]:
        event = {
            "type": kind,
            "messageId": self._mid(),
            "anonymousId": device,
            "timestamp": iso(ts),
        }
        if p.user and self.r.random() < 0.6 and device != self.kiosk:
            event["userId"] = p.user
        event.update(fields)
        return "web.events", device, event

    def _session(
        self, p: Person, device: str, ts: int, campaign: bool, extras: bool = True
    ) -> Iterator[tuple[str, str, dict]]:
        r = self.r
        pages = r.randint(1, 6)
        for n in range(pages):
            context: dict[str, Any] = {
                "page": {"path": r.choice(PAGES), "url": "https://app.c360.dev/"}
            }
            source, medium, name = p.channel
            if n == 0 and (campaign or r.random() < 0.15) and source:
                context["campaign"] = {"source": source, "medium": medium, "name": name}
                context["page"]["referrer"] = f"https://{source}.example/"
                if medium == "cpc":
                    context["clickIds"] = {"gclid": f"G{r.randrange(10**9)}"}
            yield self._web(p, device, ts + n * r.randint(10, 120) * 1000, "page", context=context)
        at = ts + pages * 60_000
        if not extras:
            return
        if device == self.kiosk:
            wallet = r.choice(p.wallets)
            yield self._web(
                p,
                device,
                at,
                "track",
                event="Wallet Connected",
                properties={"address": wallet, "chainId": 1},
            )
            return
        if r.random() < 0.12:
            wallet = r.choice(p.wallets)
            yield self._web(
                p,
                device,
                at,
                "track",
                event="Wallet Connected",
                properties={"address": wallet, "chainId": r.choice([1, 1, 8453, 42161])},
            )
            if r.random() < 0.4:
                yield self._siwe(p, device, wallet, at + 5000)
        if p.user and r.random() < 0.1:
            traits = {"email": p.email} if p.email else {}
            event = {
                "type": "identify",
                "messageId": self._mid(),
                "userId": p.user,
                "anonymousId": device,
                "timestamp": iso(at + 8000),
                "traits": traits,
                "context": {"c360": {"auth": "server"}},
            }
            yield "web.events", p.user, event
        if r.random() < 0.5:
            yield self._web(
                p,
                device,
                at + 9000,
                "track",
                event=r.choice(["Swap Started", "Quest Completed", "Pool Viewed"]),
            )

    def _chain(self, p: Person, ts: int) -> Iterator[tuple[str, str, dict]]:
        r = self.r
        self._block += r.randint(1, 3)
        block = self._block
        wallet = r.choice(p.wallets)
        block_hash = f"0x{block:064x}"
        tx_hash = f"0x{next(self._seq):064x}"
        seconds = ts // 1000
        if r.random() < 0.5:
            value = r.randrange(10**15, 10**18) * (200 if p.whale else 1)
            fee = r.randrange(3 * 10**13, 3 * 10**15)
            event = {
                "event_id": f"1:{block_hash}:tx:0",
                "op": "upsert",
                "kind": "tx",
                "chain_id": 1,
                "block_number": block,
                "block_hash": block_hash,
                "block_timestamp": seconds,
                "tx_hash": tx_hash,
                "tx_index": 0,
                "tx_from": wallet,
                "tx_to": ROUTER,
                "tx_value": str(value),
                "fee_wei": str(fee),
                "finality": "latest",
            }
            if r.random() < 0.3:
                event["revenue"] = {"payer": wallet, "token": "native", "amount": str(fee // 3)}
            yield "chain.events", f"1:{tx_hash}", event
            return
        token = r.choice([USDC, WETH])
        scale = 10**6 if token == USDC else 10**18
        if r.random() < 0.15:  # an exchange pays a user (a trap: transfers are never links)
            sender, recipient = r.choice(self.exchanges), wallet
        else:
            sender, recipient = wallet, r.choice([ROUTER, *self.pick().wallets])
        value = int(r.lognormvariate(4, 1.5) * scale) * (50 if p.whale else 1)
        event = {
            "event_id": f"1:{block_hash}:1",
            "op": "upsert",
            "kind": "log",
            "chain_id": 1,
            "block_number": block,
            "block_hash": block_hash,
            "block_timestamp": seconds,
            "tx_hash": tx_hash,
            "log_index": 1,
            "address": token,
            "decoded": {"standard": "erc20", "from": sender, "to": recipient, "value": str(value)},
            "finality": "latest",
        }
        yield "chain.events", f"1:{tx_hash}", event

    def _holdings(self, p: Person, ts: int) -> Iterator[tuple[str, str, dict]]:
        r = self.r
        for wallet in p.wallets[:2]:
            token = r.choice(["native", USDC])
            scale = 10**18 if token == "native" else 10**6
            balance = int(r.lognormvariate(0.5, 2) * scale * (300 if p.whale else 1))
            yield (
                "chain.holdings",
                wallet,
                {
                    "wallet": wallet,
                    "chain_id": 1,
                    "token": token,
                    "balance": str(balance),
                    "block_number": self._block,
                    "observed_at": iso(ts),
                },
            )

    def _ticket(self, p: Person, ts: int) -> tuple[str, str, dict]:
        r = self.r
        ext = str(1000 + p.index * 4 + r.randrange(3))
        status = r.choice(["new", "open", "pending", "solved", "solved"])
        requester: dict[str, str] = {}
        if p.email:
            requester["email"] = p.email
        elif p.user:
            requester["user_id"] = p.user
        else:
            requester["wallet"] = p.wallets[0]
        if "discord" in p.socials:
            requester["discord"] = p.socials["discord"]
        event = {
            "event_id": self._mid(),
            "system": "zendesk",
            "external_id": ext,
            "event": "updated",
            "occurred_at": iso(ts),
            "status": status,
            "priority": r.choice(["low", "normal", "high"]),
            "channel": r.choice(["email", "chat", "discord"]),
            "subject": "Help with my bridge",
            "requester": requester,
        }
        if status == "solved" and r.random() < 0.5:
            event["csat"] = {"score": r.choice([3, 4, 5, 5])}
        return "support", f"zendesk:{ext}", event

    def _form(self, p: Person, device: str, ts: int) -> tuple[str, str, dict]:
        respondent = {"anonymous_id": device, "email": f"typed{p.index}@example.org"}
        source, medium, name = p.channel
        hidden = (
            {"utm_source": source, "utm_medium": medium, "utm_campaign": name} if source else {}
        )
        return (
            "forms",
            "waitlist",
            {
                "form_id": "waitlist",
                "response_id": self._mid(),
                "submitted_at": iso(ts),
                "respondent": respondent,
                "answers": [{"question_id": "role", "type": "choice", "value": "trader"}],
                "hidden": hidden,
            },
        )

    def _social(self, p: Person, ts: int, platform: str | None = None) -> tuple[str, str, dict]:
        platform = platform or next(iter(p.socials))
        subject = {"user_id": p.user} if p.user else {"wallet": p.wallets[0]}
        return (
            "socials",
            f"{platform}:{p.socials[platform]}",
            {
                "verification_id": self._mid(),
                "platform": platform,
                "platform_user_id": p.socials[platform],
                "subject": subject,
                "occurred_at": iso(ts),
                "method": "oauth",
                "verified": True,
            },
        )


EXCHANGE_CONNECT_EVERY = 97
"""One person in this many connects an exchange hot wallet at onboarding (a trap)."""

LINK_EVENTS = frozenset({"SIWE Sign In", "Wallet Connected"})
"""The web tracks that carry wallet link evidence (the issue's "link events")."""


def is_link_event(suffix: str, payload: dict) -> bool:
    """A wallet connect or a SIWE sign-in."""
    return suffix == "web.events" and payload.get("event") in LINK_EVENTS


def score(truth: dict[str, Any], assigned: dict[str, str]) -> dict[str, Any]:
    """Pairwise precision and recall of identity resolution against the ground truth.

    A pair of identifiers is positive when the truth puts both in one person;
    identifiers the truth shares between persons (the kiosk, exchange wallets, the
    router) are left out of the pairs and reported apart. ``assigned``: identifier -> c360 person.

    Scored: every identifier of the persons the stream carried whole (the truth's
    ``emitted``). One that c360 placed in no person counts as a person of its own (its
    pairs are missed: recall) and is counted in ``unplaced``, so an identifier lost, or
    a run that saw nothing, cannot score 1.0. A truth without ``emitted`` (written
    before it existed) scores the identifiers c360 placed, and cannot see the lost.
    ``split`` and ``merged`` name the first few mistakes (a true person found as
    several, a found person holding several true ones: their identifiers by person),
    so that a run below 1.0 says where to look.
    """
    shared = set(truth["shared"])
    emitted = truth.get("emitted")
    if emitted is None:
        owner = {i: p for i, p in truth["owner"].items() if i not in shared and i in assigned}
    else:
        persons = set(emitted)
        owner = {i: p for i, p in truth["owner"].items() if i not in shared and p in persons}
    unplaced = [i for i in owner if i not in assigned]
    found = {**{i: f"unplaced:{i}" for i in unplaced}, **assigned}
    by_truth: dict[int, list[str]] = {}
    by_c360: dict[str, list[str]] = {}
    for ident, person in owner.items():
        by_truth.setdefault(person, []).append(ident)
        by_c360.setdefault(found[ident], []).append(ident)

    def pairs(groups) -> int:
        return sum(len(g) * (len(g) - 1) // 2 for g in groups)

    true_pairs = pairs(by_truth.values())
    found_pairs = pairs(by_c360.values())
    correct = 0
    for members in by_c360.values():
        counts: dict[int, int] = {}
        for ident in members:
            counts[owner[ident]] = counts.get(owner[ident], 0) + 1
        correct += pairs([[0] * n for n in counts.values()])
    seen_shared = [ident for ident in shared if ident in assigned]
    shared_alone = sum(
        1 for ident in seen_shared if sum(1 for v in assigned.values() if v == assigned[ident]) == 1
    )
    split = [g for g in (_by(m, found) for m in by_truth.values()) if len(g) > 1]
    merged = [g for g in (_by(m, owner) for m in by_c360.values()) if len(g) > 1]
    return {
        "precision": 1.0 if found_pairs == 0 else correct / found_pairs,
        "recall": 1.0 if true_pairs == 0 else correct / true_pairs,
        "pairs_true": true_pairs,
        "pairs_found": found_pairs,
        "shared_identifiers": len(seen_shared),
        "shared_kept_apart": shared_alone,
        "identifiers_scored": len(owner),
        "unplaced": len(unplaced),
        "persons_true": len(by_truth),
        "persons_found": len(by_c360),
        "log2_persons_ratio": round(math.log2(max(1, len(by_c360)) / max(1, len(by_truth))), 3),
        "split": split[:MISTAKES_SHOWN],
        "merged": merged[:MISTAKES_SHOWN],
    }


MISTAKES_SHOWN = 5
"""Mistakes of each kind a score names (all of them are counted in the pairs)."""


def _by(identifiers: list[str], person_of: dict[str, Any]) -> dict[str, list[str]]:
    """The identifiers grouped by the person ``person_of`` gives them (as strings)."""
    out: dict[str, list[str]] = {}
    for ident in sorted(identifiers):
        out.setdefault(str(person_of[ident]), []).append(ident)
    return out
