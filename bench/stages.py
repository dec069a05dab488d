"""Per-event cost of each pure stage on the real state layer, with worker-sized batches.

Usage: python bench/stages.py [--events N] [--batch B] [--profile STAGE]
Ingests a synthetic population (stream.population), then feeds the route stage's
input, and the profile stage's events, in records of B messages through
RocksDB transactions committed per record, as the worker does.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

import msgspec

from stream.core.aggregate import Aggregator
from stream.core.ingest import Ingest
from stream.core.messages import Event, person_of
from stream.core.profile import ProfileStage
from stream.core.route import RouteStage
from stream.core.rules import DEFAULT, Compiled
from stream.core.state import Collected
from stream.population import Population
from stream.shell.store import Txn, open_db


def run(process, messages: list, batch: int, db) -> float:
    start = time.perf_counter()
    for i in range(0, len(messages), batch):
        txn = Txn(db)
        process(txn, messages[i : i + batch], Collected())
        txn.commit()
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--profile", choices=["route", "profile"])
    args = parser.parse_args()
    rules = Compiled(DEFAULT)
    pop = Population(max(1000, args.events // 30), seed=3)
    ingest = Ingest(rules)
    facts = []
    for suffix, _key, payload in pop.events(args.events):
        if suffix in ("prices", "labels"):
            continue
        facts.extend(ingest.record(suffix, msgspec.json.encode(payload)).facts)
    events = [Event(person_of(f.ident), 0, f) for f in facts]
    with tempfile.TemporaryDirectory() as tmp:
        stages = {
            "route": (RouteStage(rules).process, facts),
            "profile": (ProfileStage(Aggregator(DEFAULT)).process, events),
        }
        for name, (process, messages) in stages.items():
            db = open_db(f"{tmp}/{name}")
            if args.profile == name:
                profiler = cProfile.Profile()
                profiler.enable()
            seconds = run(process, messages, args.batch, db)
            if args.profile == name:
                profiler.disable()
                pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
            cost = seconds / len(messages) * 1e6
            print(f"{name}: {cost:.1f} us per message ({len(messages)} in batches of {args.batch})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
