"""Waiting until workers have applied every input record, and checking the input
offsets each stage partition stored with its state against the consumer group.

With several workers, each reports the stage partitions it holds; a partition's
position is the highest any of them stored (a worker that gave a partition away no
longer reports it, and one that holds a standby reports what the changelog gave it).
"""

from __future__ import annotations

import asyncio
import json
import time

from stream import topics
from stream.settings import Settings
from stream.shell.store import input_key
from stream.watch import committed_and_ends
from tests.support.identity import expected_persons, link_components, link_records, person_total
from tests.support.worker import http_get

STAGES = {
    "route": topics.ROUTE,
    "link": topics.LINK,
    "profile": topics.PROFILE,
    "channel": topics.CHANNEL,
}


def stored_offsets(workers: list[Settings]) -> dict[str, dict[str, int]]:
    """{stage: {"topic:partition": offset}}: the highest input offset any of the workers
    stored with a stage partition's state (a worker that does not answer adds nothing)."""
    out: dict[str, dict[str, int]] = {stage: {} for stage in STAGES}
    for worker in workers:
        status, body = http_get(
            worker.web_url + "/v1/_internal/offsets", {"X-API-Key": worker.api_key}
        )
        if status != 200:
            continue
        for stage, positions in json.loads(body).items():
            mine = out.setdefault(stage, {})
            for tp, offset in positions.items():
                mine[tp] = max(offset, mine.get(tp, -1))
    return out


def check_offsets(settings: Settings, workers: list[Settings] | None = None) -> None:
    """Each stage partition's stored input offset against the group's committed position,
    once everything was applied: the group committed nothing the state lacks (while a
    partition's state is open it may, and a restart or rebalance realigns it:
    ``StageRunner.realign``), and nothing is stored past the end."""
    stored = stored_offsets(workers or [settings])
    names = [spec.name(settings) for spec in STAGES.values()]
    positions = asyncio.run(committed_and_ends(settings, settings.app_id, names))
    for stage, spec in STAGES.items():
        name = spec.name(settings)
        for (topic, partition), (committed, end) in positions.items():
            if topic != name:
                continue
            offset = stored[stage].get(input_key(topic, partition), -1)
            where = (stage, topic, partition, offset, committed, end)
            assert offset >= committed - 1, where  # faust committed past the state
            assert offset <= end - 1, where


def wait_applied(
    settings: Settings, workers: list[Settings] | None = None, timeout: float = 120.0
) -> None:
    """Wait until every stage partition's stored input offset is its topic's last offset
    and ingest has committed all its input.

    Not the group's committed offsets of the stages: after a kill -9, faust's commit of
    a stage partition or of the labels agent can stay one or two records short of the
    end although the records were applied (the state's stored offset says so; a
    redelivery would be skipped). That is faust's offset bookkeeping on a restart
    (docs/design.md), not lost work; what the tests prove is the state."""
    ingested = [spec.name(settings) for spec in topics.INGESTED]
    names = [spec.name(settings) for spec in STAGES.values()]
    deadline = time.monotonic() + timeout
    while True:
        stored = stored_offsets(workers or [settings])
        positions = asyncio.run(committed_and_ends(settings, settings.app_id, names + ingested))
        behind = []
        for (topic, partition), (committed, end) in positions.items():
            if topic in ingested:
                if committed < end:
                    behind.append((topic, partition, committed, end))
                continue
            stage = next(s for s, spec in STAGES.items() if spec.name(settings) == topic)
            offset = stored[stage].get(input_key(topic, partition), -1)
            if offset < end - 1:
                behind.append((topic, partition, offset, end))
        if not behind:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"not applied within {timeout}s: {behind}")
        time.sleep(0.25)


def expected(settings: Settings, counts: dict[str, int]) -> dict[str, tuple[frozenset, int]]:
    """identifier -> (its person's identifiers, its person's event count), offline, with
    the persons of the links in the order this run's link stage recorded them."""
    components = link_components(asyncio.run(link_records(settings)))
    return expected_persons(components, counts)


def check_final(settings: Settings, want: dict[str, tuple[frozenset, int]]) -> None:
    """The worker at ``settings`` answers every identifier with its expected person:
    the same identifiers, and each event counted once."""
    key = {"X-API-Key": settings.api_key}
    seen_persons = {}
    for ident, (members, events) in want.items():
        status, body = http_get(f"{settings.web_url}/v1/profiles/{ident}", key)
        assert status == 200, (ident, status, body[:200])
        profile = json.loads(body)
        got = frozenset(i for group in profile["identifiers"].values() for i in group)
        assert got == members, (ident, sorted(got - members), sorted(members - got))
        assert profile["events"] == events, (ident, profile["events"], events)
        seen_persons[profile["person_id"]] = profile["events"]
    assert sum(seen_persons.values()) == person_total(want)
