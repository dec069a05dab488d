"""The ``c360`` command: the single CLI entry of the project."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Coroutine
from typing import Any

from stream.settings import OTHER_ENV, Settings, SettingsError, unknown_env


def positive(raw: str) -> int:
    """An argparse type: an integer ≥ 1."""
    value = int(raw)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{raw} is not ≥ 1")
    return value


def seed(raw: str) -> int:
    """An argparse type: a random seed, an integer ≥ 0 (Python seeds with the absolute
    value, so -7 would silently repeat 7's run)."""
    value = int(raw)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{raw} is not ≥ 0 (a seed and its negative give one run)")
    return value


def event_time(raw: str) -> int:
    """An argparse type: epoch milliseconds between 2000 and 2100 (what ingest accepts)."""
    from stream.core.ingest import MAX_EVENT_MS, MIN_EVENT_MS

    value = int(raw)
    if not MIN_EVENT_MS <= value < MAX_EVENT_MS:
        raise argparse.ArgumentTypeError(
            f"{raw} is not epoch milliseconds between 2000 and 2100 (a partition's clock "
            "never moves back: a tick in the far future cannot be undone)"
        )
    return value


SECRET_SETTINGS = frozenset({"api_key"})
"""Settings ``c360 settings`` does not print."""

FUTURE_TICK_MS = 3_600_000
"""How far ahead of the clock ``c360 tick --now`` goes without ``--future``."""


def kafka_failed(settings: Settings, exc: BaseException) -> int:
    """Say that Kafka could not be reached (or refused), and return the exit code."""
    print(f"c360: cannot reach Kafka at {settings.kafka_bootstrap}: {exc!r}", file=sys.stderr)
    return 1


def on_kafka(
    settings: Settings, work: Coroutine[Any, Any, Any], answered: tuple[type[Exception], ...]
) -> tuple[Any, int | None]:
    """Run ``work``: (its result, None), or (None, exit code 1) once said what failed — an
    error of ``answered`` (the broker answered: its own words), else Kafka out of reach."""
    try:
        return asyncio.run(work), None
    except answered as exc:
        print(f"c360: {exc}", file=sys.stderr)
        return None, 1
    except Exception as exc:  # aiokafka's connection errors
        return None, kafka_failed(settings, exc)


def main(argv: list[str] | None = None) -> int:
    """Run a command; its exit code. A reader of stdout that stops early (``c360 replay
    export.jsonl | head``) cuts the output short: exit 1, without a traceback."""
    try:
        code = run_command(argv)
        sys.stdout.flush()  # a reader gone shows here, not as an error ignored at exit
        return code
    except BrokenPipeError:
        # nothing more can be written there, and Python flushes stdout again at exit
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1


def run_command(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(
        prog="c360",
        description="c360, a streaming Customer 360 for Web3. Every command reads the C360_* "
        "settings of the environment (c360 settings prints them; docs/settings.md).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="run a stream worker (Faust) until interrupted")
    from stream import demo

    demo.add_arguments(
        sub.add_parser("demo", help="start a worker and show c360 at work (see `make demo`)")
    )
    from connectors import cli as connectors_cli

    p_connect = sub.add_parser("connect", help="run a connector (chain, web, support)")
    connectors_cli.add_parsers(p_connect)
    p_topics = sub.add_parser("topics", help="create the declared topics; check partition counts")
    p_topics.add_argument("--list", action="store_true", help="print the topics table and exit")
    from stream import generate

    generate.add_arguments(
        sub.add_parser("generate", help="a synthetic population: replay JSONL or to Kafka")
    )
    p_replay = sub.add_parser("replay", help="run events through the simulator; print persons")
    p_replay.add_argument("events", help="JSONL file ({topic, key, value} per line), or -")
    p_replay.add_argument(
        "--partitions", type=positive, default=4, help="route and profile partitions (4)"
    )
    p_replay.add_argument(
        "--seed", type=seed, default=0, help="seed of the simulated delivery order (0)"
    )
    p_replay.add_argument(
        "--rules", help="identity rules file (JSON) to try (default: C360_RULES_FILE's)"
    )
    p_tick = sub.add_parser("tick", help="send a tick (time) to every route and profile partition")
    p_tick.add_argument("--now", type=event_time, help="epoch milliseconds (default: the clock)")
    p_tick.add_argument(
        "--future",
        action="store_true",
        help="allow a --now over an hour ahead of the clock (it cannot be undone: every "
        "partition's clock stays there, and the ticker's ticks are ignored until it is reached)",
    )
    p_resend = sub.add_parser(
        "resend", help="produce a reference topic's current records again (after an upgrade)"
    )
    p_resend.add_argument("topic", choices=["prices", "labels"], help="the topic to resend")
    p_schemas = sub.add_parser("schemas", help="check or regenerate schemas/ from the contract")
    p_schemas.add_argument("--write", action="store_true", help="rewrite schemas/*.json")
    p_set = sub.add_parser("settings", help="print the effective settings")
    p_set.add_argument("--markdown", action="store_true", help="print docs/settings.md")

    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
    except SettingsError as exc:
        print(f"c360: bad setting: {exc}", file=sys.stderr)
        return 2
    for line in unknown_env(Settings.env_names() | OTHER_ENV | connectors_cli.env_names()):
        print(f"c360: warning: {line}", file=sys.stderr)
    if args.command == "worker":
        return run_worker(settings)
    if args.command == "connect":
        return connectors_cli.run(args, settings)
    if args.command == "demo":
        return demo.run(settings, args)
    if args.command == "generate":
        from stream import generate

        return generate.run(args, settings)
    if args.command == "topics":
        return cmd_topics(settings, args.list)
    if args.command == "replay":
        from stream import replay

        return replay.main(  # what a worker in this environment does: its rules, its limits
            args.events,
            args.partitions,
            args.seed,
            args.rules if args.rules is not None else settings.rules_file,
            sys.stdout,
            settings.topic_prefix,
            batch_max=settings.batch_max_events,
            record_max=settings.record_max_bytes,
        )
    if args.command == "tick":
        import time

        from stream import admin
        from stream.ticks import send_tick

        clock = int(time.time() * 1000)
        now = args.now if args.now is not None else clock
        if now > clock + FUTURE_TICK_MS and not args.future:
            print(
                f"c360: --now {now} is {(now - clock) / 3_600_000:,.1f} hours ahead of the "
                "clock: a partition's clock never moves back, so every lifecycle would be "
                "judged at that time and the ticker's ticks ignored until it comes; "
                "--future sends it anyway",
                file=sys.stderr,
            )
            return 2
        # the topics missing, or another partition count: TopicProblem
        _, failed = on_kafka(settings, send_tick(settings, now), (admin.TopicProblem,))
        if failed is not None:
            return failed
        print(f"tick {now} sent")
        return 0
    if args.command == "resend":
        return cmd_resend(settings, args.topic)
    if args.command == "schemas":
        return cmd_schemas(args.write)
    if args.command == "settings":
        if args.markdown:
            sys.stdout.write(Settings.markdown())
        else:
            for name in Settings.__dataclass_fields__:
                value = getattr(settings, name)
                secret = name in SECRET_SETTINGS and value  # never into a terminal or a log
                print(f"{name} = {f'<set: {len(value)} characters>' if secret else repr(value)}")
        return 0
    parser.error(f"unknown command {args.command}")
    return 2


def cmd_topics(settings: Settings, list_only: bool) -> int:
    from stream import admin, topics

    if list_only:
        print(topics.markdown_table(settings))
        return 0
    created, failed = on_kafka(settings, admin.ensure_topics(settings), (admin.TopicProblem,))
    if failed is not None:
        return failed
    print(f"created: {', '.join(created) or 'nothing (all topics exist)'}")
    return 0


def cmd_resend(settings: Settings, suffix: str) -> int:
    from stream.resend import RESENDABLE, resend

    # the topic does not exist: LookupError
    count, failed = on_kafka(settings, resend(settings, RESENDABLE[suffix]), (LookupError,))
    if failed is not None:
        return failed
    print(f"{count} {suffix} records produced again")
    return 0


def cmd_schemas(write: bool) -> int:
    from stream import contract

    if write:
        for path in contract.write_all():
            print(f"wrote {path}")
        return 0
    stale = [
        s.filename
        for s in contract.SCHEMAS
        if not (contract.SCHEMA_DIR / s.filename).is_file()
        or (contract.SCHEMA_DIR / s.filename).read_text() != contract.render(s)
    ]
    if stale:
        print(f"stale schemas (run `make schemas`): {', '.join(stale)}", file=sys.stderr)
        return 1
    print(f"{len(contract.SCHEMAS)} schemas are up to date")
    return 0


GC_THRESHOLDS = (50_000, 20, 100)
"""Python's collector runs a young collection every 700 net allocations by default: the
stages allocate millions of short-lived dicts, and collections took ~20 % of the pure
pipeline's time (bench/pipeline.py: 190 -> 150 us/event with these thresholds)."""


def tune_gc() -> None:
    """Fewer collections, and none that scan what start-up built (modules, the app)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run_worker(settings: Settings) -> int:
    """Check the topics, then run a Faust worker in this process until it is stopped."""
    from faust.worker import Worker

    from stream import admin
    from stream.app import create_app
    from stream.core.rules import RulesError, load

    try:
        rules = load(settings.rules_file)
    except RulesError as exc:
        print(f"c360: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"c360: C360_DATA_DIR={settings.data_dir}: {exc.strerror}", file=sys.stderr)
        return 2
    c360 = create_app(settings, rules)

    async def ensure() -> None:
        await admin.ensure_topics(settings)
        await admin.ensure_faust_topics(settings, c360.app)

    _, failed = on_kafka(settings, ensure(), (admin.TopicProblem,))
    if failed is not None:
        return failed
    worker = Worker(c360.app, loglevel=settings.log_level, redirect_stdouts=False, quiet=True)
    tune_gc()
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    sys.exit(main())
