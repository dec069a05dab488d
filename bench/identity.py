"""Speed of the pure identity stages, in process, on the real state layer.

Usage: python bench/identity.py [--links N] [--events N]

- link step: link events per second (target >= 10,000/s): wallet connects, SIWE
  sign-ins and identifies over a population of persons with several devices and
  wallets, through LinkStage over a RocksDB (rocksdict) transaction committed
  every 500 messages, as the worker does;
- route step: microseconds per single-identifier fact through RouteStage
  (duplicate check, person lookup, forwarding), same state layer.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))


from stream.core.facts import Fact
from stream.core.link import LinkStage
from stream.core.route import RouteStage
from stream.core.rules import DEFAULT, Compiled
from stream.core.state import Collected
from stream.shell.store import Txn, open_db

BATCH = 500


def population(n_persons: int, rnd: random.Random):
    persons = []
    for p in range(n_persons):
        devices = [f"anon:dev-{p}-{i}" for i in range(rnd.randint(1, 4))]
        wallets = [f"wallet:0x{(p * 8 + i):040x}" for i in range(rnd.randint(1, 5))]
        persons.append((devices, wallets, f"user:u{p}"))
    return persons


def link_facts(n: int, rnd: random.Random) -> list[Fact]:
    people = population(max(1, n // 6), rnd)
    facts = []
    for i in range(n):
        devices, wallets, user = rnd.choice(people)
        device = rnd.choice(devices)
        kind = rnd.random()
        if kind < 0.45:
            links = ((rnd.choice(wallets), "wallet_connect"),)
        elif kind < 0.8:
            links = ((rnd.choice(wallets), "siwe"),)
        else:
            links = ((device, "identify_server"),)
            device = user
        facts.append(
            Fact(f"l{i}", device, "siwe", 1_790_000_000_000 + i, "web.events", links=links)
        )
    return facts


def run_stage(stage, messages, db) -> float:
    start = time.perf_counter()
    for i in range(0, len(messages), BATCH):
        txn = Txn(db)
        stage.process(txn, messages[i : i + BATCH], Collected())
        txn.commit()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--links", type=int, default=60_000)
    parser.add_argument("--events", type=int, default=200_000)
    args = parser.parse_args()
    rnd = random.Random(42)
    rules = Compiled(DEFAULT)
    with tempfile.TemporaryDirectory() as tmp:
        facts = link_facts(args.links, rnd)
        stage = LinkStage(rules)
        seconds = run_stage(stage, facts, open_db(f"{tmp}/link"))
        links = stage.stats["links"]
        print(
            f"link step: {links / seconds:,.0f} link events/s ({links} links, "
            f"{stage.stats['merges']} merges, {stage.stats['refused']} refused, {seconds:.2f}s; "
            "target >= 10,000/s)"
        )
        route = RouteStage(rules)
        people = population(20_000, rnd)
        singles = []
        for i in range(args.events):
            devices, wallets, _ = rnd.choice(people)
            ident = rnd.choice(devices + wallets)
            singles.append(Fact(f"e{i}", ident, "page", 1_790_000_000_000 + i * 1000, "web.events"))
        seconds = run_stage(route, singles, open_db(f"{tmp}/route"))
        print(
            f"route step: {seconds / len(singles) * 1e6:.2f} us per fact "
            f"({len(singles)} single-identifier facts, {len(singles) / seconds:,.0f}/s)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
