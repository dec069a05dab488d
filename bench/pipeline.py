"""CPU cost of the whole pure pipeline per input event, in process, with worker-sized groups.

Usage: python bench/pipeline.py [--events N] [--persons P] [--group G] [--profile [COLUMN]]
(``--persons`` N/15 gives the link-heavy mix of a population that is all new)

The ceiling the core puts on a worker, without Kafka or faust: a synthetic population
(stream.population) in records of 200 events goes through ingest, then the route,
link, profile and channel stages in rounds, each stage partition taking up to G
queued records' worth of messages at a time on the real state layer (a
:class:`~stream.shell.store.Txn` over rocksdict, committed in one WriteBatch per
group) — breadth first, as a worker under load does. Each stage partition's group
writes to the worker's own Outbox, so messages between stages pass through the
internal records' encoding, and output records through JSON, as on Kafka;
the collector runs with the worker's thresholds (stream.cli.tune_gc).
Prints microseconds per input event by stage, and the events/s one core could do.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

import msgspec
import rocksdict
from run import sign_ins

from stream import topics
from stream.cli import tune_gc
from stream.core.aggregate import Aggregator
from stream.core.channel import ChannelStage
from stream.core.ingest import Ingest
from stream.core.link import LinkStage
from stream.core.messages import DECODERS
from stream.core.profile import ProfileStage
from stream.core.route import RouteStage
from stream.core.rules import DEFAULT, Compiled
from stream.loadgen import UNBATCHED
from stream.population import Population
from stream.settings import Settings
from stream.shell.outbox import Outbox
from stream.shell.store import Txn, open_db

_encode = msgspec.json.Encoder().encode
ORDER = ("route", "link", "profile", "channel")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=30_000)
    parser.add_argument(
        "--persons", type=int, help="default: events / 100, the mix of bench/run.py's throughput"
    )
    parser.add_argument(
        "--links", action="store_true", help="fresh verified sign-ins (bench/run.py's link phase)"
    )
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--group", type=int, default=500, help="records per stage group")
    parser.add_argument(
        "--profile", nargs="?", const="tottime", help="cProfile the run, sorted by this column"
    )
    parser.add_argument("--sizes", action="store_true", help="print the state's sizes by key kind")
    args = parser.parse_args()
    rules = Compiled(DEFAULT)
    aggregator = Aggregator(DEFAULT)
    process = {
        "route": RouteStage(rules).process,
        "link": LinkStage(rules).process,
        "profile": ProfileStage(aggregator).process,
        "channel": ChannelStage().process,
    }
    persons = args.persons or max(1, args.events // 100)
    pop = Population(persons, seed=7, end=int(time.time() * 1000))
    by_topic: dict[str, list[bytes]] = defaultdict(list)
    records: list[tuple[str, bytes]] = []
    events = 0
    source = sign_ins(args.events, int(time.time() * 1000), "lnk") if args.links else None
    for suffix, _key, payload in source or pop.events(args.events):
        if suffix in UNBATCHED:
            continue
        events += 1
        by_topic[suffix].append(_encode(payload))
        if len(by_topic[suffix]) == 200:
            records.append((suffix, b"[" + b",".join(by_topic.pop(suffix)) + b"]"))
    records += [(s, b"[" + b",".join(items) + b"]") for s, items in by_topic.items()]

    tune_gc()  # as the worker runs
    settings = Settings.from_env({}, partitions=args.partitions)
    stage_of = {spec.name(settings): spec.suffix for spec in topics.ALL}
    queues: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    outputs = 0

    def flush(outbox: Outbox) -> None:
        """Queue the internal records as the stages' input; count the output records."""
        nonlocal outputs
        destinations = 0
        for (name, partition), values in outbox.internal_records():
            queues[(stage_of[name], partition)].extend(values)
            destinations += 1
        outputs += len(outbox) - destinations

    spent: dict[str, float] = defaultdict(float)
    messages: dict[str, int] = defaultdict(int)
    profiler = cProfile.Profile() if args.profile else None
    with tempfile.TemporaryDirectory() as tmp:
        dbs: dict[tuple[str, int], rocksdict.Rdict] = {}
        if profiler:
            profiler.enable()
        started = time.process_time()
        ingest = Ingest(rules)
        for start in range(0, len(records), args.group):
            outbox = Outbox(settings)
            for seq, (suffix, value) in enumerate(records[start : start + args.group], start):
                outbox.begin("ingest", seq)
                for fact in ingest.record(suffix, value).facts:
                    outbox.internal(topics.ROUTE, fact.ident, fact)
            flush(outbox)
        spent["ingest"] = time.process_time() - started
        seq = 0
        while any(queues.values()):
            for stage in ORDER:
                for (name, partition), queue in list(queues.items()):
                    if name != stage or not queue:
                        continue
                    t0 = time.process_time()
                    taken, queues[(name, partition)] = queue[: args.group], queue[args.group :]
                    db = dbs.get((name, partition))
                    if db is None:
                        db = dbs[(name, partition)] = open_db(f"{tmp}/{name}-{partition}", settings)
                    txn = Txn(db)
                    outbox = Outbox(settings)
                    for record in taken:
                        seq += 1
                        outbox.begin(f"{name}:{partition}", seq)
                        items = [m for _, _, ms in DECODERS[name].decode(record) for m in ms]
                        messages[name] += len(items)
                        process[name](txn, items, outbox)
                    flush(outbox)
                    txn.commit()
                    spent[name] += time.process_time() - t0
        total = time.process_time() - started
        if profiler:
            profiler.disable()
        sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for (name, _), db in dbs.items():
            for key, value in db.items():
                kind = sizes[f"{name} {key[: key.find(b':') + 1].decode() or key.decode()}"]
                kind[0] += 1
                kind[1] += len(value)
            db.close()
    print(f"{events:,} events in {len(records)} records; {outputs:,} output records")
    for name in ("ingest", *ORDER):
        n = messages.get(name, events)
        print(
            f"  {name:8} {spent[name] / events * 1e6:7.1f} us/event "
            f"({n:,} messages, {spent[name] / max(n, 1) * 1e6:.1f} us each)"
        )
    print(f"  total    {total / events * 1e6:7.1f} us/event = {events / total:,.0f} events/s")
    if args.sizes:
        for kind, (n, size) in sorted(sizes.items(), key=lambda kv: -kv[1][1]):
            print(f"  state {kind:14} {n:8,} keys {size / n:8.0f} bytes on average")
    if profiler:
        pstats.Stats(profiler).sort_stats(args.profile).print_stats(45)
    return 0


if __name__ == "__main__":
    sys.exit(main())
