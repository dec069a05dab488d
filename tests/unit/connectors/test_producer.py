import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from connectors.metrics import connector_up
from connectors.producer import BatchProducer, RecordTooLarge
from stream import topics
from stream.settings import Settings
from tests.unit.connectors.standin import StandInProducer


def test_records_respect_the_count_and_size_limits():
    p = BatchProducer(Settings.from_env({}, batch_max_events=3, record_max_bytes=1024))
    items = [json.dumps({"i": i, "pad": "x" * 100}).encode() for i in range(10)]
    records = list(p._records(items))
    decoded = [json.loads(r) for r in records]
    assert [e["i"] for batch in decoded for e in batch] == list(range(10))
    assert all(len(batch) <= 3 for batch in decoded)
    assert all(len(r) <= 1024 for r in records)


def test_events_are_grouped_by_the_partition_of_their_key():
    from stream.core.partitioner import partition_for

    s = Settings.from_env({}, partitions=4)
    p = BatchProducer(s)
    keys = [f"device-{i}" for i in range(20)]
    for k in keys:
        p.add(topics.WEB_EVENTS, k, {"k": k})
    for (name, partition), items in p._pending.items():
        assert name == "c360.web.events"
        assert {partition_for(json.loads(i)["k"], 4) for i in items} == {partition}
    assert p.buffered == 20


async def test_an_event_too_large_for_a_record_alone_is_refused_and_nothing_is_sent():
    p = StandInProducer(Settings.from_env({}, record_max_bytes=1024))
    await p.start()
    fits = b'"' + b"x" * (1024 - 4) + b'"'  # 1022 bytes: the record is 1024
    assert await p.deliver(topics.WEB_EVENTS, [("d1", fits)]) == 1
    assert [len(r) for _, _, r in p.kafka.records] == [1024]
    over = b'"' + b"x" * (1024 - 3) + b'"'  # 1023 bytes: the record would be 1025
    with pytest.raises(RecordTooLarge, match="1023 bytes"):
        await p.deliver(topics.WEB_EVENTS, [("d2", b"{}"), ("d1", over)])
    assert len(p.kafka.records) == 1  # not even the small one of the same call was sent


async def up_and_running() -> tuple[StandInProducer, Any]:
    """A started stand-in producer and its up gauge, at 1 as a connector sets it."""
    up = connector_up(CollectorRegistry()).labels("web")
    p = StandInProducer(Settings.from_env({}), up=up)
    await p.start()
    up.set(1)
    return p, up


async def test_the_up_gauge_follows_the_outcome_of_deliveries():
    p, up = await up_and_running()
    p.kafka.fail = RuntimeError("KafkaTimeoutError")
    with pytest.raises(RuntimeError):
        await p.deliver(topics.WEB_EVENTS, [("d1", {"i": 1})])
    assert up._value.get() == 0
    await p.deliver(topics.WEB_EVENTS, [])  # nothing sent: nothing learnt
    assert up._value.get() == 0
    p.kafka.fail = None
    await p.deliver(topics.WEB_EVENTS, [("d1", {"i": 2})])
    assert up._value.get() == 1
    p.add(topics.WEB_EVENTS, "d1", {"i": 3})
    p.kafka.fail = RuntimeError("NotEnoughReplicas")
    with pytest.raises(RuntimeError):
        await p.flush()
    assert up._value.get() == 0


async def test_a_probe_tells_an_idle_connector_that_kafka_is_gone_and_back():
    p, up = await up_and_running()
    p.kafka.unreachable = True
    assert await p.probe() is False and up._value.get() == 0
    p.kafka.unreachable = False
    assert await p.probe() is True and up._value.get() == 1
    # a broker that answers metadata but refused the last delivery is not up yet
    p.kafka.fail = RuntimeError("NotEnoughReplicas")
    with pytest.raises(RuntimeError):
        await p.deliver(topics.WEB_EVENTS, [("d1", {"i": 1})])
    assert await p.probe() is True and up._value.get() == 0
    p.kafka.fail = None
    await p.deliver(topics.WEB_EVENTS, [("d1", {"i": 2})])
    assert up._value.get() == 1


async def test_a_delivery_that_hangs_keeps_up_at_0_whatever_a_probe_says():
    # a broker that answers metadata but holds records (NOT_ENOUGH_REPLICAS, acks=all):
    # the collector gives up waiting and marks it; only a delivery that lands clears it
    p, up = await up_and_running()
    p.mark_failed()
    assert await p.probe() is True and up._value.get() == 0
    await p.deliver(topics.WEB_EVENTS, [("d1", {"i": 1})])
    assert up._value.get() == 1
