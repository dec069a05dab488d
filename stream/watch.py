"""Watching a running pipeline from outside: consumer-group lag, quiet, output times.

Used by ``make demo``, the benchmarks and the integration tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from stream import topics
from stream.settings import Settings


async def group_lag(settings: Settings, group: str, names: list[str]) -> int:
    """Records not yet committed by the consumer group on these topics."""
    return sum((await lag_by_partition(settings, group, names)).values())


async def lag_by_partition(
    settings: Settings, group: str, names: list[str]
) -> dict[TopicPartition, int]:
    """Per partition: records not yet committed by the consumer group."""
    positions = await committed_and_ends(settings, group, names)
    return {TopicPartition(t, p): end - off for (t, p), (off, end) in positions.items()}


async def committed_and_ends(
    settings: Settings, group: str, names: list[str]
) -> dict[tuple[str, int], tuple[int, int]]:
    """Per partition: (the group's committed offset, 0 when none; the end offset)."""
    admin_client = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await admin_client.start()
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        committed = await admin_client.list_consumer_group_offsets(group)
        tps = [TopicPartition(n, p) for n in names for p in consumer.partitions_for_topic(n) or []]
        ends = await consumer.end_offsets(tps)
        out = {}
        for tp, end in ends.items():
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else 0
            out[(tp.topic, tp.partition)] = (offset, end)
        return out
    finally:
        await consumer.stop()
        await admin_client.close()


async def wait_quiet(
    settings: Settings,
    timeout: float = 600.0,
    settle: float = 2.0,
    progress: Callable[[int], None] | None = None,
) -> float:
    """Wait until every stage has consumed everything; returns when that was first seen.

    ``progress`` is called with the total lag at each look."""
    names = [t.name(settings) for t in topics.ALL if t.role is not topics.Role.OUTPUT]
    deadline = time.time() + timeout
    quiet_since = None
    lag: dict[TopicPartition, int] = {}
    while time.time() < deadline:
        lag = await lag_by_partition(settings, settings.app_id, names)
        if progress is not None:
            progress(sum(lag.values()))
        now = time.time()
        if not any(lag.values()):
            quiet_since = quiet_since or now
            if now - quiet_since >= settle:
                return quiet_since
        else:
            quiet_since = None
        await asyncio.sleep(0.25)
    behind = {f"{tp.topic}:{tp.partition}": n for tp, n in lag.items() if n}
    raise TimeoutError(f"the pipeline did not drain within {timeout}s; lag: {behind}")


async def last_record_time(settings: Settings, spec: topics.TopicSpec) -> float:
    """The broker timestamp (s) of the newest record of an output topic."""
    return await newest_timestamp(settings, spec.name(settings))


async def newest_timestamp(settings: Settings, name: str) -> float:
    """The broker timestamp (s) of the newest record of topic ``name`` (0 if empty)."""
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
        deadline = time.time() + 30
        while remaining:
            if time.time() > deadline:
                raise TimeoutError(f"{name}: the last records of {sorted(remaining)} not read")
            batch = await consumer.getmany(timeout_ms=500)
            for tp, recs in batch.items():
                for rec in recs:
                    newest = max(newest, rec.timestamp / 1000)
                    if rec.offset >= ends[tp] - 1:
                        remaining.discard(tp)
        return newest
    finally:
        await consumer.stop()
