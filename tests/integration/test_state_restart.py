"""The state layer across restarts: gracefully, by kill -9, and with the local disk lost.

A worker is stopped in the middle of a stream, restarted, and the final state must be
exactly what the simulator computes from the same inputs: no event lost, none counted
twice. After a loss of its data directory a worker rebuilds its state from the
changelogs.

The guards that depend on arrival order are off here, worker and simulator alike:
the hub cap and the per-person limits (which merges happen before a cap or limit is
reached depends on the order the link stage sees the links in, and a restart
legitimately changes it). Without them the persons are the connected components of
the links whatever the order, so any difference is a lost or doubled message.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import shutil
import signal
import time
from collections import Counter

import msgspec
import pytest

from stream.core.rules import Rules
from stream.loadgen import batched, produce
from stream.population import Population
from stream.sim import Input, Simulator
from stream.watch import wait_quiet
from tests.support.worker import http_get

pytestmark = pytest.mark.integration

PERSONS = 150
EVENTS = 5000


ORDER_FREE = Rules(max_joins={}, limits={})


@pytest.fixture
def settings(settings, tmp_path):
    """The test settings with a rules file that turns the order-dependent guards off."""
    path = tmp_path / "rules.json"
    path.write_bytes(msgspec.json.encode(ORDER_FREE))
    return dataclasses.replace(settings, rules_file=path)


def population_events() -> list[tuple[str, str, dict]]:
    return list(Population(PERSONS, seed=11).events(EVENTS))


def expected(events) -> dict[str, tuple[frozenset, int]]:
    """identifier -> (its person's identifiers, its person's event count), offline."""
    sim = Simulator(partitions=2, seed=5, rules=ORDER_FREE)
    sim.run([Input(s, msgspec.json.encode(p), key=k) for s, k, p in events])
    out = {}
    for row in sim.persons().values():
        members = frozenset(row["m"])
        for ident in members:
            out[ident] = (members, row["a"]["n"])
    return out


def metric(settings, name: str) -> float:
    status, body = http_get(settings.web_url + "/metrics")
    if status != 200:
        return 0.0
    total = 0.0
    for line in body.decode().splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


def wait_for(predicate, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def check_final(settings, want: dict[str, tuple[frozenset, int]]) -> None:
    key = {"X-API-Key": settings.api_key}
    seen_persons = {}
    for ident, (members, events) in want.items():
        status, body = http_get(f"{settings.web_url}/v1/profiles/{ident}", key)
        assert status == 200, (ident, status, body[:200])
        profile = json.loads(body)
        got = frozenset(i for group in profile["identifiers"].values() for i in group)
        assert got == members, ident
        assert profile["events"] == events, (ident, profile["events"], events)
        seen_persons[profile["person_id"]] = profile["events"]
    assert sum(seen_persons.values()) == sum(Counter({m: n for m, n in want.values()}).values())


@pytest.mark.parametrize("how", ["kill -9", "graceful"])
def test_a_restart_mid_stream_loses_nothing_and_counts_nothing_twice(settings, start_worker, how):
    events = population_events()
    want = expected(events)
    worker = start_worker(settings)
    worker.wait_ready()
    records = batched(settings, events, batch=50)
    asyncio.run(produce(settings, records))
    # stop it once the profile stage is part way through
    wait_for(lambda: metric(settings, "c360_stage_records_total") > 20)
    worker.stop(signal.SIGKILL if how == "kill -9" else signal.SIGTERM)
    restarted = start_worker(settings, name="restarted")
    restarted.wait_ready()
    asyncio.run(wait_quiet(settings, timeout=120))
    check_final(settings, want)


def test_a_worker_that_lost_its_disk_rebuilds_its_state_from_the_changelogs(settings, start_worker):
    events = population_events()
    want = expected(events)
    worker = start_worker(settings)
    worker.wait_ready()
    asyncio.run(produce(settings, batched(settings, events, batch=100)))
    asyncio.run(wait_quiet(settings, timeout=120))
    worker.stop()
    shutil.rmtree(settings.data_dir)
    rebuilt = start_worker(settings, name="rebuilt")
    rebuilt.wait_ready(timeout=120)
    check_final(settings, want)
