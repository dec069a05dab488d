"""The worker's metric hooks: per-group counters of the stages, and scrape-time readings.

Stage hooks (:class:`Hook`) move counters by what the pure stage counted (its
``stats``), so nothing is done per event, and only for records whose state was
written (work a rebalance drops is redone, and counted then). Readings
(:func:`readings`) run when ``/metrics`` is scraped and read what faust and the
local state already hold: one RocksDB get per profile partition, the channel
rows of the channel partitions, offsets and highwaters of the consumer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from stream import topics
from stream.core.channel import channel_rows
from stream.core.link import LinkStage
from stream.core.profile import COUNTS, ProfileStage
from stream.core.route import RouteStage
from stream.shell.metrics import METRICS, Throttle, top_channels

if TYPE_CHECKING:
    from stream.app import C360

log = logging.getLogger(__name__)


class Hook:
    r"""A stage's counters, moved by what its pure stage counted, for work whose state
    was written.

    ``read`` gives each counter's count in the pure stage now (counts only grow). The
    runner (:class:`~stream.shell.stage.StageRunner`) reads them before and after it
    applies a partition's records, holds what grew with the partition's open
    transaction and :meth:`move`\ s it once that state is written: a rebalance drops
    what is open and the input is redone, so counting it when applied counted it
    twice. ``after`` runs after each committed group (the event latency)."""

    def __init__(
        self, read: Callable[[], dict[Any, int]], after: Callable[[], None] | None = None
    ) -> None:
        self.read = read
        self.after = after

    @staticmethod
    def grown(before: dict[Any, int], now: dict[Any, int]) -> dict[Any, int]:
        """How much each counter's count grew from ``before`` to ``now``."""
        out = {}
        for counter, n in now.items():
            n -= before.get(counter, 0)
            if n:
                out[counter] = n
        return out

    @staticmethod
    def move(grown: dict[Any, int]) -> None:
        for counter, n in grown.items():
            counter.inc(n)


def _reader(counters: dict[str, Any], stats: dict[str, int]) -> Callable[[], dict[Any, int]]:
    """The counts in ``stats`` of each counter of ``counters`` (keyed like ``stats``)."""
    return lambda: {counter: stats.get(key, 0) for key, counter in counters.items()}


ROUTE_OUTCOMES = ("duplicates", "retract_unknown", "to_link", "to_profile")
"""The route stage's counts that are outcomes of ``c360_route_facts_total`` (each fact
has one); its label is the count's name, singular for ``duplicates``."""


def route_hook(stage: RouteStage) -> Hook:
    """Facts routed or dropped, and facts outside the duplicate window."""
    counters = {
        key: METRICS.route_facts.labels("duplicate" if key == "duplicates" else key)
        for key in ROUTE_OUTCOMES
    }
    counters["outside_window"] = METRICS.facts_outside_window
    return Hook(_reader(counters, stage.stats))


def link_hook(stage: LinkStage) -> Hook:
    """Counters of the identity graph, moved by the link stage's counts."""
    counters = {
        "links": METRICS.link_events,
        "merges": METRICS.merges,
        "splits": METRICS.splits,
        "retried": METRICS.merge_retries,
        "labels_stale": METRICS.labels_stale,
    }
    stats = _reader(counters, stage.stats)
    # refusal counters: one per rule from the start (a counter born with its first
    # refusals hides them from increase()), and any other rule as it appears
    by_rule = {rule: METRICS.merge_refusals.labels(rule) for rule in stage.refusal_rules()}

    def read() -> dict[Any, int]:
        out = stats()
        for rule, n in stage.refusals.items():
            counter = by_rule.get(rule)
            if counter is None:
                counter = by_rule[rule] = METRICS.merge_refusals.labels(rule)
            out[counter] = n
        return out

    return Hook(read)


def profile_hook(stage: ProfileStage) -> Hook:
    """Profile changes published, VIP alerts the cooldown suppressed, caps reached, and
    the event-time latency of the group's oldest event."""
    changes = _reader(
        {
            "changes": METRICS.profile_changes,
            "vip_alerts_suppressed": METRICS.vip_alerts_suppressed,
        },
        stage.stats,
    )
    caps = _reader(
        {cap: METRICS.profile_caps.labels(cap) for cap in stage.agg.capped}, stage.agg.capped
    )

    def read() -> dict[Any, int]:
        return {**changes(), **caps()}

    def after() -> None:
        oldest = stage.oldest_event
        if oldest is not None:
            stage.oldest_event = None
            METRICS.event_latency.observe(max(0.0, time.time() - oldest / 1000))

    return Hook(read, after)


def _active_partitions(c360: C360, spec: topics.TopicSpec) -> list[int]:
    name = spec.name(c360.settings)
    try:
        actives = c360.app.assignor.assigned_actives()
    except Exception:
        return []
    return sorted(tp.partition for tp in actives if tp.topic == name)


def readings(c360: C360) -> dict[str, list[tuple[tuple[str, ...], float]]]:
    """Every scrape-time gauge of the worker (see :class:`WorkerCollector`)."""
    out: dict[str, list[tuple[tuple[str, ...], float]]] = {
        "c360_worker_ready": [((), 1.0 if c360.is_ready() else 0.0)]
    }
    for reading in (_lag, _recovery, _profiles, _channels):
        try:
            out.update(reading(c360))
        except Exception as exc:  # a metric must never break the scrape
            log.debug("metric reading %s failed: %r", reading.__name__, exc)
    return out


def _lag(c360: C360) -> dict:
    consumer = c360.app.consumer
    changelogs = c360.app.tables.changelog_topics
    samples = []
    for tp in sorted(consumer.assignment()):
        if tp.topic in changelogs:
            continue
        highwater = consumer.highwater(tp)
        committed = consumer._committed_offset.get(tp)
        if committed is None:
            read = consumer._read_offset.get(tp)
            committed = None if read is None else read + 1
        if highwater is None or committed is None:
            continue
        samples.append(((tp.topic, str(tp.partition)), float(max(0, highwater - committed))))
    return {"c360_consumer_lag": samples}


def _recovery(c360: C360) -> dict:
    recovery = c360.app.tables.recovery
    return {
        "c360_table_recovering": [((), 1.0 if recovery.in_recovery else 0.0)],
        "c360_table_recovery_remaining_records": [
            (("active",), _remaining(recovery.active_remaining())),
            (("standby",), _remaining(recovery.standby_remaining())),
        ],
    }


def _remaining(by_tp: Any) -> float:
    """faust's highwater - offset per changelog partition; an empty changelog (-1 - 0)
    counts as 0, not as negative records."""
    return float(sum(max(0, n) for n in by_tp.values()))


def _profiles(c360: C360) -> dict:
    store = c360.tables["profile"].data
    persons = 0
    lifecycle: dict[str, int] = {}
    vip: dict[str, int] = {}
    for p in _active_partitions(c360, topics.PROFILE):
        counts = store.reader(p).get(COUNTS)
        if not counts:
            continue
        persons += counts["n"]
        for by, into in ((counts["lc"], lifecycle), (counts["vip"], vip)):
            for k, n in by.items():
                into[k] = into.get(k, 0) + n
    rules = c360.rules.rules
    for stage in _lifecycle_stages(rules):
        lifecycle.setdefault(stage, 0)
    for tier in _tiers(rules):
        vip.setdefault(tier, 0)
    return {
        "c360_profiles": [((), float(persons))],
        "c360_persons_by_lifecycle": [((k,), float(n)) for k, n in sorted(lifecycle.items())],
        "c360_persons_by_vip_tier": [((k,), float(n)) for k, n in sorted(vip.items())],
    }


LIFECYCLE_STAGES = ("new", "returning", "power", "at_risk", "churned", "resurrected")
"""Every value of the ``lifecycle`` field (stream.core.aggregate), exposed even at 0."""


def _lifecycle_stages(rules: Any) -> tuple[str, ...]:
    return LIFECYCLE_STAGES


def _tiers(rules: Any) -> list[str]:
    return [t.name for t in rules.vip]


def _channels(c360: C360) -> dict:
    from stream.shell.api import PricesOnly

    store = c360.tables["channel"].data
    value = c360.aggregator.value
    prices = PricesOnly(c360)
    rows: dict[str, tuple[int, float]] = {}
    for p in _active_partitions(c360, topics.CHANNEL):
        for channel, row in channel_rows(store.reader(p)).items():
            agg = {"vol": {}, "fee": {}, "rev": row["revenue"], "hold": {}}
            rows[channel] = (row["persons"], value(agg, prices)["revenue_usd"])
    top = top_channels(rows)
    return {
        "c360_channel_persons": [((c,), float(n)) for c, n, _ in top],
        "c360_channel_revenue_usd": [((c,), float(usd)) for c, _, usd in top],
    }


def install(c360: C360) -> None:
    """Connect the scrape-time readings of this app to the worker's collector."""
    METRICS.collector.source = Throttle(lambda: readings(c360), seconds=1.0)
