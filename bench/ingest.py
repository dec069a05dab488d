"""Per-event cost of ingest: decode + validate + normalize (target: median <= 10 us).

Usage: python bench/ingest.py [--events N] [--repeats R]
Feeds the schema examples (web events, chain events, forms, socials, tickets,
holdings) with fresh ids through stream.core.ingest, in batched records of 100
and as single-event records, and prints the median per-event cost.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from stream.core.ingest import Ingest  # noqa: E402
from stream.core.rules import DEFAULT, Compiled  # noqa: E402

TOPICS = {
    "web-event": "web.events",
    "chain-event": "chain.events",
    "form-response": "forms",
    "social-verification": "socials",
    "support-ticket": "support",
    "holding-snapshot": "chain.holdings",
}
# A traffic mix like a Web3 product's: mostly web and chain events.
WEIGHTS = {
    "web.events": 70,
    "chain.events": 22,
    "forms": 2,
    "socials": 2,
    "support": 2,
    "chain.holdings": 2,
}


def workload(n: int) -> dict[str, list[dict]]:
    by_topic: dict[str, list[dict]] = {}
    for name, topic in TOPICS.items():
        examples = [
            json.loads(p.read_text())
            for p in sorted((ROOT / "schemas/examples" / name).glob("*.json"))
        ]
        count = n * WEIGHTS[topic] // 100
        events = []
        for i in range(count):
            e = dict(examples[i % len(examples)])
            for key in ("messageId", "event_id", "response_id", "verification_id"):
                if key in e:
                    e[key] = f"{e[key]}-{i}"
            if "anonymousId" in e:
                e["anonymousId"] = f"device-{i % 5000}"
            events.append(e)
        by_topic[topic] = events
    return by_topic


def run(ingest: Ingest, records: list[tuple[str, bytes]]) -> tuple[float, int]:
    start = time.perf_counter()
    events = 0
    for topic, value in records:
        out = ingest.record(topic, value)
        events += out.events
        assert not out.rejections, out.rejections[0]
    return time.perf_counter() - start, events


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    ingest = Ingest(Compiled(DEFAULT))
    data = workload(args.events)
    batched = [
        (topic, json.dumps(events[i : i + 100]).encode())
        for topic, events in data.items()
        for i in range(0, len(events), 100)
    ]
    single = [(topic, json.dumps(e).encode()) for topic, events in data.items() for e in events]
    for label, records in (("batched records of 100", batched), ("single-event records", single)):
        costs = []
        for _ in range(args.repeats):
            seconds, events = run(ingest, records)
            costs.append(seconds / events * 1e6)
        print(
            f"ingest, {label}: median {statistics.median(costs):.2f} us/event "
            f"(min {min(costs):.2f}, {events} events x {args.repeats})"
        )
    print("target: <= 10 us/event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
