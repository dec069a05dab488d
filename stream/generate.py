"""``c360 generate``: a synthetic population as replay JSONL, or produced to Kafka.

The events go to ``--out`` (one ``{"topic", "key", "value"}`` line each, the format
``c360 replay`` reads) or, with ``--produce``, to the input topics in batched records
(as the connectors send them) at ``--rate`` events/s. The ground truth (identifier →
synthetic person, and the identifiers shared between persons) goes to ``--truth``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import TextIO

from stream.population import Population
from stream.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--persons", type=int, default=1000, help="synthetic persons (1000)")
    parser.add_argument("--events", type=int, default=20000, help="activity events (20000)")
    parser.add_argument("--seed", type=int, default=7, help="random seed (7)")
    parser.add_argument("--out", type=Path, help="write replay JSONL here ('-' = stdout)")
    parser.add_argument("--truth", type=Path, help="write the ground truth JSON here")
    parser.add_argument("--produce", action="store_true", help="produce to Kafka")
    parser.add_argument("--rate", type=float, default=None, help="events/s when producing")
    parser.add_argument("--batch", type=int, default=200, help="events per Kafka record (200)")


def write_jsonl(population: Population, events: int, out: TextIO) -> int:
    n = 0
    for topic, key, value in population.events(events):
        out.write(json.dumps({"topic": topic, "key": key, "value": value}) + "\n")
        n += 1
    return n


def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.persons < 1 or args.events < 0 or args.batch < 1:
        print("c360 generate: --persons and --batch must be ≥ 1, --events ≥ 0", file=sys.stderr)
        return 2
    if not args.produce and args.out is None:
        print("c360 generate: give --out FILE (or -) or --produce", file=sys.stderr)
        return 2
    population = Population(args.persons, seed=args.seed)
    if args.truth is not None:
        args.truth.write_text(json.dumps(population.truth()))
    if args.produce:
        from stream import admin
        from stream.loadgen import batched, produce

        asyncio.run(admin.ensure_topics(settings))
        records = batched(settings, population.events(args.events), batch=args.batch)
        started = time.time()
        _, sent = asyncio.run(produce(settings, records, rate=args.rate))
        print(f"produced {sent} events in {len(records)} records in {time.time() - started:.1f}s")
        return 0
    if str(args.out) == "-":
        n = write_jsonl(population, args.events, sys.stdout)
    else:
        with open(args.out, "w") as out:
            n = write_jsonl(population, args.events, out)
    print(f"wrote {n} events", file=sys.stderr)
    return 0
