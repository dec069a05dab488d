"""A consumer of segment.changes that folds them (enter adds, exit removes) ends with
exactly the segments each live person's profile shows (its lifecycle stage and VIP
tier), and none for an absorbed person: through merges, splits, ticks at any pace
(fired a few timers at a time too), and profile batches redone after a crash (their
outputs sent twice). Each enter is of a segment the person is not in, each exit of
one it is in, a person is in one segment of a kind at a time, and every VIP alert
comes with the entry of its tier in the same change."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from unittest import mock

import pytest

from stream.core import profile
from stream.core.rules import Rules
from stream.sim import Input, Simulator, _Emit
from tests.simulation.profile_scenarios import T0, iso, profile_scenario, wallet
from tests.simulation.test_redo import _copy

DAY = 86_400_000


class Crashing(Simulator):
    """A simulator whose profile partitions sometimes crash after sending a batch's
    outputs and before committing its state: the batch is redone from the state it
    started from, and its outputs for users are sent again."""

    def apply(self, stage: str, partition: int, record: bytes) -> _Emit:
        if stage == "profile" and self.random.random() < 0.3:
            before = _copy(self.state(stage, partition))
            sent = super().apply(stage, partition, record)
            self.states[(stage, partition)] = before
            self._dispatch_records(sent)
        return super().apply(stage, partition, record)

    def _dispatch_records(self, emit: _Emit) -> None:
        users = _Emit(self.partitions)
        users.records = emit.records  # its internal messages: dropped by the receivers
        self._dispatch("crashed", users)


def connect(n: int, device: str, address: str, ts: int) -> Input:
    event = {"type": "track", "event": "Wallet Connected", "messageId": f"k{n}",
             "anonymousId": device, "timestamp": iso(ts),
             "properties": {"address": address, "chainId": 1}}  # fmt: skip
    return Input("web.events", json.dumps(event).encode())


def inputs(seed: int) -> list[Input]:
    """A profile scenario, with kiosks gluing persons' wallets (a hub: split again) and
    ticks days or weeks apart (a person can go from new to churned in one)."""
    r = random.Random(seed)
    sc = profile_scenario(seed)
    items = list(sc.inputs)
    for k in range(8):
        glue = connect(k, f"kiosk{k % 2}", wallet(r.randrange(12)), T0 + r.randrange(3 * DAY))
        items.insert(r.randrange(len(items) + 1), glue)
    clock, end = T0, len(items)
    for at in sorted(r.sample(range(end), 8), reverse=True):
        # roughly with the events (the scenario's time goes on about a day per 7 inputs)
        clock = T0 + at * DAY // 7 + r.choice([0, 1, 3, 15, 35]) * DAY
        items.insert(at, Input("tick", now=clock))
    return [*items, Input("tick", now=sc.now + 40 * DAY)]


def fold(sim: Simulator) -> dict[str, set[str]]:
    """The segments each person is in, by a consumer that skips what it already applied
    (a change sent again after a crash: the same person, version, segment and action)."""
    held: dict[str, set[str]] = defaultdict(set)
    applied: set[tuple[str, int, str, str]] = set()
    for s in sim.outputs.segments:
        move = (s.person_id, s.version, s.segment, s.action)
        if move in applied:
            continue
        applied.add(move)
        mine = held[s.person_id]
        if s.action == "enter":
            assert s.segment not in mine, (s, mine)
            kind = s.segment.split(":")[0]
            assert not any(x.split(":")[0] == kind for x in mine), (s, mine)
            mine.add(s.segment)
        else:
            assert s.segment in mine, (s, mine)
            mine.discard(s.segment)
    for alert in sim.outputs.alerts:
        version = int(alert.alert_id.rsplit(":", 1)[1])
        assert (alert.person_id, version, f"vip:{alert.details['tier']}", "enter") in applied
    return {person: segments for person, segments in held.items() if segments}


def naive_fold(sim: Simulator) -> dict[str, set[str]]:
    """The same without skipping anything: a set fold ends the same."""
    held: dict[str, set[str]] = defaultdict(set)
    for s in sim.outputs.segments:
        (held[s.person_id].add if s.action == "enter" else held[s.person_id].discard)(s.segment)
    return {person: segments for person, segments in held.items() if segments}


def shown(sim: Simulator) -> dict[str, set[str]]:
    out = {}
    for person, row in sim.persons().items():
        view = row["w"]
        segments = {f"lifecycle:{view['lifecycle']}"} if view.get("lifecycle") else set()
        if view.get("vip_tier"):
            segments.add(f"vip:{view['vip_tier']}")
        if segments:
            out[person] = segments
    return out


@pytest.mark.parametrize(("seed", "tick_max"), [(s, 200 if s % 2 else 1) for s in range(1, 7)])
def test_folded_segment_changes_are_the_segments_profiles_show(seed, tick_max):
    rules = Rules(max_joins={"anon": 2}, retract_window_hours=10**6)
    sim = Crashing(partitions=1 + seed % 5, seed=seed, rules=rules, inject_probability=0.5)
    with mock.patch.object(profile, "TICK_MAX", tick_max):
        sim.run(inputs(seed))
    assert fold(sim) == naive_fold(sim) == shown(sim)
    assert sim.profile.stats["merges"] and sim.profile.stats["splits"]
    assert any(s.segment.startswith("vip:") for s in sim.outputs.segments)
    stages = {s.segment for s in sim.outputs.segments if s.segment.startswith("lifecycle:")}
    assert "lifecycle:churned" in stages and len(stages) >= 3, stages
    moves = [(s.person_id, s.version, s.segment, s.action) for s in sim.outputs.segments]
    assert len(moves) > len(set(moves))  # redone batches sent some again
