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
the collector runs as the worker's does (stream.cli.tune_gc).
Prints microseconds per input event by stage, and the events/s one core could do.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1]))

import msgspec
import rocksdict
from harness import sign_ins

from stream import topics
from stream.cli import GC_THRESHOLDS, tune_gc
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


@dataclass
class Measured:
    """One in-process run: CPU seconds by stage, messages by stage, state sizes."""

    events: int
    records: int
    outputs: int
    seconds: float  # all stages, ingest included
    spent: dict[str, float] = field(default_factory=dict)
    messages: dict[str, int] = field(default_factory=dict)
    sizes: dict[str, list[int]] = field(default_factory=dict)  # key kind: [keys, bytes]

    @property
    def us_per_event(self) -> float:
        return self.seconds / self.events * 1e6


def measure(
    events: int,
    persons: int | None = None,
    *,
    links: bool = False,
    partitions: int = 4,
    group: int = 500,
    profiler: cProfile.Profile | None = None,
) -> Measured:
    """Run ``events`` of a population of ``persons`` (default: events / 100, the mix of
    bench/run.py's throughput), or fresh sign-ins (``links``), through the pure
    pipeline (see the module doc). The collector runs with the worker's thresholds
    for the run, and with this process's own again afterwards (bench/run.py's
    ``core_us_per_event`` is this, before its worker starts)."""
    rules = Compiled(DEFAULT)
    aggregator = Aggregator(DEFAULT)
    process = {
        "route": RouteStage(rules).process,
        "link": LinkStage(rules).process,
        "profile": ProfileStage(aggregator).process,
        "channel": ChannelStage().process,
    }
    now = int(time.time() * 1000)
    pop = Population(persons or max(1, events // 100), seed=7, end=now)
    by_topic: dict[str, list[bytes]] = defaultdict(list)
    records: list[tuple[str, bytes]] = []
    counted = 0
    for suffix, _key, payload in sign_ins(events, now, "lnk") if links else pop.events(events):
        if suffix in UNBATCHED:
            continue
        counted += 1
        by_topic[suffix].append(_encode(payload))
        if len(by_topic[suffix]) == 200:
            records.append((suffix, b"[" + b",".join(by_topic.pop(suffix)) + b"]"))
    records += [(s, b"[" + b",".join(items) + b"]") for s, items in by_topic.items()]

    thresholds = gc.get_threshold()
    gc.set_threshold(*GC_THRESHOLDS)  # as the worker runs
    settings = Settings.from_env({}, partitions=partitions)
    stage_of = {spec.name(settings): spec.suffix for spec in topics.ALL}
    queues: dict[tuple[str, int], list[bytes]] = defaultdict(list)
    run = Measured(counted, len(records), 0, 0.0, defaultdict(float), defaultdict(int))

    def flush(outbox: Outbox) -> None:
        """Queue the internal records as the stages' input; count the output records."""
        destinations = 0
        for (name, partition), values in outbox.internal_records():
            queues[(stage_of[name], partition)].extend(values)
            destinations += 1
        run.outputs += len(outbox) - destinations

    seq = 0

    def apply_group(name: str, partition: int, db: rocksdict.Rdict) -> None:
        """One stage partition's group: up to ``group`` queued records, one commit."""
        nonlocal seq
        t0 = time.process_time()
        queue = queues[(name, partition)]
        taken, queues[(name, partition)] = queue[:group], queue[group:]
        txn = Txn(db)
        outbox = Outbox(settings)
        for record in taken:
            seq += 1
            outbox.begin(f"{name}:{partition}", seq)
            items = [m for _, _, ms in DECODERS[name].decode(record) for m in ms]
            run.messages[name] += len(items)
            process[name](txn, items, outbox)
        flush(outbox)
        txn.commit()
        run.spent[name] += time.process_time() - t0

    try:
        with tempfile.TemporaryDirectory() as tmp:
            dbs: dict[tuple[str, int], rocksdict.Rdict] = {}
            if profiler:
                profiler.enable()
            started = time.process_time()
            ingest = Ingest(rules)
            for start in range(0, len(records), group):
                outbox = Outbox(settings)
                for n, (suffix, value) in enumerate(records[start : start + group], start):
                    outbox.begin("ingest", n)
                    for fact in ingest.record(suffix, value).facts:
                        outbox.internal(topics.ROUTE, fact.ident, fact)
                flush(outbox)
            run.spent["ingest"] = time.process_time() - started
            while any(queues.values()):
                for stage in ORDER:
                    for name, partition in [k for k, q in queues.items() if k[0] == stage and q]:
                        db = dbs.get((name, partition))
                        if db is None:
                            db = dbs[(name, partition)] = open_db(
                                f"{tmp}/{name}-{partition}", settings
                            )
                        apply_group(name, partition, db)
            run.seconds = time.process_time() - started
            if profiler:
                profiler.disable()
            run.sizes = _state_sizes(dbs)
    finally:
        gc.set_threshold(*thresholds)
    return run


def _state_sizes(dbs: dict[tuple[str, int], rocksdict.Rdict]) -> dict[str, list[int]]:
    """[keys, bytes] by stage and key kind (``profile p:``), closing each database."""
    sizes: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for (name, _), db in dbs.items():
        for key, value in db.items():
            kind = sizes[f"{name} {key[: key.find(b':') + 1].decode() or key.decode()}"]
            kind[0] += 1
            kind[1] += len(value)
        db.close()
    return dict(sizes)


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
    profiler = cProfile.Profile() if args.profile else None
    tune_gc()  # the worker's collector: nothing start-up built is scanned again
    run = measure(
        args.events,
        args.persons,
        links=args.links,
        partitions=args.partitions,
        group=args.group,
        profiler=profiler,
    )
    print(f"{run.events:,} events in {run.records} records; {run.outputs:,} output records")
    for name in ("ingest", *ORDER):
        n = run.messages.get(name, run.events)
        spent = run.spent.get(name, 0.0)
        print(
            f"  {name:8} {spent / run.events * 1e6:7.1f} us/event "
            f"({n:,} messages, {spent / max(n, 1) * 1e6:.1f} us each)"
        )
    print(f"  total    {run.us_per_event:7.1f} us/event = {run.events / run.seconds:,.0f} events/s")
    if args.sizes:
        for kind, (n, size) in sorted(run.sizes.items(), key=lambda kv: -kv[1][1]):
            print(f"  state {kind:14} {n:8,} keys {size / n:8.0f} bytes on average")
    if profiler:
        pstats.Stats(profiler).sort_stats(args.profile).print_stats(45)
    return 0


if __name__ == "__main__":
    sys.exit(main())
