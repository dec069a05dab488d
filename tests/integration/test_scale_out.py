"""Two workers of one deployment: a worker joins mid-stream and later leaves mid-stream.

A second ``c360 worker`` with the same app id (its own data directory and web port)
takes over partitions while the first is busy: faust moves them, the new owner
restores their state from the changelogs, and the first worker's stage groups in
flight on a moved partition are either committed before the move or redone by the
new owner (its receivers drop the segments they already have). Then the second
worker stops (gracefully, or by kill -9: the group then waits out the session
timeout) while a stream is in flight and the first takes everything back: from its
own, now stale, databases plus the changelogs' tail, or, with
``C360_STANDBY_REPLICAS=1``, from the standby copies it kept current from the
changelogs (the kill -9 case runs with one).

After each step the state must be exactly what the inputs give (see
tests/integration/test_state_restart.py: no event lost, none counted twice), and the
lookup API of *either* worker must answer for *every* identifier: a worker asks the
owner of a key it does not hold (stream/shell/api.py), which the metrics of the
internal route prove was used; both give the same revenue-by-channel table, which
counts every person with events once.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal

import pytest

from stream import topics
from stream.loadgen import batched, produce
from stream.population import Population
from tests.support.applied import check_final, check_offsets, expected, wait_applied
from tests.support.identity import events_by_identifier
from tests.support.waiting import wait_for
from tests.support.worker import another_worker, http_get, metric_total

pytestmark = pytest.mark.integration

PERSONS = 150
EVENTS = 6000


def assigned(settings) -> set[tuple[str, int]]:
    """The input partitions a worker consumes (its lag gauge's samples; empty when its
    /metrics does not answer)."""
    try:
        status, body = http_get(settings.web_url + "/metrics")
    except OSError:
        return set()
    out = set()
    for line in body.decode().splitlines() if status == 200 else []:
        if line.startswith("c360_consumer_lag{"):
            labels = dict(re.findall(r'(\w+)="([^"]*)"', line))
            out.add((labels["topic"], int(labels["partition"])))
    return out


def split_between(first, second, names: list[str]) -> bool:
    """Each worker consumes one of the two partitions of every topic in ``names``."""
    a, b = assigned(first), assigned(second)
    return all(
        len({p for t, p in a if t == n}) == 1 and len({p for t, p in b if t == n}) == 1
        and {p for t, p in a if t == n} != {p for t, p in b if t == n}
        for n in names
    )  # fmt: skip


def internal_lookups(settings) -> float:
    """Lookups this worker answered for another worker (the owner side of a routed read)."""
    status, body = http_get(settings.web_url + "/metrics")
    prefix = 'c360_api_requests_total{route="/v1/_internal",status="200"}'
    lines = body.decode().splitlines() if status == 200 else []
    return sum(float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(prefix))


def channel_table(settings) -> list[dict]:
    status, body = http_get(
        settings.web_url + "/v1/channels/revenue", {"X-API-Key": settings.api_key}
    )
    assert status == 200, (status, body[:200])
    return json.loads(body)["channels"]


@pytest.mark.parametrize(
    ("leaving", "standbys"),
    [("graceful", 0), ("kill -9", 1)],
    ids=["graceful", "kill -9 with a standby replica"],
)
def test_a_worker_joining_and_one_leaving_mid_stream_lose_nothing(
    settings, start_worker, tmp_path, leaving, standbys
):
    settings = dataclasses.replace(settings, standby_replicas=standbys)
    events = list(Population(PERSONS, seed=23).events(EVENTS))
    n = len(events)  # the population's own count (it ends a person's session)
    thirds = [events[i * n // 3 : (i + 1) * n // 3] for i in range(3)]
    first = start_worker(settings, name="first")
    first.wait_ready()
    other = another_worker(settings, tmp_path / "data-second")
    both = [settings, other]

    # 1. a second worker joins while the first is part way through a stream
    asyncio.run(produce(settings, batched(settings, thirds[0], batch=50)))
    wait_for(lambda: metric_total(settings, "c360_stage_records_total"), lambda n: n > 20)
    second = start_worker(other, name="second")
    second.wait_ready(timeout=120)
    keyed = [spec.name(settings) for spec in (topics.ROUTE, topics.PROFILE)]
    wait_for(lambda: split_between(settings, other, keyed), bool, 90, "partitions split")
    asyncio.run(produce(settings, batched(settings, thirds[1], batch=50)))
    wait_applied(settings, both)
    check_offsets(settings, both)
    want = expected(settings, events_by_identifier(thirds[0] + thirds[1]))
    served = [internal_lookups(worker) for worker in both]
    for worker in both:  # either API answers for everyone
        check_final(worker, want)
    # ... and each answered lookups the other routed to it
    assert all(internal_lookups(w) > n for w, n in zip(both, served, strict=True)), served
    # the revenue-by-channel table gathers the channel partitions of both workers
    tables = [channel_table(worker) for worker in both]
    assert tables[0] == tables[1]
    live = {members for members, events in want.values() if events > 0}
    assert sum(row["persons"] for row in tables[0]) == len(live)

    # 2. the second worker leaves (stopped, or killed) while a stream is in flight
    applied = metric_total(settings, "c360_stage_records_total") + metric_total(
        other, "c360_stage_records_total"
    )
    asyncio.run(produce(settings, batched(settings, thirds[2], batch=50)))
    wait_for(
        lambda: (
            metric_total(settings, "c360_stage_records_total")
            + metric_total(other, "c360_stage_records_total")
        ),
        lambda n: n > applied + 10,
    )
    if leaving == "graceful":
        assert second.stop(signal.SIGTERM) == 0
    else:
        assert second.stop(signal.SIGKILL) == -signal.SIGKILL
    every = {(name, p) for name in keyed for p in range(2)}
    wait_for(lambda: assigned(settings), lambda a: every <= a, 90, "partitions back")
    wait_applied(settings)
    check_offsets(settings)
    check_final(settings, expected(settings, events_by_identifier(events)))
