"""Ingest on the real broker: bad records and bad events in batches are dead-lettered
with their reasons, while the valid events flow on, in order; a transactional
producer's events flow on past its commit markers."""

from __future__ import annotations

import asyncio
import re
import time

import msgspec
import orjson
import pytest
from aiokafka import TopicPartition

from stream import topics
from stream.contract.outputs import DeadLetter
from stream.core.messages import DECODERS, Tick
from tests.support.kafka import produce, produce_in_transactions, read_until, wait_committed
from tests.support.worker import http_get

pytestmark = pytest.mark.integration


def facts_of(records) -> list:
    """The facts in route-topic records (lists of [source, seq, messages] segments)."""
    return [m for r in records for _, _, items in DECODERS["route"].decode(r.value) for m in items]


def fact_ids(records) -> list[str]:
    """The ids of the facts in route-topic records (the leader's ticks come too)."""
    return [f.id for f in facts_of(records) if not isinstance(f, Tick)]


def route_ids(settings, n: int, timeout: float) -> list[str]:
    """The ids of the first ``n`` facts on the route topic (fail after ``timeout``)."""
    route = topics.ROUTE.name(settings)
    read = read_until(settings.kafka_bootstrap, route, lambda rs: len(fact_ids(rs)) >= n, timeout)
    return fact_ids(asyncio.run(read))


def page(message_id: str, device: str = "device-7", **extra) -> dict:
    return {
        "type": "page",
        "messageId": message_id,
        "anonymousId": device,
        "timestamp": "2026-11-02T09:00:00Z",
        **extra,
    }


def test_dead_letters_with_reasons_while_valid_events_flow_on_in_order(settings, start_worker):
    worker = start_worker(settings)
    worker.wait_ready()
    web = topics.WEB_EVENTS.name(settings)
    records = [
        (b"device-7", orjson.dumps(page("v1"))),
        (b"device-7", b"{this is not json"),
        (b"device-7", orjson.dumps([page("v2"), page("bad", userId=42), page("v3")])),
        (b"device-7", b"\xff\xfe\x00garbage"),
        (b"device-7", orjson.dumps(page("junk-id", device="undefined"))),
        (b"device-7", orjson.dumps(page("v4"))),
    ]
    asyncio.run(produce(settings.kafka_bootstrap, web, records, partition=0))

    route = asyncio.run(
        read_until(
            settings.kafka_bootstrap,
            topics.ROUTE.name(settings),
            lambda rs: len(facts_of(rs)) >= 4,
        )
    )
    facts = facts_of(route)
    assert [f.id for f in facts] == ["v1", "v2", "v3", "v4"]
    assert {f.ident for f in facts} == {"anon:device-7"}

    dead = asyncio.run(
        read_until(
            settings.kafka_bootstrap, topics.DEAD_LETTERS.name(settings), lambda rs: len(rs) >= 4
        )
    )
    letters = sorted(
        (msgspec.json.decode(r.value, type=DeadLetter) for r in dead),
        key=lambda d: (d.source.offset, d.index or 0),
    )
    assert [(d.source.offset, d.index, d.reason) for d in letters] == [
        (1, None, "not_json"),
        (2, 1, "invalid_field"),
        (3, None, "not_utf8"),
        (4, None, "bad_identifier"),
    ]
    assert all(d.source.topic == web and d.source.partition == 0 for d in letters)
    assert letters[0].original == "{this is not json"
    assert "$.userId" in letters[1].message
    assert orjson.loads(letters[1].original)["messageId"] == "bad"
    assert letters[2].original_encoding == "base64"
    assert all(r.key == web.encode() for r in dead)

    status, body = http_get(settings.web_url + "/metrics")
    assert status == 200
    text = body.decode()
    assert 'c360_dead_letters_total{reason="not_json",source="web.events"} 1.0' in text
    assert 'c360_events_in_total{source="web.events",type="page"} 4.0' in text


def test_a_transactional_producers_events_flow_on_past_its_commit_markers(settings, start_worker):
    # Kafka Connect, Streams or Flink with exactly-once write in transactions: each commit
    # leaves a marker, an offset no consumer is handed. Ingest took each for a hole and
    # sought it back for ~30 s before it went on (a stall per transaction): now a probe
    # of the log finds it holds no record there, and ingest goes on at once, unsought.
    worker = start_worker(settings)
    worker.wait_ready()
    web = topics.WEB_EVENTS.name(settings)
    transactions = [
        [(b"device-7", orjson.dumps(page(f"t{n}-{i}"))) for i in range(2)] for n in range(5)
    ]
    offsets = asyncio.run(
        produce_in_transactions(settings.kafka_bootstrap, web, transactions, partition=0)
    )
    assert offsets == [0, 1, 3, 4, 6, 7, 9, 10, 12, 13]  # 2, 5, 8, 11: the markers

    # 4 markers would have taken ~2 minutes; 30 s leaves room for a slow machine
    route = asyncio.run(
        read_until(
            settings.kafka_bootstrap,
            topics.ROUTE.name(settings),
            lambda rs: len(facts_of(rs)) >= 10,
            timeout=30.0,
        )
    )
    assert [f.id for f in facts_of(route)] == [f"t{n}-{i}" for n in range(5) for i in range(2)]
    status, body = http_get(settings.web_url + "/metrics")
    assert status == 200
    sought = re.search(r'^c360_redeliveries_total\{reason="hole"\} (\S+)$', body.decode(), re.M)
    assert sought is not None and float(sought.group(1)) == 0.0  # no marker was sought back
    # and faust commits through the markers: up to the last one, past the last record
    asyncio.run(
        wait_committed(settings.kafka_bootstrap, settings.app_id, TopicPartition(web, 0), 14)
    )


def redeliveries(settings, reason: str) -> float:
    """A worker's ``c360_redeliveries_total`` for ``reason`` (0: not counted yet)."""
    status, body = http_get(settings.web_url + "/metrics")
    assert status == 200
    pattern = rf'^c360_redeliveries_total\{{reason="{reason}"\}} (\S+)$'
    found = re.search(pattern, body.decode(), re.M)
    return float(found.group(1)) if found is not None else 0.0


def test_a_transaction_after_a_quiet_spell_flows_on_past_the_marker_unstick_sought(
    settings, start_worker
):
    # The log ends in the last transaction's marker while the producer is quiet: the end
    # is past ingest's next offset, so unstick seeks it there (once). The next
    # transaction's record then shows the hole at the marker, which was not read (its seek
    # was not the first): ingest sought it back once a second for ~30 s, a stall per quiet
    # spell, as before probes at the first seek.
    worker = start_worker(settings)
    worker.wait_ready()
    web = topics.WEB_EVENTS.name(settings)

    def send(name: str) -> list[int]:
        batch = [[(b"device-7", orjson.dumps(page(f"{name}-{i}"))) for i in range(2)]]
        return asyncio.run(produce_in_transactions(settings.kafka_bootstrap, web, batch, 0))

    assert send("a") == [0, 1]  # 2: the marker, the log's end
    assert route_ids(settings, 2, 30.0) == ["a-0", "a-1"]
    deadline = time.monotonic() + 30.0
    while redeliveries(settings, "unstick") < 1:  # idle at the marker: sought there
        assert time.monotonic() < deadline, "unstick never sought the marker"
        time.sleep(0.1)
    assert send("b") == [3, 4]
    assert route_ids(settings, 4, 15.0) == ["a-0", "a-1", "b-0", "b-1"]
    assert redeliveries(settings, "hole") == 0.0  # the marker was read, not sought


def test_an_aborted_transactions_events_are_not_ingested(settings, start_worker):
    # A task of an exactly-once producer that fails aborts its transaction, whose records
    # stay in the log: read uncommitted, they were ingested as if they had happened. Read
    # committed, the consumer skips them and their markers: ingest sees a hole there,
    # which the probe finds holds no committed record, and goes on unsought.
    worker = start_worker(settings)
    worker.wait_ready()
    web = topics.WEB_EVENTS.name(settings)
    transactions = [
        [(b"device-7", orjson.dumps(page(f"t{n}-{i}"))) for i in range(2)] for n in range(3)
    ]
    offsets = asyncio.run(
        produce_in_transactions(
            settings.kafka_bootstrap, web, transactions, partition=0, aborted={1}
        )
    )
    assert offsets == [0, 1, 3, 4, 6, 7]  # 2, 5, 8: the markers (5 the abort's)

    assert route_ids(settings, 4, 30.0) == ["t0-0", "t0-1", "t2-0", "t2-1"]
    assert redeliveries(settings, "hole") == 0.0
    # and the group commits past the aborted records, up to the last marker
    asyncio.run(
        wait_committed(settings.kafka_bootstrap, settings.app_id, TopicPartition(web, 0), 8)
    )


def test_the_group_commits_past_an_aborted_transaction_after_the_first_record(
    settings, start_worker
):
    # faust records the offsets its fetcher passed over only after a record whose
    # offset is truthy (``gap > 1 and r_offset``): after the record at offset 0, the
    # aborted transaction's record and both markers (1..3) were no gap, and faust
    # committed nothing of the partition again (the head of its acknowledgements more
    # than one past the committed offset) until unstick, at a quiet spell, sought it
    # back to the committed offset (read uncommitted, only the marker was missing).
    worker = start_worker(settings)
    worker.wait_ready()
    web = topics.WEB_EVENTS.name(settings)
    transactions = [[(b"device-7", orjson.dumps(page(f"t{n}")))] for n in range(3)]
    offsets = asyncio.run(
        produce_in_transactions(
            settings.kafka_bootstrap, web, transactions, partition=0, aborted={1}
        )
    )
    assert offsets == [0, 2, 4]  # 1, 3, 5: the markers (3 the abort's)
    # a plain record ends the log: no marker there for unstick to seek
    asyncio.run(produce(settings.kafka_bootstrap, web, [(b"device-7", orjson.dumps(page("p")))], 0))

    assert route_ids(settings, 3, 30.0) == ["t0", "t2", "p"]
    asyncio.run(
        wait_committed(
            settings.kafka_bootstrap, settings.app_id, TopicPartition(web, 0), 7, timeout=15.0
        )
    )
    assert redeliveries(settings, "unstick") == 0.0


def test_an_open_transaction_holds_back_its_partition_quietly_until_it_commits(
    settings, start_worker
):
    # Read committed, nothing past a transaction left open is handed over (a plain record
    # after it neither): ingest must wait without seeking it over and over, and go on at
    # once when it commits.
    from aiokafka import AIOKafkaProducer

    worker = start_worker(settings)
    worker.wait_ready()
    web = topics.WEB_EVENTS.name(settings)

    batch = [[(b"device-7", orjson.dumps(page(f"a-{i}"))) for i in range(2)]]
    assert asyncio.run(produce_in_transactions(settings.kafka_bootstrap, web, batch, 0)) == [0, 1]

    async def open_then_commit() -> float:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, transactional_id=f"{web}-open"
        )
        await producer.start()
        try:
            await producer.begin_transaction()
            for i in range(2):  # 3, 4
                await producer.send_and_wait(web, orjson.dumps(page(f"b-{i}")), b"device-7", 0)
            await produce(  # 5, a plain record past the open transaction
                settings.kafka_bootstrap, web, [(b"device-7", orjson.dumps(page("p")))], 0
            )
            await asyncio.sleep(8.0)  # unstick's stall is 2 s; its timer runs 4x a second
            await producer.commit_transaction()  # 6: the marker
            return time.monotonic()
        finally:
            await producer.stop()

    committed_at = asyncio.run(open_then_commit())
    assert route_ids(settings, 5, 10.0) == ["a-0", "a-1", "b-0", "b-1", "p"]
    assert time.monotonic() - committed_at < 5.0  # at once (allowing for the reads)
    seeks = [line for line in worker.warnings().splitlines() if "seeking" in line]
    assert len(seeks) <= 2, "\n".join(seeks)  # unstick at the markers 2 and 6, once each
    assert redeliveries(settings, "hole") == 0.0
    asyncio.run(
        wait_committed(settings.kafka_bootstrap, settings.app_id, TopicPartition(web, 0), 6)
    )
