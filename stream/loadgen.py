"""Producing event streams to Kafka in batched records, at a target rate (as connectors do).

Used by ``c360 generate --produce``, ``make demo``, the benchmarks and the tests.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import msgspec
from aiokafka import AIOKafkaProducer

from stream import topics
from stream.core.partitioner import partition_for
from stream.settings import Settings

_encode = msgspec.json.Encoder().encode
UNBATCHED = ("prices", "labels")  # compacted, keyed reference topics: one record per key
DEFAULT_BATCH = 200


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    value: bytes
    events: int
    key: bytes | None = None


def batched(
    settings: Settings, events: Iterable[tuple[str, str, dict]], batch: int | None = None
) -> list[Record]:
    """Group (topic suffix, key, payload) events into records of up to ``batch`` events per
    destination partition (the producer's partitioner over each event's key), in order.
    By default 200 events, or fewer when ``C360_BATCH_MAX_EVENTS`` says so; and never
    more bytes than ``C360_RECORD_MAX_BYTES`` (an event larger on its own goes alone): a
    worker dead-letters a larger batch or record whole."""
    if batch is None:
        batch = min(DEFAULT_BATCH, settings.batch_max_events)
    room = settings.record_max_bytes - 2  # the array's [ and ]
    out: list[Record] = []
    pending: dict[tuple[str, int], tuple[list[bytes], int]] = {}

    def close(group: tuple[str, int], items: list[bytes]) -> None:
        out.append(Record(group[0], group[1], b"[" + b",".join(items) + b"]", len(items)))

    for suffix, key, payload in events:
        spec = topics.by_suffix(suffix)
        n = spec.partition_count(settings)
        group = (spec.name(settings), 0 if n == 1 else partition_for(key, n))
        if suffix in UNBATCHED or batch <= 1:
            out.append(Record(group[0], group[1], _encode(payload), 1, key.encode()))
            continue
        item = _encode(payload)
        items, size = pending.get(group, ([], 0))
        if items and size + 1 + len(item) > room:  # 1: the comma
            close(group, items)
            items, size = [], 0
        items.append(item)
        size += len(item) + (1 if len(items) > 1 else 0)
        if len(items) >= batch:
            close(group, items)
            items, size = [], 0
        pending[group] = (items, size)
    for group, (items, _) in pending.items():
        if items:
            close(group, items)
    return out


async def produce(
    settings: Settings,
    records: Iterable[Record],
    *,
    rate: float | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[float, int]:
    """Send records (at ``rate`` events/s when given) and wait for the broker's acks.

    Returns (time of the first send, events sent)."""
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
    sent = 0
    try:
        futures = []
        for record in records:
            futures.append(
                await producer.send(
                    record.topic, record.value, key=record.key, partition=record.partition
                )
            )
            sent += record.events
            if progress is not None:
                progress(sent)
            if rate:
                ahead = sent / rate - (time.time() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if len(futures) >= 1000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return started, sent
