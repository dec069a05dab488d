"""Shared benchmark machinery: produce a population at a rate, wait for the pipeline
to be quiet, read results. Used by bench/run.py (make bench) and the API bench."""

from __future__ import annotations

import asyncio
import os
import sys
import time
import uuid
from collections.abc import Iterable
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from stream import admin, topics  # noqa: E402
from stream.core.partitioner import partition_for  # noqa: E402
from stream.settings import Settings  # noqa: E402

_encode = msgspec.json.Encoder().encode


def fresh_settings(tmp: Path, **overrides) -> Settings:
    tag = uuid.uuid4().hex[:8]
    from tests.support.worker import free_port

    return Settings.from_env(
        None,
        app_id=f"c360-bench-{tag}",
        topic_prefix=f"bench{tag}.",
        data_dir=tmp / "data",
        web_port=free_port(),
        api_key=os.environ.get("C360_API_KEY") or "bench-key",
        **overrides,
    )


def records(
    settings: Settings, events: Iterable[tuple[str, str, dict]], batch: int
) -> list[tuple[str, int, bytes, int]]:
    """Group events into batched records per (topic, partition) as the connectors do:
    (topic name, partition, value, events in it), in order of the last event."""
    out: list[tuple[str, int, bytes, int]] = []
    pending: dict[tuple[str, int], list[bytes]] = {}
    for suffix, key, payload in events:
        spec = topics.by_suffix(suffix)
        n = spec.partition_count(settings)
        group = (spec.name(settings), 0 if n == 1 else partition_for(key, n))
        if suffix in ("prices", "labels"):
            out.append((group[0], group[1], _encode(payload), 1, key))  # type: ignore[arg-type]
            continue
        items = pending.setdefault(group, [])
        items.append(_encode(payload))
        if len(items) >= batch:
            out.append((group[0], group[1], b"[" + b",".join(items) + b"]", len(items)))
            pending[group] = []
    for (name, partition), items in pending.items():
        if items:
            out.append((name, partition, b"[" + b",".join(items) + b"]", len(items)))
    return out


async def produce(settings: Settings, recs: list, rate: float | None = None) -> float:
    """Produce records (at ``rate`` events/s if given); returns the first send time."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=5,
        max_batch_size=1 << 20,
        max_request_size=4 << 20,
    )
    await producer.start()
    started = time.time()
    sent_events = 0
    try:
        futures = []
        for rec in recs:
            name, partition, value, count = rec[:4]
            key = rec[4].encode() if len(rec) > 4 else None
            futures.append(await producer.send(name, value, key=key, partition=partition))
            sent_events += count
            if rate:
                ahead = sent_events / rate - (time.time() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await producer.flush()
        for f in futures:
            await f
    finally:
        await producer.stop()
    return started


async def group_lag(settings: Settings, group: str, names: list[str]) -> int:
    """Records not yet committed by the consumer group on these topics."""
    admin_client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin_client.start()
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        committed = await admin_client.list_consumer_group_offsets(group)
        tps = [TopicPartition(n, p) for n in names for p in consumer.partitions_for_topic(n) or []]
        ends = await consumer.end_offsets(tps)
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag
    finally:
        await consumer.stop()
        await admin_client.close()


async def wait_quiet(settings: Settings, timeout: float = 600.0, settle: float = 2.0) -> float:
    """Wait until every stage has consumed everything; returns when that was first seen."""
    names = [t.name(settings) for t in topics.ALL if t.role is not topics.Role.OUTPUT]
    deadline = time.time() + timeout
    quiet_since = None
    while time.time() < deadline:
        lag = await group_lag(settings, settings.app_id, names)
        now = time.time()
        if lag == 0:
            quiet_since = quiet_since or now
            if now - quiet_since >= settle:
                return quiet_since
        else:
            quiet_since = None
        await asyncio.sleep(0.25)
    raise TimeoutError(f"the pipeline did not drain within {timeout}s")


async def last_record_time(settings: Settings, spec: topics.TopicSpec) -> float:
    """The broker timestamp (s) of the newest record of an output topic."""
    name = spec.name(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(name, p) for p in consumer.partitions_for_topic(name) or []]
        ends = await consumer.end_offsets(tps)
        consumer.assign(tps)
        newest = 0.0
        for tp, end in ends.items():
            if end > 0:
                consumer.seek(tp, end - 1)
        remaining = {tp for tp, end in ends.items() if end > 0}
        deadline = time.time() + 10
        while remaining and time.time() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for tp, recs in batch.items():
                for rec in recs:
                    newest = max(newest, rec.timestamp / 1000)
                    if rec.offset >= ends[tp] - 1:
                        remaining.discard(tp)
        return newest
    finally:
        await consumer.stop()


async def ensure(settings: Settings) -> None:
    await admin.ensure_topics(settings)
