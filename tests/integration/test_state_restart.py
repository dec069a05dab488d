"""The state layer across restarts: gracefully, by kill -9, and with the local disk lost.

A worker is stopped in the middle of a stream, restarted, and the final state must be
exactly what the inputs give: no event lost, none counted twice. The persons are those
of the links in the order the link stage recorded them (DESIGN.md, invariant 1; see
tests/support/identity.py: the guards make them depend on that order, and a batched
pipeline's order is not the simulator's), each person's events the sum of its
identifiers' events. After a loss of its data directory a worker rebuilds its state from
the changelogs. Every restarted worker is also checked against its consumer group: the
input offset stored with each stage partition's state is at least the committed position
minus one (faust never committed past work the state lacks), and at most the last offset.
"""

from __future__ import annotations

import asyncio
import shutil
import signal

import orjson
import pytest

from stream import topics
from stream.loadgen import batched, produce
from stream.population import Population
from stream.watch import wait_quiet
from tests.support.applied import check_final, check_offsets, expected, wait_applied
from tests.support.identity import events_by_identifier
from tests.support.kafka import read_all
from tests.support.waiting import wait_for
from tests.support.worker import metric_total

pytestmark = pytest.mark.integration

PERSONS = 150
EVENTS = 5000


def population_events() -> list[tuple[str, str, dict]]:
    return list(Population(PERSONS, seed=11).events(EVENTS))


@pytest.mark.parametrize("how", ["kill -9", "graceful"])
def test_a_restart_mid_stream_loses_nothing_and_counts_nothing_twice(settings, start_worker, how):
    events = population_events()
    counts = events_by_identifier(events)
    worker = start_worker(settings)
    worker.wait_ready()
    records = batched(settings, events, batch=50)
    asyncio.run(produce(settings, records))
    # stop it once the profile stage is part way through
    wait_for(lambda: metric_total(settings, "c360_stage_records_total"), lambda n: n > 20)
    worker.stop(signal.SIGKILL if how == "kill -9" else signal.SIGTERM)
    restarted = start_worker(settings, name="restarted")
    restarted.wait_ready()
    wait_applied(settings)
    check_offsets(settings)
    check_final(settings, expected(settings, counts))
    check_redone_changes(settings)


REDONE = {
    topics.PROFILE_CHANGES: lambda c: (c["person_id"], c["version"]),
    topics.SEGMENT_CHANGES: lambda c: (c["person_id"], c["version"], c["segment"], c["action"]),
    topics.ALERTS: lambda c: c["alert_id"],
}
"""How a consumer deduplicates each output topic of the profile stage."""


def check_redone_changes(settings) -> None:
    """An output the restarted worker sent again (the same person and version, the same
    alert id: the work after the last commit is redone) is what it sent the first time:
    the profile stage computes from its state and its input only, and its input records
    are the same records (a sender's own redo is dropped segment by segment). Runs of
    this test saw hundreds of changes sent again."""
    for spec, key_of in REDONE.items():
        first: dict = {}
        for record in asyncio.run(read_all(settings.kafka_bootstrap, spec.name(settings))):
            value = orjson.loads(record.value)
            key = key_of(value)
            assert first.setdefault(key, value) == value, (spec.suffix, key)


def test_a_worker_that_lost_its_disk_rebuilds_its_state_from_the_changelogs(settings, start_worker):
    events = population_events()
    counts = events_by_identifier(events)
    worker = start_worker(settings)
    worker.wait_ready()
    asyncio.run(produce(settings, batched(settings, events, batch=100)))
    asyncio.run(wait_quiet(settings, timeout=120))
    worker.stop()
    shutil.rmtree(settings.data_dir)
    rebuilt = start_worker(settings, name="rebuilt")
    rebuilt.wait_ready(timeout=120)
    check_offsets(settings)
    check_final(settings, expected(settings, counts))


def test_a_kill_while_input_comes_in_transactions_some_aborted(settings, start_worker):
    # Read committed across a kill -9: every committed event counted once, none of an
    # aborted transaction's (copies of web events under new message ids, which would
    # count twice), while the input is written in transactions during the kill.
    import threading

    from aiokafka import AIOKafkaProducer

    events = population_events()
    counts = events_by_identifier(events)
    worker = start_worker(settings)
    worker.wait_ready()
    records = batched(settings, events, batch=20)
    web = topics.WEB_EVENTS.name(settings)
    last = {(r.topic, r.partition): i for i, r in enumerate(records)}
    plain = sorted(last.values())  # each partition's last record: no marker ends a log

    def aborted_copy(value: bytes) -> bytes:
        items = orjson.loads(value)
        items = items if isinstance(items, list) else [items]
        return orjson.dumps([{**e, "messageId": f"{e['messageId']}-aborted"} for e in items])

    async def write() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, transactional_id=f"{web}-restart"
        )
        await producer.start()
        try:
            for n, start in enumerate(range(0, len(records), 3)):
                chunk = [i for i in range(start, min(start + 3, len(records))) if i not in plain]
                if n % 4 == 1:  # an aborted transaction before the committed one
                    await producer.begin_transaction()
                    for i in chunk:
                        r = records[i]
                        if r.topic == web:
                            await producer.send(r.topic, aborted_copy(r.value), r.key, r.partition)
                    await producer.abort_transaction()
                await producer.begin_transaction()
                for i in chunk:
                    r = records[i]
                    await producer.send(r.topic, r.value, key=r.key, partition=r.partition)
                await producer.commit_transaction()
                await asyncio.sleep(0.01)
        finally:
            await producer.stop()
        await produce(settings, [records[i] for i in plain])

    writer = threading.Thread(target=lambda: asyncio.run(write()))
    writer.start()
    try:
        wait_for(lambda: metric_total(settings, "c360_stage_records_total"), lambda n: n > 20)
        assert writer.is_alive(), "the input was all written before the kill"
        worker.stop(signal.SIGKILL)
        restarted = start_worker(settings, name="restarted")
        restarted.wait_ready()
    finally:
        writer.join(120)
    assert not writer.is_alive()
    wait_applied(settings)
    check_offsets(settings)
    check_final(settings, expected(settings, counts))
    check_redone_changes(settings)
