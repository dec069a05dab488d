"""The worker's metric hooks move counters by the stages' counts, once per group."""

from __future__ import annotations

import json
import time
from types import SimpleNamespace

from stream.shell.metrics import METRICS
from stream.shell.observe import Hook, _remaining, link_hook, profile_hook, route_hook


def value(name: str, **labels: str) -> float:
    return METRICS.registry.get_sample_value(name, labels) or 0.0


def mover(hook: Hook):
    """Move the hook's counters by what its stage counted since the last call (what a
    stage runner does once the state of the records counted is written)."""
    seen = hook.read()

    def move() -> None:
        nonlocal seen
        now = hook.read()
        hook.move(hook.grown(seen, now))
        seen = now
        if hook.after is not None:
            hook.after()

    return move


def test_the_link_hook_adds_what_the_stage_counted_since_last_time():
    stage = SimpleNamespace(
        stats={"links": 0, "merges": 0, "splits": 0, "retried": 0},
        refusals={},
        refusal_rules=lambda: ["limit:wallet"],
    )
    observe = mover(link_hook(stage))
    before = {
        "links": value("c360_link_events_total"),
        "merges": value("c360_merges_total"),
        "retried": value("c360_merge_retries_total"),
        "hub": value("c360_merge_refusals_total", rule="hub:anon"),
    }
    stage.stats.update(links=10, merges=3, splits=1, retried=1)
    stage.refusals["hub:anon"] = 2
    observe()
    observe()  # nothing new: nothing added
    stage.stats["links"] = 12
    stage.refusals["hub:anon"] = 5
    observe()
    assert value("c360_link_events_total") - before["links"] == 12
    assert value("c360_merges_total") - before["merges"] == 3
    assert value("c360_merge_retries_total") - before["retried"] == 1
    assert value("c360_merge_refusals_total", rule="hub:anon") - before["hub"] == 5


def test_the_refusal_counters_of_the_rules_exist_before_the_first_refusal():
    # Prometheus takes a series' first sample as its baseline: a counter created with
    # its first refusals counted would hide them from increase() and the alert
    from stream.core.link import LinkStage
    from stream.core.rules import Compiled, Rules

    stage = LinkStage(Compiled(Rules(limits={"wallet": 7}, max_joins={"anon": 3})))
    link_hook(stage)
    names = {
        s.labels["rule"]
        for metric in METRICS.registry.collect()
        if metric.name == "c360_merge_refusals"
        for s in metric.samples
        if s.name.endswith("_total")
    }
    assert {"blocked_value", "blocked_label", "hub", "limit:wallet", "hub:anon"} <= names
    # every rule a refusal is counted under is one of them: a blocked hub refuses as "hub"
    from stream.sim import Input, Simulator

    sim = Simulator(partitions=2, seed=1, rules=Rules(max_joins={"anon": 2}))
    pages = [
        {
            "type": "page",
            "messageId": f"k{n}",
            "anonymousId": "kiosk",
            "userId": f"u{n}",
            "timestamp": "2026-10-01T09:00:00Z",
        }
        for n in range(6)
    ]
    sim.run([Input("web.events", json.dumps(p).encode()) for p in pages])
    assert set(sim.link.refusals) - set(sim.link.refusal_rules()) == set(), sim.link.refusals


def test_the_route_hook_counts_each_outcome_and_the_facts_outside_the_window():
    stats = dict.fromkeys(
        ("duplicates", "outside_window", "retracts", "retract_unknown", "to_link", "to_profile"), 0
    )
    observe = mover(route_hook(SimpleNamespace(stats=stats)))
    outcomes = ("duplicate", "retract_unknown", "to_link", "to_profile")
    before = {o: value("c360_route_facts_total", outcome=o) for o in outcomes}
    outside = value("c360_facts_outside_window_total")
    stats.update(duplicates=2, to_link=3, to_profile=7, outside_window=4)
    observe()
    stats.update(to_profile=9, retract_unknown=1)
    observe()
    observe()  # nothing new: nothing added
    moved = {o: value("c360_route_facts_total", outcome=o) - before[o] for o in outcomes}
    assert moved == {"duplicate": 2, "retract_unknown": 1, "to_link": 3, "to_profile": 9}
    assert value("c360_facts_outside_window_total") - outside == 4


def test_the_profile_hook_observes_the_oldest_event_once():
    stage = SimpleNamespace(
        stats={"changes": 0}, oldest_event=None, agg=SimpleNamespace(capped={"tokens": 0})
    )
    observe = mover(profile_hook(stage))
    count = value("c360_event_latency_seconds_count")
    changes = value("c360_profile_changes_total")
    stage.oldest_event = int((time.time() - 120) * 1000)
    stage.stats["changes"] = 4
    observe()
    observe()  # no new event since: no sample
    assert value("c360_event_latency_seconds_count") - count == 1
    assert value("c360_event_latency_seconds_bucket", le="300.0") > value(
        "c360_event_latency_seconds_bucket", le="60.0"
    )
    assert value("c360_profile_changes_total") - changes == 4
    assert stage.oldest_event is None


def test_the_profile_hook_counts_the_vip_alerts_the_cooldown_suppressed():
    stage = SimpleNamespace(
        stats={"changes": 0, "vip_alerts_suppressed": 0},
        oldest_event=None,
        agg=SimpleNamespace(capped={}),
    )
    observe = mover(profile_hook(stage))
    suppressed = value("c360_vip_alerts_suppressed_total")
    stage.stats["vip_alerts_suppressed"] = 3
    observe()
    observe()
    assert value("c360_vip_alerts_suppressed_total") - suppressed == 3


def test_the_profile_hook_counts_the_caps_the_aggregator_reached():
    from stream.core import aggregate
    from stream.core.aggregate import Aggregator
    from stream.core.facts import Fact

    agg = Aggregator()
    stage = SimpleNamespace(stats={"changes": 0}, oldest_event=None, agg=agg)
    observe = mover(profile_hook(stage))
    before = {cap: value("c360_profile_caps_total", cap=cap) for cap in aggregate.CAPS}
    row = agg.empty()
    for i in range(aggregate.MAX_TOKENS + 3):  # three transfers over the cap
        data = {"chain": 1, "block": 1, "side": "in", "token": f"1:0x{i:040x}", "value": 1}
        agg.apply(row, Fact(f"f{i}", "wallet:0x" + "01" * 20, "transfer", 1, "t", data=data))
    observe()
    observe()
    moved = {cap: value("c360_profile_caps_total", cap=cap) - n for cap, n in before.items()}
    assert moved == {**dict.fromkeys(aggregate.CAPS, 0), "tokens": 3}


def test_recovery_remaining_ignores_empty_changelogs():
    assert _remaining({"a": -1, "b": 5, "c": 0}) == 5.0


def test_the_worker_exposes_when_it_started():
    # what C360WorkerRestarting counts the changes of: a worker restarted by its
    # supervisor after each fatal error answers most scrapes, so up and ready miss it
    started = value("c360_worker_start_time_seconds")
    assert 0 < started <= time.time()
    assert time.time() - started < 3600  # this process's start, not a constant
