"""End-to-end benchmark on the real broker: c360 against the physical limit and its peer.

Usage: python bench/run.py quick|full   (`make bench-quick`, `make bench`)

One run, one fresh deployment (own topics, group and state), in phases:

0. core — ``core_us_per_event``: CPU per event of the throughput mix through the
   pure pipeline in this process (bench/pipeline.py: no Kafka, no faust), before any
   worker starts. The machine's speed varies from run to run (a VM with neighbours:
   ±15 % between two runs of the same code); this says how fast it was this time,
   and ``ratios.drained_over_core`` what a worker adds to the core;
1. throughput — a synthetic population (stream.population) produced as batched
   records as fast as the producer goes; ``throughput_eps`` = input events / (last
   profile change - first send). The population has 100 events per person, which
   makes wallet connects and SIWE sign-ins (the link events) a few percent of the
   traffic (``link_share``, counted on the events sent), as a product with returning
   users sees;
2. quality — pairwise ``precision``/``recall`` of identity resolution against the
   ground truth, looked up through the API (all identifiers of a sample of persons);
3. link-heavy throughput — ``throughput_link_heavy_eps``, the same measure on a
   population of new persons with 15 events each (about a quarter of them sign-ins,
   ~5 merges per person: everyone is onboarding);
4. links — fresh sign-ins (anonymous id ↔ wallet, verified), each a link to make;
   ``link_eps`` = sign-ins / (last profile change - first send);
5. latency — background load at half of ``throughput_eps`` (a population with the
   throughput phase's events per person, its new persons arriving evenly through the
   run) plus a probe event every 50 ms, each a new person; latency = probe sent → its
   profile change written; then the same at a quarter of ``throughput_eps``
   (full only, ``*_quarter_load``: a paced event costs more than a drained one, so
   half load is close to what one worker can take paced, and its p99 measures a queue);
6. single records — ``single_record_eps``: c360 fed single-event records (the next
   events of the throughput population: the same persons, the same mix);
7. raw consume — ``raw_consume_eps``: aiokafka ``getmany`` + orjson decode of the
   same input topics (the physical limit of a Python consumer of that input);
8. growth (full only) — profiles grown to 1M with one-event persons, RSS sampled at
   100k and at the end;
9. naive faust — ``naive_faust_eps``: bench/naive_faust.py (single-event records, one
   Table write per event, the same tuned settings) on a subset;
10. two workers (full only) — ``throughput_2_workers_eps``: phase 1's population on a
    fresh deployment of two workers (scale-out; they share the machine's two cores
    with the broker and the load generator).

Prints a table and writes bench/results/latest.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from harness import (
    ROOT,
    batched,
    dispose,
    drop_fresh,
    ensure,
    fresh_settings,
    produce,
    sign_ins,
    wait_quiet,
)
from pipeline import measure

from stream import topics
from stream.loadgen import UNBATCHED
from stream.population import Population, is_link_event, iso, score
from stream.quality import assignments
from stream.settings import Settings
from stream.watch import newest_timestamp
from tests.support.worker import BIN, WorkerProcess, another_worker, metric_total

SIZES = {
    # persons, events, scored persons, link-heavy persons and events, link sign-ins,
    # latency seconds, latency at a quarter load too, single, naive, growth, workers of
    # the scale-out phase (1: none), events of the in-process core measure
    "quick": dict(
        persons=300,
        events=30_000,
        scored=300,
        heavy_persons=1000,
        heavy_events=15_000,
        links=5000,
        latency_s=6,
        quarter=False,
        single=3000,
        naive=3000,
        growth=0,
        workers=1,
        core=20_000,
    ),
    "full": dict(
        persons=3000,
        events=300_000,
        scored=3000,
        heavy_persons=10_000,
        heavy_events=150_000,
        links=40_000,
        latency_s=30,
        quarter=True,
        single=20_000,
        naive=20_000,
        growth=1_000_000,
        workers=2,
        core=100_000,
    ),
}
RESULTS = ROOT / "bench" / "results"
FRESH = 10_000_000
"""The first person number of the link-heavy population (disjoint from the others)."""
PACED = 20_000_000
"""The first person number of the latency phases' background populations (each phase
its own range, FRESH wide: persons new to the deployment, as the phase's doc says)."""
LATENCY_LOADS = ((2, "", PACED), (4, "_quarter_load", PACED + FRESH))
"""The latency phases: (share of ``throughput_eps``, suffix of their keys, first person
number of their background); a quick run does the first only."""


class LinkShare:
    """Passes a population's events through (up to ``limit`` activity events, leaving
    the rest of ``events`` for later), counting its link events."""

    def __init__(self, events: Iterator[tuple[str, str, dict]], limit: int | None = None) -> None:
        self._events = events
        self.limit = limit
        self.events = 0
        self.links = 0

    def __iter__(self) -> Iterator[tuple[str, str, dict]]:
        for suffix, key, payload in self._events:
            if suffix not in UNBATCHED:
                self.events += 1
                self.links += is_link_event(suffix, payload)
            yield suffix, key, payload
            if self.events == self.limit:
                return

    @property
    def share(self) -> float:
        """Link events / input events."""
        return self.links / max(1, self.events)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def rss_mb(pid: int, field: str = "VmHWM") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return 0.0


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) the process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def timed_run(settings: Settings, events, batch: int = 200, rate: float | None = None):
    """Produce, wait for quiet; (events, seconds from first send to last profile change)."""
    records = batched(settings, events, batch=batch)
    started, sent = await produce(settings, records, rate=rate)
    await wait_quiet(settings, timeout=3600, settle=1.5)
    name = topics.PROFILE_CHANGES.name(settings)
    last = await newest_timestamp(settings, name)
    if last < started:
        raise RuntimeError(f"no profile change written since the run started ({last} < {started})")
    return sent, last - started


async def timed_mix(settings: Settings, counted: LinkShare) -> tuple[int, float]:
    """:func:`timed_run` of a population's events, logging the rate and the share of
    link events."""
    events, seconds = await timed_run(settings, counted)
    log(
        f"  {events:,} events in {seconds:.1f}s = {events / seconds:,.0f}/s "
        f"(link events {counted.share:.1%})"
    )
    return events, seconds


def page(device: str, n: int, ts: int, tag: str) -> tuple[str, str, dict]:
    return (
        "web.events",
        device,
        {
            "type": "page",
            "messageId": f"{tag}-{n}",
            "anonymousId": device,
            "timestamp": iso(ts),
            "context": {"page": {"path": "/", "url": "https://app.c360.dev/"}},
        },
    )


async def latency(
    settings: Settings,
    rate: float,
    seconds: float,
    lookups: list[str],
    per_person: float,
    pid: int,
    first: int = PACED,
) -> tuple[list[float], list[float], float, float]:
    """Under background load at ``rate`` events/s: probe latencies (event produced → its
    profile change written, ms), API lookup latencies (``GET /v1/profiles`` of
    ``lookups`` at 50 requests/s, ms; one worker owns every key), and the CPU of the
    worker process ``pid`` while the load was produced: cores (CPU seconds per second)
    and microseconds per background event. That is all of the process's threads (the
    event loop, faust's consumer thread, RocksDB's), and it includes serving the
    lookups and the probes (50 and 20 a second, against thousands of events).

    The background is the throughput phase's workload: a population with the same
    events per person (``per_person``), its persons numbered from ``first`` (new to the
    deployment, as the throughput phase's were), so that a share of its measured rate
    is that share of the load — new persons and their merges cost more than a known
    person's next event. Its new persons arrive evenly through the run (``spread``): as
    produced for a drain, the stream opens with every person's onboarding, seconds of
    link-heavy traffic paced here above the link-heavy maximum."""
    name = topics.PROFILE_CHANGES.name(settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    await consumer._client.force_metadata_update()
    tps = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or []]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    tag = f"latprobe{random.randrange(16**8):08x}"  # new persons on every call
    probe_re = re.compile(tag.encode() + rb"-\d+")
    stop = asyncio.Event()

    async def watch() -> None:
        while not stop.is_set() or len(seen) < len(sent):
            batch = await consumer.getmany(timeout_ms=200)
            for records in batch.values():
                for rec in records:
                    for m in probe_re.finditer(rec.value or b""):
                        seen.setdefault(m.group(0).decode(), rec.timestamp / 1000)
            if stop.is_set() and time.time() > deadline:
                break

    now = int(time.time() * 1000)
    count = int(rate * seconds)
    persons = max(100, round(count / per_person))
    background = Population(persons, seed=99, end=now, first=first).events(count, spread=True)
    bg_records = batched(settings, background, batch=200)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    deadline = float("inf")
    watcher = asyncio.create_task(watch())

    async def probes() -> None:
        n = 0
        web = topics.WEB_EVENTS.name(settings)
        while not stop.is_set():
            device = f"{tag}-{n}"
            _, key, payload = page(device, n, now, tag)
            sent[device] = time.time()
            await producer.send_and_wait(web, orjson.dumps(payload), key=key.encode())
            n += 1
            await asyncio.sleep(0.05)

    api_ms: list[float] = []
    api_retries: list[str] = []

    async def requests() -> None:
        headers = {"X-API-Key": settings.api_key}
        async with aiohttp.ClientSession() as session:
            n = 0
            while not stop.is_set():
                ident = lookups[n % len(lookups)]
                started = time.perf_counter()
                async with session.get(
                    f"{settings.web_url}/v1/profiles/{ident}", headers=headers
                ) as response:
                    await response.read()
                    if response.status == 503:  # its person is being split or merged
                        api_retries.append(ident)
                    elif response.status != 200:
                        raise RuntimeError(f"lookup {ident}: HTTP {response.status}")
                api_ms.append((time.perf_counter() - started) * 1000)
                n += 1
                await asyncio.sleep(0.02)

    prober = asyncio.create_task(probes())
    requester = asyncio.create_task(requests())
    cpu, started = cpu_seconds(pid), time.monotonic()
    await produce(settings, bg_records, rate=rate)
    cpu = cpu_seconds(pid) - cpu
    busy = cpu / (time.monotonic() - started)
    stop.set()
    await prober
    await requester
    deadline = time.time() + 30
    await watcher
    await producer.stop()
    await consumer.stop()
    if api_retries:
        log(f"  {len(api_retries)} lookups answered 503 (person being split or merged)")
    latencies = [(seen[d] - sent[d]) * 1000 for d in sent if d in seen]
    return latencies, api_ms, busy, cpu / count * 1e6


def record_latency(
    results: dict,
    suffix: str,
    lat: list[float],
    api: list[float],
    busy: float,
    paced_us: float,
    drained_us: float,
) -> None:
    """Put a latency phase's figures into ``results``, each key ending in ``suffix``."""
    results[f"latency_worker_cpu{suffix}"] = round(busy, 3)
    results[f"latency_worker_cpu_us_per_event{suffix}"] = round(paced_us, 1)
    for name, count, values, digits in (
        ("latency_ms", "latency_probes", lat, 1),
        ("api_ms", "api_requests", api, 2),
    ):
        if values:
            ordered = sorted(values)
            results[f"{name}_p50{suffix}"] = round(statistics.median(ordered), digits)
            p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
            results[f"{name}_p99{suffix}"] = round(p99, digits)
            results[f"{count}{suffix}"] = len(ordered)
    log(
        f"  API lookups: p50 {results.get(f'api_ms_p50{suffix}')} ms, "
        f"p99 {results.get(f'api_ms_p99{suffix}')} ms over {len(api)} requests"
    )
    log(
        f"  p50 {results.get(f'latency_ms_p50{suffix}')} ms, "
        f"p99 {results.get(f'latency_ms_p99{suffix}')} ms over {len(lat)} probes; the worker "
        f"used {busy:.0%} of a core, {paced_us:.0f} us per event (draining: {drained_us:.0f})"
    )


async def raw_consume(settings: Settings) -> tuple[int, float]:
    """Every input record of the run, getmany + orjson decode; (events, seconds)."""
    names = [t.name(settings) for t in topics.INGESTED]
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        enable_auto_commit=False,
        max_partition_fetch_bytes=4 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(n, p) for n in names for p in consumer.partitions_for_topic(n) or []]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp, end in ends.items() if end > 0}
        events = 0
        started = time.perf_counter()
        while remaining:
            batch = await consumer.getmany(timeout_ms=500, max_records=10_000)
            for tp, records in batch.items():
                for rec in records:
                    value = orjson.loads(rec.value)
                    events += len(value) if isinstance(value, list) else 1
                    if rec.offset >= ends[tp] - 1:
                        remaining.discard(tp)
        return events, time.perf_counter() - started
    finally:
        await consumer.stop()


async def changelog_span(settings: Settings, name: str, want: int, timeout: float) -> float:
    """Wait until topic ``name`` holds ``want`` records; seconds from its first to last."""
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        deadline = time.time() + timeout
        while True:
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(name) or set()
            tps = [TopicPartition(name, p) for p in parts]
            total = sum((await consumer.end_offsets(tps)).values()) if tps else 0
            if total >= want:
                break
            if time.time() > deadline:
                raise TimeoutError(f"{name}: {total} of {want} records after {timeout}s")
            await asyncio.sleep(0.5)
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        first, last = float("inf"), 0.0
        ends = await consumer.end_offsets(tps)
        remaining = {tp for tp, end in ends.items() if end > 0}
        while remaining:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for rec in records:
                    first = min(first, rec.timestamp / 1000)
                    last = max(last, rec.timestamp / 1000)
                    if rec.offset >= ends[tp] - 1:
                        remaining.discard(tp)
        return max(1e-3, last - first)
    finally:
        await consumer.stop()


async def naive_faust(tmp: Path, count: int) -> float:
    """The peer baseline (bench/naive_faust.py) on ``count`` single-event records."""
    sys.path.insert(0, str(ROOT / "bench"))
    import naive_faust as naive

    settings = fresh_settings(tmp / "naive")
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(naive.topic_name(settings), settings.partitions, settings.replication)]
        )
    finally:
        await admin.close()
    population = Population(2000, seed=5, end=int(time.time() * 1000))
    events = [e for e in population.events(count * 2) if e[0] == "web.events"][:count]
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    await producer.start()
    try:
        for _, key, payload in events:
            await producer.send(naive.topic_name(settings), orjson.dumps(payload), key=key.encode())
        await producer.flush()
    finally:
        await producer.stop()
    env = {**os.environ, **settings.to_env()}
    log_file = open(tmp / "naive.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [str(BIN / "python"), str(ROOT / "bench" / "naive_faust.py")],
        env=env,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    try:
        seconds = await changelog_span(settings, naive.changelog(settings), len(events), 600)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log_file.close()
        await dispose(settings)
    return len(events) / seconds


async def growth(settings: Settings, worker: WorkerProcess, total: int) -> dict[str, float]:
    """Grow to ``total`` one-event persons; RSS at 100k profiles and at the end."""
    now = int(time.time() * 1000)
    out: dict[str, float] = {}
    done = 0
    for upto in (100_000, total):
        events = (page(f"grow-{i}", i, now, "grow") for i in range(done, upto))
        await produce(settings, batched(settings, events, batch=200))
        await wait_quiet(settings, timeout=3600, settle=1.5)
        done = upto
        out[f"rss_mb_at_{upto // 1000}k_profiles"] = round(rss_mb(worker.proc.pid, "VmRSS"), 1)
        log(f"  {metric_total(settings, 'c360_profiles'):,.0f} profiles; RSS {out} MB")
    return out


async def scaled_out(tmp: Path, persons: int, events: int, workers: int) -> float:
    """Input events/s of a fresh deployment of ``workers`` workers draining the
    throughput phase's population (the same seed, size and mix)."""
    settings = fresh_settings(tmp / "scaled")
    await ensure(settings)
    procs = []
    try:
        for i in range(workers):
            own = another_worker(settings, tmp / f"scaled-{i}") if i else settings
            procs.append(WorkerProcess(own, tmp / f"scaled-{i}.log").start())
            procs[-1].wait_ready(120)  # one at a time: each start is one rebalance
        for proc in procs:
            proc.wait_ready(120)  # every worker has its share after the last rebalance
        population = Population(persons, seed=7, end=int(time.time() * 1000))
        n, seconds = await timed_mix(settings, LinkShare(population.events(events)))
        return n / seconds
    finally:
        for proc in procs:
            proc.stop()
        await dispose(settings)


async def bench(mode: str) -> dict:
    size = SIZES[mode]
    results: dict = {"mode": mode}
    log(f"core: {size['core']:,} events of the throughput mix in process (bench/pipeline.py)")
    core = measure(size["core"])
    results["core_us_per_event"] = round(core.us_per_event, 1)
    log(f"  {core.us_per_event:.1f} us of CPU per event")
    with tempfile.TemporaryDirectory(prefix="c360-bench-") as tmp_name:
        tmp = Path(tmp_name)
        settings = fresh_settings(tmp)
        await ensure(settings)
        worker = WorkerProcess(settings, tmp / "worker.log").start()
        try:
            log(f"worker ready in {worker.wait_ready(120):.1f}s; {settings.partitions} partitions")
            now = int(time.time() * 1000)
            population = Population(size["persons"], seed=7, end=now)
            log(f"throughput: {size['events']:,} events of {size['persons']:,} persons")
            # one stream: the single-record phase takes up where this one ends
            stream = population.events(size["events"] + size["single"])
            counted = LinkShare(stream, size["events"])
            cpu = cpu_seconds(worker.proc.pid)
            events, seconds = await timed_mix(settings, counted)
            # the drain's CPU per event, to set against the paced one (latency phase)
            drained_us = (cpu_seconds(worker.proc.pid) - cpu) / events * 1e6
            results["worker_cpu_us_per_event"] = round(drained_us, 1)
            results.update(events=events, seconds=round(seconds, 2))
            results["throughput_eps"] = round(events / seconds)
            results["link_share"] = round(counted.share, 4)
            results["profiles"] = int(metric_total(settings, "c360_profiles"))

            truth = population.truth()
            sample = set(random.Random(1).sample(range(size["persons"]), size["scored"]))
            truth["emitted"] = [p for p in truth["emitted"] if p in sample]  # scored: these
            idents = [i for i, owner in truth["owner"].items() if owner in sample]
            assigned = await assignments(settings, idents + truth["shared"])
            q = score(truth, assigned)
            results.update(precision=round(q["precision"], 5), recall=round(q["recall"], 5))
            results["quality"] = {
                k: q[k]
                for k in (
                    "identifiers_scored",
                    "unplaced",
                    "shared_identifiers",
                    "shared_kept_apart",
                )
            }
            log(
                f"  precision {q['precision']:.4f} recall {q['recall']:.4f} "
                f"({q['identifiers_scored']:,} identifiers of {size['scored']:,} persons)"
            )
            for kind in ("split", "merged"):  # where to look when a run is below 1.0
                if q[kind]:
                    results["quality"][kind] = q[kind]
                    log(f"  {kind} (true person -> found, or found -> true): {q[kind]}")

            heavy = Population(size["heavy_persons"], seed=13, end=now, first=FRESH)
            log(
                f"link-heavy throughput: {size['heavy_events']:,} events of "
                f"{size['heavy_persons']:,} new persons"
            )
            counted = LinkShare(heavy.events(size["heavy_events"]))
            n, seconds = await timed_mix(settings, counted)
            results["throughput_link_heavy_eps"] = round(n / seconds)
            results["link_share_link_heavy"] = round(counted.share, 4)

            log(f"links: {size['links']:,} verified sign-ins")
            links, seconds = await timed_run(settings, sign_ins(size["links"], now, "lnk"))
            results["link_eps"] = round(links / seconds)
            log(f"  {results['link_eps']:,} links/s")

            lookups = [i for i in idents if i in assigned][:500]
            per_person = size["events"] / size["persons"]
            loads = LATENCY_LOADS if size["quarter"] else LATENCY_LOADS[:1]
            for share, suffix, first in loads:
                rate = results["throughput_eps"] / share
                log(f"latency: {size['latency_s']}s at {rate:,.0f} events/s (1/{share} load)")
                measured = await latency(
                    settings, rate, size["latency_s"], lookups, per_person, worker.proc.pid, first
                )
                record_latency(results, suffix, *measured, drained_us)
                await wait_quiet(settings, timeout=600, settle=1.0)

            log(f"single-event records: {size['single']:,}")
            n, seconds = await timed_run(settings, stream, batch=1)
            results["single_record_eps"] = round(n / seconds)
            log(f"  {results['single_record_eps']:,}/s")

            n, seconds = await raw_consume(settings)
            results["raw_consume_eps"] = round(n / seconds)
            log(f"raw consume: {n:,} events in {seconds:.2f}s = {results['raw_consume_eps']:,}/s")

            if size["growth"]:
                log(f"growth: profiles to {size['growth']:,}")
                results.update(await growth(settings, worker, size["growth"]))
            results["rss_mb_peak"] = round(rss_mb(worker.proc.pid), 1)
        finally:
            worker.stop()
            await dispose(settings)  # the next phases run without its 1M profiles
        log(f"naive faust: {size['naive']:,} single-event records, one Table write each")
        results["naive_faust_eps"] = round(await naive_faust(tmp, size["naive"]))
        log(f"  {results['naive_faust_eps']:,}/s")
        if size["workers"] > 1:
            log(f"scale-out: the throughput population on {size['workers']} workers")
            eps = await scaled_out(tmp, size["persons"], size["events"], size["workers"])
            results[f"throughput_{size['workers']}_workers_eps"] = round(eps)
    results["ratios"] = {
        "throughput_over_naive": round(results["throughput_eps"] / results["naive_faust_eps"], 2),
        "throughput_over_raw": round(results["throughput_eps"] / results["raw_consume_eps"], 3),
        "link_heavy_over_naive": round(
            results["throughput_link_heavy_eps"] / results["naive_faust_eps"], 2
        ),
    }
    results["ratios"]["drained_over_core"] = round(
        results["worker_cpu_us_per_event"] / results["core_us_per_event"], 2
    )
    if size["workers"] > 1:
        scaled = results[f"throughput_{size['workers']}_workers_eps"]
        results["ratios"]["workers_over_one"] = round(scaled / results["throughput_eps"], 2)
    results["machine"] = {"cpus": os.cpu_count(), "python": platform.python_version()}
    results["at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return results


KEYS = [
    "events",
    "seconds",
    "throughput_eps",
    "link_share",
    "throughput_link_heavy_eps",
    "latency_ms_p50",
    "latency_ms_p99",
    "link_eps",
    "raw_consume_eps",
    "naive_faust_eps",
    "single_record_eps",
    "rss_mb_peak",
    "profiles",
    "precision",
    "recall",
    "api_ms_p50",
    "api_ms_p99",
    "latency_worker_cpu",
    "latency_worker_cpu_us_per_event",
    "worker_cpu_us_per_event",
    "core_us_per_event",
    "latency_ms_p50_quarter_load",
    "latency_ms_p99_quarter_load",
    "api_ms_p99_quarter_load",
    "latency_worker_cpu_quarter_load",
    "latency_worker_cpu_us_per_event_quarter_load",
]


def main() -> int:
    mode = sys.argv[1] if len(sys.argv) > 1 else "quick"
    if mode not in SIZES:
        print(f"usage: bench/run.py {'|'.join(SIZES)}", file=sys.stderr)
        return 2
    started = time.time()
    try:
        results = asyncio.run(bench(mode))
    finally:
        drop_fresh()
    results["wall_seconds"] = round(time.time() - started, 1)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    extra = [k for k in results if k.startswith("rss_mb_at") or k.endswith("_workers_eps")]
    # a missing figure shows as None; the phases this size skips are left out
    skipped = tuple(suffix for _, suffix, _ in LATENCY_LOADS[1:] if not SIZES[mode]["quarter"])
    shown_keys = [k for k in KEYS + extra if not k.endswith(skipped)]
    width = max(len(k) for k in shown_keys) + 2
    print(f"\n{'figure':<{width}}{'value':>16}")
    for key in shown_keys:
        value = results.get(key)
        shown = f"{value:,}" if isinstance(value, (int, float)) else str(value)
        print(f"{key:<{width}}{shown:>16}")
    ratios = results["ratios"]
    print(f"{'throughput / naive':<{width}}{ratios['throughput_over_naive']:>16}")
    print(f"{'throughput / raw':<{width}}{ratios['throughput_over_raw']:>16}")
    print(f"{'drained worker / core':<{width}}{ratios['drained_over_core']:>16}")
    if "workers_over_one" in ratios:
        print(f"{'workers / one worker':<{width}}{ratios['workers_over_one']:>16}")
    print(f"\nwritten to {RESULTS / 'latest.json'} in {results['wall_seconds']}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
