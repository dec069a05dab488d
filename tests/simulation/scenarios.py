"""Random event scenarios for the simulator, with what the reference needs to know.

Each generated input is a real payload (JSON bytes for an input topic) plus the
facts it means in plain terms — (fact id, primary identifier, linked
identifiers) — written here independently of the core's ingest.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field

from stream.sim import Input


@dataclass
class Expected:
    """A fact as the reference sees it."""

    id: str
    primary: str
    links: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    inputs: list[Input]
    facts: list[Expected]  # in input order, duplicates included


def wallet(i: int) -> str:
    return f"0x{(0xA11CE000 + i):040x}"


def ts(minute: int) -> str:
    day, rest = divmod(minute, 1440)
    return f"2026-10-{1 + day % 28:02d}T{rest // 60:02d}:{rest % 60:02d}:00Z"


class Generator:
    """Builds scenarios over a population of devices, users, wallets and emails."""

    def __init__(self, rnd: random.Random, devices: int, users: int, wallets: int, emails: int):
        self.r = rnd
        self.devices, self.users, self.wallets, self.emails = devices, users, wallets, emails
        self.n = 0
        self.inputs: list[Input] = []
        self.facts: list[Expected] = []
        self.labelled: list[int] = []

    def _id(self) -> str:
        self.n += 1
        return f"m{self.n}"

    def _web(self, event: dict, facts: list[Expected]) -> None:
        event.setdefault("timestamp", ts(self.r.randrange(0, 40 * 1440)))
        self.inputs.append(Input("web.events", json.dumps(event).encode()))
        self.facts.extend(facts)

    def page(self) -> None:
        d = self.r.randrange(self.devices)
        mid = self._id()
        if self.r.random() < 0.3:
            u = self.r.randrange(self.users)
            self._web(
                {"type": "page", "messageId": mid, "anonymousId": f"d{d}", "userId": f"u{u}"},
                [Expected(mid, f"user:u{u}", [f"anon:d{d}"])],
            )
        else:
            self._web(
                {"type": "page", "messageId": mid, "anonymousId": f"d{d}"},
                [Expected(mid, f"anon:d{d}")],
            )

    def connect(self, verified: bool) -> None:
        d, w = self.r.randrange(self.devices), self.r.randrange(self.wallets)
        mid = self._id()
        address = wallet(w)
        props = {"address": address, "chainId": 1}
        event = {"type": "track", "messageId": mid, "anonymousId": f"d{d}"}
        if verified:
            props.update(message="sign in", signature="0x00")
            event.update(
                event="SIWE Sign In",
                context={"c360": {"siwe": {"verified": True, "address": address}}},
            )
        else:
            event["event"] = "Wallet Connected"
        event["properties"] = props
        self._web(event, [Expected(mid, f"anon:d{d}", [f"wallet:{address}"])])

    def identify(self) -> None:
        d, u = self.r.randrange(self.devices), self.r.randrange(self.users)
        mid = self._id()
        links = [f"anon:d{d}"]
        event = {
            "type": "identify",
            "messageId": mid,
            "anonymousId": f"d{d}",
            "userId": f"u{u}",
            "context": {"c360": {"auth": "server"}},
        }
        if self.r.random() < 0.5:
            e = self.r.randrange(self.emails)
            event["traits"] = {"email": f"person{e}@c360.dev"}
            links.append(f"email:person{e}@c360.dev")
        self._web(event, [Expected(mid, f"user:u{u}", links)])

    def transfer(self) -> None:
        a, b = self.r.randrange(self.wallets), self.r.randrange(self.wallets)
        if a == b:
            return
        n = self.n = self.n + 1
        block_hash = f"0x{n:064x}"
        event = {
            "event_id": f"1:{block_hash}:0",
            "op": "upsert",
            "kind": "log",
            "chain_id": 1,
            "block_number": n,
            "block_hash": block_hash,
            "block_timestamp": 1_790_000_000 + n * 12,
            "tx_hash": f"0x{n:064x}",
            "log_index": 0,
            "address": wallet(999),
            "decoded": {"standard": "erc20", "from": wallet(a), "to": wallet(b), "value": 10},
        }
        self.inputs.append(Input("chain.events", json.dumps(event).encode()))
        eid = event["event_id"]
        self.facts.append(Expected(f"{eid}:from", f"wallet:{wallet(a)}"))
        self.facts.append(Expected(f"{eid}:to", f"wallet:{wallet(b)}"))

    def label(self) -> None:
        w = self.r.randrange(self.wallets)
        self.labelled.append(w)
        body = {
            "chain_id": 1,
            "address": wallet(w),
            "labels": [{"label": "hot wallet", "category": "exchange"}],
        }
        self.inputs.append(Input("labels", json.dumps(body).encode(), key=f"1:{wallet(w)}"))

    def unlabel(self) -> None:
        """A label corrected: removed, or replaced by a category that does not block."""
        if not self.labelled:
            return
        w = self.r.choice(self.labelled)
        fixed = [] if self.r.random() < 0.5 else [{"label": "dapp", "category": "defi"}]
        body = {"chain_id": 1, "address": wallet(w), "labels": fixed}
        self.inputs.append(Input("labels", json.dumps(body).encode(), key=f"1:{wallet(w)}"))

    def duplicate(self) -> None:
        if not self.inputs:
            return
        i = self.r.randrange(len(self.inputs))
        item = self.inputs[i]
        if item.topic == "labels":
            return
        self.inputs.append(item)  # the reference dedupes by fact id

    def build(self, events: int, *, labels: bool = False) -> Scenario:
        steps = [self.page] * 4 + [
            lambda: self.connect(False),
            lambda: self.connect(True),
            self.identify,
            self.transfer,
            self.duplicate,
        ]
        if labels:
            steps += [self.label, self.unlabel]
        for _ in range(events):
            self.r.choice(steps)()
        by_input = self.facts
        return Scenario(self.inputs, by_input)


def scenario(seed: int, events: int = 60, *, labels: bool = False, size: int = 8) -> Scenario:
    rnd = random.Random(seed)
    return Generator(
        rnd, devices=size, users=max(2, size // 2), wallets=size, emails=size // 2
    ).build(events, labels=labels)
