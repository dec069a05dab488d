"""Time as a message: a tick carries ``now`` to every route and profile partition.

The leader worker sends one every ``C360_TICK_INTERVAL`` seconds; ``c360 tick
--now MS`` sends one by hand (a backfill, a test, a replay of time).
"""

from __future__ import annotations

from stream import topics
from stream.core.messages import Tick, encode_record
from stream.settings import Settings

TICKED = (topics.ROUTE, topics.PROFILE)


def tick_records(
    settings: Settings, now: int
) -> list[tuple[str, int, bytes, list[tuple[str, bytes]]]]:
    """(topic, partition, value, headers) of one tick for every ticked partition."""
    headers = [("c360-src", b"ticker")]
    return [
        (spec.name(settings), p, encode_record([("ticker", now, [Tick(now, p)])]), headers)
        for spec in TICKED
        for p in range(spec.partition_count(settings))
    ]


async def send_tick(settings: Settings, now: int) -> None:
    """Send a tick with a standalone producer and wait until the broker has it; raise
    :class:`~stream.admin.TopicProblem` before sending anything when a ticked topic is
    missing or has another partition count than the settings (the producer waited for a
    missing topic's metadata for 40 s, and failed at a partition it does not have after
    it had sent the others their tick)."""
    from aiokafka import AIOKafkaProducer

    from stream import admin

    await admin.ensure_topics(settings, TICKED, create_missing=False)
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True
    )
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value, partition=partition, headers=headers)
            for topic, partition, value, headers in tick_records(settings, now)
        ]
        for future in futures:
            await future
    finally:
        await producer.stop()
