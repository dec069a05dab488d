"""Real-broker helpers for integration tests: reachability, produce, wait-for-records."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Callable, Iterable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


def bootstrap() -> str:
    return os.environ.get("C360_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


def reachable(address: str, timeout: float = 1.0) -> bool:
    host, _, port = address.split(",")[0].rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


async def produce(
    address: str,
    topic: str,
    records: Iterable[tuple[bytes | None, bytes]],
    partition: int | None = None,
) -> None:
    """Produce (key, value) records and wait until the broker has them."""
    producer = AIOKafkaProducer(bootstrap_servers=address, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [
            await producer.send(topic, value=value, key=key, partition=partition)
            for key, value in records
        ]
        await producer.flush()
        for f in futures:
            await f
    finally:
        await producer.stop()


async def produce_in_transactions(
    address: str,
    topic: str,
    transactions: Iterable[Iterable[tuple[bytes | None, bytes]]],
    partition: int | None = None,
    aborted: Iterable[int] = (),
) -> list[int]:
    """Produce each list of (key, value) records in a transaction of its own, as Kafka
    Connect, Streams or Flink do with exactly-once, and abort those whose index is in
    ``aborted`` (a task that failed); the offsets of the records."""
    producer = AIOKafkaProducer(bootstrap_servers=address, transactional_id=f"{topic}-tx")
    await producer.start()
    offsets = []
    aborted = set(aborted)
    try:
        for n, records in enumerate(transactions):
            await producer.begin_transaction()
            for key, value in records:
                sent = await producer.send_and_wait(
                    topic, value=value, key=key, partition=partition
                )
                offsets.append(sent.offset)
            if n in aborted:
                await producer.abort_transaction()
            else:
                await producer.commit_transaction()
    finally:
        await producer.stop()
    return offsets


async def wait_committed(
    address: str, group: str, tp: TopicPartition, offset: int, timeout: float = 30.0
) -> None:
    """Wait until ``group`` has committed ``offset`` (or past it) for ``tp``; fail after
    ``timeout`` with the offset it has committed."""
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        deadline = time.monotonic() + timeout
        while True:
            offsets = await admin.list_consumer_group_offsets(group, partitions=[tp])
            meta = offsets.get(tp)
            committed = meta.offset if meta is not None else None
            if committed is not None and committed >= offset:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"{group} committed {committed} for {tp}, not {offset}")
            await asyncio.sleep(0.2)
    finally:
        await admin.close()


async def read_until(
    address: str,
    topic: str,
    done: Callable[[list], bool],
    timeout: float = 30.0,
) -> list:
    """Read a topic from the beginning until ``done(records)`` holds; fail after ``timeout``.

    Returns the aiokafka ConsumerRecords read so far.
    """
    consumer = AIOKafkaConsumer(
        bootstrap_servers=address,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
    )
    await consumer.start()
    records: list = []
    try:
        parts = consumer.partitions_for_topic(topic)
        deadline = time.monotonic() + 10
        while not parts:
            if time.monotonic() > deadline:
                raise AssertionError(f"topic {topic} does not exist")
            await consumer._client.force_metadata_update()
            parts = consumer.partitions_for_topic(topic)
        tps = [TopicPartition(topic, p) for p in sorted(parts)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        deadline = time.monotonic() + timeout
        while not done(records):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"timed out after {timeout}s reading {topic}: {len(records)} records so far"
                )
            batch = await consumer.getmany(timeout_ms=int(min(left, 0.5) * 1000))
            for tp_records in batch.values():
                records.extend(tp_records)
        return records
    finally:
        await consumer.stop()


async def read_all(address: str, topic: str, timeout: float = 30.0) -> list:
    """Every record a topic holds now (up to its end offsets when called)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=address, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(topic) or set()
        ends = await consumer.end_offsets([TopicPartition(topic, p) for p in parts])
    finally:
        await consumer.stop()
    want = sum(ends.values())
    return await read_until(address, topic, lambda records: len(records) >= want, timeout)


def run(coro):
    return asyncio.run(coro)


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    """Create a topic (replication 1)."""
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        await client.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await client.close()


async def list_topics(bootstrap: str) -> list[str]:
    """The names of every topic of the cluster."""
    client = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await client.start()
    try:
        return await client.list_topics()
    finally:
        await client.close()
