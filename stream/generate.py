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
    from stream.cli import seed

    parser.add_argument("--persons", type=int, default=1000, help="synthetic persons (1000)")
    parser.add_argument("--events", type=int, default=20000, help="activity events (20000)")
    parser.add_argument("--seed", type=seed, default=7, help="random seed (7)")
    parser.add_argument("--out", type=Path, help="write replay JSONL here ('-' = stdout)")
    parser.add_argument("--truth", type=Path, help="write the ground truth JSON here")
    parser.add_argument("--produce", action="store_true", help="produce to Kafka")
    parser.add_argument(
        "--rate", type=float, default=None, help="events/s when producing (default: no limit)"
    )
    parser.add_argument(
        "--batch",
        type=int,
        default=None,
        help="events per Kafka record (200, or C360_BATCH_MAX_EVENTS when lower)",
    )


def write_jsonl(population: Population, events: int, out: TextIO) -> int:
    n = 0
    for topic, key, value in population.events(events):
        out.write(json.dumps({"topic": topic, "key": key, "value": value}) + "\n")
        n += 1
    return n


def refused(args: argparse.Namespace, settings: Settings) -> str | None:
    """Why these arguments cannot be run, or None."""
    if args.persons < 1 or args.events < 0 or (args.batch is not None and args.batch < 1):
        return "--persons and --batch must be ≥ 1, --events ≥ 0"
    if args.batch is not None and args.batch > settings.batch_max_events:
        return (
            f"--batch {args.batch}: a worker dead-letters records of over "
            f"{settings.batch_max_events} events (C360_BATCH_MAX_EVENTS)"
        )
    if args.rate is not None and not args.rate > 0:  # also NaN
        return f"--rate {args.rate}: events per second must be > 0 (leave it out: no limit)"
    if args.produce == (args.out is not None):
        return "give either --out FILE (or -) or --produce"
    if not args.produce and (args.rate is not None or args.batch is not None):
        return "--rate and --batch are for --produce"
    for name, path in (("--out", args.out), ("--truth", args.truth)):
        if path is not None and str(path) != "-" and not path.parent.is_dir():
            return f"{name} {path}: no such directory {path.parent}"
        if path is not None and path.is_dir():
            return f"{name} {path} is a directory"
    if args.truth is not None and str(args.truth) == "-":
        return "--truth needs a file (the events may be on stdout)"
    if (
        args.out is not None
        and args.truth is not None
        and str(args.out) != "-"
        and args.out.resolve() == args.truth.resolve()
    ):
        return (
            f"--out and --truth are the same file {args.out} (the truth would replace the events)"
        )
    return None


def run(args: argparse.Namespace, settings: Settings) -> int:
    problem = refused(args, settings)
    if problem is not None:
        print(f"c360 generate: {problem}", file=sys.stderr)
        return 2
    population = Population(args.persons, seed=args.seed)
    try:
        if args.truth is not None and not args.truth.exists():
            args.truth.touch()  # a path that cannot be written fails before the work
            args.truth.unlink()
        if args.produce:
            rc = produce_population(population, args, settings)
        else:
            if str(args.out) == "-":
                n = write_jsonl(population, args.events, sys.stdout)
            else:
                with open(args.out, "w") as out:
                    n = write_jsonl(population, args.events, out)
            print(f"wrote {n} events", file=sys.stderr)
            rc = 0
        if args.truth is not None and rc == 0:  # after the events: it names who they carried
            args.truth.write_text(json.dumps(population.truth()))
    except BrokenPipeError:
        raise  # stdout's reader stopped early: c360's main ends quietly
    except OSError as exc:
        print(f"c360 generate: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    return rc


def produce_population(population: Population, args: argparse.Namespace, settings: Settings) -> int:
    from stream import admin
    from stream.loadgen import batched, produce

    try:
        asyncio.run(admin.ensure_topics(settings))
        records = batched(settings, population.events(args.events), batch=args.batch)
        started = time.time()
        _, sent = asyncio.run(produce(settings, records, rate=args.rate))
    except admin.TopicProblem as exc:  # the broker answered
        print(f"c360 generate: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # aiokafka's connection errors
        print(
            f"c360 generate: cannot reach Kafka at {settings.kafka_bootstrap}: {exc!r}",
            file=sys.stderr,
        )
        return 1
    print(f"produced {sent} events in {len(records)} records in {time.time() - started:.1f}s")
    return 0
