"""``c360 demo``: start a worker, stream a synthetic population, show what c360 made of it.

Each run uses its own topic prefix and consumer group (so it can be re-run on the same
broker; its topics are deleted when it stops), streams ``--persons`` synthetic persons
in batched records with a progress bar, waits until every stage is drained, then prints
a few unified profiles (a VIP, a person with three wallets and a support history, a
campaign user who never transacted), the revenue-by-channel table, the identity quality
against the ground truth, and the URLs of the API and the metrics. The worker keeps
serving until Ctrl-C (or exits at once with ``--exit``); Ctrl-C stops everything the
demo started.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from stream.population import Person, Population, score
from stream.settings import Settings

BAR = 32


def short_address(address: str) -> str:
    """``0x1234…abcd``: the head and the tail, as wallets show an address (the synthetic
    population's addresses share their first 12 characters)."""
    return address if len(address) <= 12 else f"{address[:6]}…{address[-4:]}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from stream.cli import positive, seed

    parser.add_argument(
        "--persons", type=positive, default=10_000, help="synthetic persons (10000)"
    )
    parser.add_argument(
        "--events", type=positive, default=None, help="activity events (default 12 per person)"
    )
    parser.add_argument("--seed", type=seed, default=7, help="random seed (7)")
    parser.add_argument(
        "--exit", action="store_true", help="stop once the results are printed (for scripts)"
    )


def start_worker(settings: Settings, log_path: Path) -> subprocess.Popen:
    log_path.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **settings.to_env()}
    exe = Path(sys.executable).parent / "c360"
    with open(log_path, "ab") as log:
        return subprocess.Popen([str(exe), "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)


def wait_ready(settings: Settings, proc: subprocess.Popen, timeout: float = 90) -> float:
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"the worker exited with code {proc.returncode}")
        try:
            with urllib.request.urlopen(settings.web_url + "/ready", timeout=1) as r:
                if r.status == 200:
                    return time.monotonic() - start
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the worker was not ready after {timeout:.0f}s")


_drawn = [0.0]


def bar(label: str, done: int, total: int, started: float) -> None:
    """One progress line, redrawn in place (at most five times a second)."""
    now = time.monotonic()
    if done < total and now - _drawn[0] < 0.2:
        return
    _drawn[0] = now
    frac = 0.0 if total <= 0 else min(1.0, done / total)
    filled = int(frac * BAR)
    rate = done / max(1e-6, time.monotonic() - started)
    line = f"\r  {label:<10} [{'#' * filled}{'.' * (BAR - filled)}] {done:>9,}/{total:,}"
    sys.stdout.write(f"{line}  {rate:,.0f}/s ")
    sys.stdout.flush()


def demo_settings(settings: Settings) -> Settings:
    """This run's own topics, group and state (older demo state is removed)."""
    tag = uuid.uuid4().hex[:8]
    root = settings.data_dir
    if root.exists():
        for old in root.glob("run-*"):
            shutil.rmtree(old, ignore_errors=True)
    return dataclasses.replace(
        settings,
        app_id=f"c360-demo-{tag}",
        topic_prefix=f"demo{tag}.",
        data_dir=root / f"run-{tag}",
        api_key=settings.api_key or "demo-key",
    )


def get(settings: Settings, path: str) -> Any:
    request = urllib.request.Request(
        settings.web_url + path, headers={"X-API-Key": settings.api_key}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def profile_of(settings: Settings, identifier: str) -> dict | None:
    try:
        return get(settings, "/v1/profiles/" + quote(identifier, safe=":"))
    except OSError:
        return None


def find(
    settings: Settings, people: list[Person], want: Callable[[dict], bool], tries: int = 400
) -> dict | None:
    """The first profile among ``people`` (looked up by their first identifier) that fits."""
    for person in people[:tries]:
        profile = profile_of(settings, person.identifiers[0])
        if profile is not None and want(profile):
            return profile
    return None


def best_vip(settings: Settings | None, people: list[Person], tries: int = 400) -> dict | None:
    """The profile of the highest VIP tier among the first ``tries`` of ``people`` (the
    first found of it), or None when none shows a tier."""
    from stream.core.rules import load

    tiers = [t.name for t in load(settings.rules_file if settings else None).vip]
    best: dict | None = None
    for person in people[:tries]:
        profile = profile_of(settings, person.identifiers[0])
        tier = (profile or {}).get("vip_tier")
        if tier in tiers and (best is None or tiers.index(tier) < tiers.index(best["vip_tier"])):
            best = profile
            if tiers.index(tier) == 0:
                break
    return best


def examples(settings: Settings, people: list[Person]) -> list[tuple[str, dict | None]]:
    """The profiles the demo shows: a VIP, a person with three wallets and a support
    history, a campaign user who never transacted (None: none found)."""
    vip = best_vip(settings, [p for p in people if p.whale] + people)

    def three(exactly: bool) -> dict | None:
        def fits(n: int) -> bool:
            return n == 3 if exactly else n >= 3

        return find(
            settings,
            [p for p in people if fits(len(p.wallets))],
            lambda p: (
                fits(len(p["identifiers"].get("wallet", []))) and p.get("tickets_total", 0) > 0
            ),
        )

    campaign = find(
        settings,
        [p for p in people if p.channel[0]],
        lambda p: (
            bool((p.get("first_touch") or {}).get("campaign"))
            and not p.get("transactions")
            and not p.get("volume")
        ),
    )
    return [
        ("A VIP", vip),
        ("Three wallets and a support history", three(exactly=True) or three(exactly=False)),
        ("A campaign user who never transacted", campaign),
    ]


def quality_lines(q: dict[str, Any]) -> list[str]:
    """The identity quality of a :func:`stream.population.score`, as the demo prints it."""
    if q["identifiers_scored"] == 0:  # 1.0 and 1.0 over no pair would read as perfect
        return [
            "nothing to score: the stream carried no person's onboarding whole "
            "(more --events per person)"
        ]
    return [
        f"precision {q['precision']:.4f}   recall {q['recall']:.4f}   "
        f"persons: {q['persons_found']:,} found / {q['persons_true']:,} true   "
        f"shared identifiers kept apart: {q['shared_kept_apart']}/{q['shared_identifiers']}",
        f"{q['identifiers_scored']:,} identifiers scored (every one the stream carried), "
        f"{q['unplaced']:,} of them in no person",
    ]


def show_profile(title: str, p: dict | None) -> None:
    print(f"\n  ── {title}")
    if p is None:
        print("     (none in this population)")
        return
    ids = p["identifiers"]
    touch = p.get("first_touch") or {}
    ticket = p.get("last_ticket") or {}
    rows = [
        ("person", p["person_id"]),
        ("identifiers", ", ".join(f"{len(v)} {k}" for k, v in sorted(ids.items()))),
        ("wallets", " ".join(short_address(w.split(":", 1)[1]) for w in ids.get("wallet", []))),
        ("lifecycle / VIP", f"{p.get('lifecycle')} / {p.get('vip_tier') or '-'}"),
        (
            "first touch",
            " / ".join(str(touch.get(k) or "-") for k in ("source", "medium", "campaign")),
        ),
        (
            "sessions, pages",
            f"{p.get('sessions', 0)} sessions, {p.get('page_views', 0)} page views",
        ),
        (
            "onchain",
            f"{p.get('transactions', 0)} tx, volume ${p.get('volume_usd', 0):,.2f}, "
            f"fees ${p.get('fees_usd', 0):,.2f}, revenue ${p.get('revenue_usd', 0):,.2f}",
        ),
        ("net worth", f"${p.get('net_worth_usd', 0):,.2f}"),
        (
            "support",
            f"{p.get('tickets_total', 0)} tickets ({p.get('tickets_open', 0)} open)"
            + (f", last: {ticket.get('subject')!r} [{ticket.get('status')}]" if ticket else ""),
        ),
        ("events", str(p.get("events", 0))),
    ]
    for name, value in rows:
        print(f"     {name:<16} {value}")


def show_channels(settings: Settings) -> None:
    channels = get(settings, "/v1/channels/revenue")["channels"]
    print("\n  ── Revenue by acquisition channel (first touch)")
    print(f"     {'channel':<40} {'persons':>8} {'revenue USD':>14}")
    for c in channels[:12]:
        print(f"     {c['channel']:<40} {c['persons']:>8,} {c['revenue_usd']:>14,.2f}")


def run(settings: Settings, args: argparse.Namespace | None = None) -> int:
    from stream import admin
    from stream.loadgen import batched, produce
    from stream.quality import assignments
    from stream.ticks import send_tick
    from stream.watch import wait_quiet

    persons = args.persons if args else 10_000
    events = args.events if args and args.events is not None else persons * 12
    root = settings.data_dir
    settings = demo_settings(settings)
    log_path = settings.data_dir / "worker.log"
    try:  # before anything is made on the broker (the worker would refuse it anyway)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        print(f"c360 demo: C360_DATA_DIR={root}: {exc.strerror}", file=sys.stderr)
        return 2
    # Ctrl-C (and a TERM) stop everything this started, even when started in the
    # background, where the shell hands us SIGINT ignored
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    print(f"c360 demo: Kafka at {settings.kafka_bootstrap}; topics {settings.topic_prefix}*")
    proc: subprocess.Popen | None = None
    reached = False  # Kafka answered: a failure to delete this run's topics is news
    try:
        asyncio.run(admin.ensure_topics(settings))
        reached = True
        proc = start_worker(settings, log_path)
        print(f"  worker ready in {wait_ready(settings, proc):.1f}s (log: {log_path})")
        # the population's 30 days end now, so that lifecycles (new … churned) mean something
        now = int(time.time() * 1000)
        population = Population(persons, seed=args.seed if args else 7, end=now)
        print(f"  streaming {persons:,} synthetic persons ({events:,} events) in batched records")
        records = batched(settings, population.events(events))
        total = sum(r.events for r in records)
        started = time.monotonic()
        asyncio.run(
            produce(settings, records, progress=lambda n: bar("produced", n, total, started))
        )
        print()

        def processing(lag: int) -> None:
            sys.stdout.write(f"\r  records queued between stages: {lag:>7,}   ")
            sys.stdout.flush()

        asyncio.run(wait_quiet(settings, timeout=1800, settle=1.0, progress=processing))
        print(f"\n  all stages drained {time.monotonic() - started:.1f}s after the first event")
        # time is a message: a tick with the wall clock moves lifecycles (who churned?)
        asyncio.run(send_tick(settings, now))
        asyncio.run(wait_quiet(settings, timeout=300, settle=0.5))

        for title, profile in examples(settings, population.persons):
            show_profile(title, profile)
        show_channels(settings)

        truth = population.truth()
        print("\n  ── Identity quality against the ground truth (pairwise over identifiers)")
        assigned = asyncio.run(assignments(settings, truth["owner"].keys() | set(truth["shared"])))
        for line in quality_lines(score(truth, assigned)):
            print(f"     {line}")

        example = population.persons[0].identifiers[0]
        print("\n  ── Where it answers (API key: header X-API-Key: " + settings.api_key + ")")
        print(f"     profile   {settings.web_url}/v1/profiles/{example}")
        print(f"     identity  {settings.web_url}/v1/identities/{example}")
        print(f"     channels  {settings.web_url}/v1/channels/revenue")
        print(f"     metrics   {settings.web_url}/metrics")
        if args is not None and args.exit:
            return 0
        print(
            "\n  The worker keeps serving; Ctrl-C stops it (and the broker if the demo started it)."
        )
        while proc.poll() is None:
            time.sleep(0.5)
        print(f"the worker exited with code {proc.returncode}; see {log_path}")
        return 1
    except KeyboardInterrupt:
        print("\nstopping…")
        return 0
    except (RuntimeError, TimeoutError) as exc:  # aiokafka's errors are RuntimeErrors
        where = (
            f"; see {log_path}" if proc is not None else f" (Kafka at {settings.kafka_bootstrap})"
        )
        print(f"\nc360 demo: {exc!r}{where}", file=sys.stderr)
        return 1
    finally:
        # a second Ctrl-C must not cut the clean-up short
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        # this run's topics go with its worker: the next run makes its own, and a
        # broker that kept every run's topics grew without bound
        try:
            dropped = asyncio.run(admin.drop_deployment(settings))
            print(f"  deleted this run's {len(dropped)} topics")
        except Exception as exc:
            if reached:  # else it never made any (said above)
                print(
                    f"c360 demo: topics {settings.topic_prefix}* not deleted: {exc!r}",
                    file=sys.stderr,
                )
