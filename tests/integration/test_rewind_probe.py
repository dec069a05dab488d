"""Rewind.first_record on the real broker: where a partition's records resume past a
hole, read by a consumer of its own (a transaction's marker takes an offset that no
consumer is ever handed; seeking back to it brought the next record again, for ever)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faust.types import TP
from yarl import URL

from stream.shell.rewind import Rewind

pytestmark = pytest.mark.integration


async def _transactional_log(kafka: str, topic: str, transactions: int = 2) -> list[int]:
    """Transactions of two records each; the offsets of the records."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=kafka, transactional_id=f"{topic}-tx")
    await producer.start()
    offsets = []
    try:
        for n in range(transactions):
            async with producer.transaction():
                for i in range(2):
                    sent = await producer.send_and_wait(topic, f"{n}-{i}".encode(), partition=0)
                    offsets.append(sent.offset)
    finally:
        await producer.stop()
    return offsets


def test_the_first_record_after_a_transactions_marker_is_the_next_transactions(kafka, settings):
    topic = settings.topic_prefix + "probe"
    offsets = asyncio.run(_transactional_log(kafka, topic))
    assert offsets == [0, 1, 3, 4]  # offset 2 is the first transaction's commit marker
    app = SimpleNamespace(conf=SimpleNamespace(broker=[URL(f"kafka://{kafka}")]))
    rewind = Rewind(app)
    tp = TP(topic, 0)

    async def probe(offsets: list[int]) -> tuple[list[int | None], int | None]:
        try:  # one consumer for every read
            firsts = [await rewind.first_record(tp, offset) for offset in offsets]
            return firsts, await rewind.log_start(tp)
        finally:
            await rewind.stop()

    # a record: it exists; the marker holds none; and again, once assigned afresh
    assert asyncio.run(probe([1, 2, 0, 2])) == ([1, 3, 0, 3], 0)
    assert rewind._probe is None  # stopped
    # (the topic has the deployment's prefix: the settings fixture deletes it)


def test_probes_ask_the_cluster_for_no_metadata_once_the_partition_was_read(kafka, settings):
    # Each probe assigned the partition and then nothing (no background fetch): two
    # metadata requests a probe, one of them for every topic of the cluster (aiokafka asks
    # for all topics when a consumer tracks none), once per transaction marker.
    topic, other = settings.topic_prefix + "probe", settings.topic_prefix + "probe2"
    asyncio.run(_transactional_log(kafka, topic))
    asyncio.run(_transactional_log(kafka, other))
    app = SimpleNamespace(conf=SimpleNamespace(broker=[URL(f"kafka://{kafka}")]))
    rewind = Rewind(app)
    tp, tp2 = TP(topic, 0), TP(other, 0)
    asked: list[list[str] | None] = []  # each metadata request's topics (None: all)
    new_probe = rewind._new_probe

    def counted() -> Any:
        probe = new_probe()
        update = probe._client._metadata_update

        async def metadata(cluster: Any, topics: Any) -> Any:
            asked.append(sorted(topics) or None)
            return await update(cluster, topics)

        probe._client._metadata_update = metadata
        return probe

    rewind._new_probe = counted

    async def probe() -> tuple[list[int | None], list[list[str] | None]]:
        try:
            await rewind.first_record(tp, 2)
            await rewind.first_record(tp2, 2)
            before = len(asked)
            firsts = [
                await rewind.first_record(where, offset)
                for where in [tp, tp2] * 5
                for offset in [1, 2, 0, 2]
            ]
            await rewind.log_start(tp)
            return firsts, asked[before:]
        finally:
            await rewind.stop()

    firsts, later = asyncio.run(probe())
    assert firsts == [1, 3, 0, 3] * 10
    # (the last first read's own request for its topics may come after it)
    assert None not in later and len(later) <= 1, later


def test_one_read_of_the_log_answers_for_the_markers_it_passed(kafka, settings):
    # A producer of small transactions leaves a marker every few offsets: a read of the
    # log (and a ListOffsets request, to tell markers from retention) for each one kept
    # ingest to ~300 one-event transactions a second. The records one read brings show
    # the markers up to its last one.
    topic = settings.topic_prefix + "small-tx"
    asyncio.run(_transactional_log(kafka, topic, transactions=5))
    app = SimpleNamespace(conf=SimpleNamespace(broker=[URL(f"kafka://{kafka}")]))
    rewind = Rewind(app)
    calls: list[str] = []
    new_probe = rewind._new_probe

    def counted() -> Any:
        probe = new_probe()
        getmany, beginning_offsets = probe.getmany, probe.beginning_offsets

        async def fetch(*args: Any, **kwargs: Any) -> Any:
            calls.append("fetch")
            return await getmany(*args, **kwargs)

        async def start(*args: Any, **kwargs: Any) -> Any:
            calls.append("start")
            return await beginning_offsets(*args, **kwargs)

        probe.getmany, probe.beginning_offsets = fetch, start
        return probe

    rewind._new_probe = counted

    async def holes() -> list[bool]:
        try:  # 2, 5, 8, 11: the markers of the first four transactions
            return [await rewind.to(topic, 0, m, "hole", probe=True) for m in (2, 5, 8, 11)]
        finally:
            await rewind.stop()

    assert asyncio.run(holes()) == [False] * 4  # given up, unsought
    assert rewind.floor_of(topic, 0) == 12
    # one read, and the log's start for the first (no record before it was read); the
    # next follow a record: not retention
    assert calls == ["fetch", "start"]
