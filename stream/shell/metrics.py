"""Prometheus metrics of a c360 worker, served on ``/metrics``.

Names follow Prometheus conventions (``c360_`` prefix, ``_total`` counters,
base units: seconds, records, USD); labels are bounded sets (source, type,
reason, rule, stage, route, status, tier, lifecycle stage, topic and
partition), never an identifier or a person id. The one open-ended label,
``channel``, is limited to the top :data:`TOP_CHANNELS` channels by revenue plus
``other``. The catalogue of every metric is ``docs/metrics.md`` (a unit test
keeps it in sync with :meth:`Metrics.catalogue`).

Cost on the hot path: counters move once per input group with counts (never
per event); what can be read from state or from faust (profile counts, channel
revenue, consumer lag, recovery) is computed when ``/metrics`` is scraped, by
:class:`WorkerCollector`, not while processing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from stream.core.aggregate import CAPS

TOP_CHANNELS = 10
"""Channels with their own ``channel`` label value; the rest add up as ``other``."""

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
EVENT_AGE_BUCKETS = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


REDELIVERY_REASONS = ("hole", "refused", "realign", "unstick")
"""Why a partition was sought back to records its agent had not applied (rewind.py)."""


class Metrics:
    """The worker's metric families, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        # --- process ---
        self.start_time = Gauge(
            "c360_worker_start_time_seconds",
            "When this worker process started (Unix time): its changes count restarts.",
            registry=r,
        )
        self.start_time.set(time.time())
        # --- input ---
        self.events_in = Counter(
            "c360_events_in",
            "Input events accepted, by source topic and event type.",
            ["source", "type"],
            registry=r,
        )
        self.dead_letters = Counter(
            "c360_dead_letters",
            "Inputs written to the dead-letter topic, by source topic and reason.",
            ["source", "reason"],
            registry=r,
        )
        self.prices_stale = Counter(
            "c360_prices_stale",
            "Price quotes not applied: older (by their timestamp) than the token's quote held.",
            registry=r,
        )
        # --- stages ---
        self.stage_records = Counter(
            "c360_stage_records",
            "Input records (batches) a stage applied, by stage.",
            ["stage"],
            registry=r,
        )
        self.stage_replays_skipped = Counter(
            "c360_stage_replays_skipped",
            "Redelivered records a stage skipped because their state was already committed.",
            ["stage"],
            registry=r,
        )
        self.redeliveries = _every_series(
            Counter(
                "c360_redeliveries",
                "Partitions sought back to records their agent had not applied, by reason: "
                "hole, refused (handed over before faust settled), realign, unstick.",
                ["reason"],
                registry=r,
            ),
            REDELIVERY_REASONS,
        )
        self.stage_seconds = Histogram(
            "c360_stage_record_seconds",
            "Time to apply one group of input records (all its partitions), commit included, by "
            "stage.",
            ["stage"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )
        self.stage_latency = Histogram(
            "c360_stage_latency_seconds",
            "Input to output per stage: from the Kafka timestamp of the oldest input record "
            "of a group to the broker's acknowledgement of the group's outputs, by stage.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.event_latency = Histogram(
            "c360_event_latency_seconds",
            "Event time to processed: from the event time of the oldest event in a profile "
            "group to its profile change being committed (one sample per group).",
            buckets=EVENT_AGE_BUCKETS,
            registry=r,
        )
        # --- routing ---
        self.route_facts = Counter(
            "c360_route_facts",
            "Facts the route stage handled, by outcome: duplicate and retract_unknown "
            "(dropped), to_link, to_profile.",
            ["outcome"],
            registry=r,
        )
        self.facts_outside_window = Counter(
            "c360_facts_outside_window",
            "Facts applied without a duplicate check: older than the duplicate window when "
            "they arrived.",
            registry=r,
        )
        # --- identity graph ---
        self.link_events = Counter(
            "c360_link_events",
            "Links (two identifiers and their evidence) the link stage evaluated.",
            registry=r,
        )
        self.labels_stale = Counter(
            "c360_labels_stale",
            "Wallet labels records not applied: older (updated_at) than the ones held.",
            registry=r,
        )
        self.merges = Counter(
            "c360_merges", "Persons merged (absorbed into another) by the link stage.", registry=r
        )
        self.merge_refusals = Counter(
            "c360_merge_refusals",
            "Merges the link stage refused, by rule (blocked_value, blocked_label, "
            "limit:{type}, hub:{type}, hub).",
            ["rule"],
            registry=r,
        )
        self.splits = Counter(
            "c360_splits",
            "Persons split because an identifier was blocked (hub or label).",
            registry=r,
        )
        self.merge_retries = Counter(
            "c360_merge_retries",
            "Merges by a link a limit had refused, retried when a split undid the merge "
            "that made the limit refuse it.",
            registry=r,
        )
        self.profile_changes = Counter(
            "c360_profile_changes", "Profile change events published.", registry=r
        )
        self.vip_alerts_suppressed = Counter(
            "c360_vip_alerts_suppressed",
            "VIP alerts not sent: the person was alerted for that tier or a higher one "
            "within the rules' vip_alert_cooldown_hours.",
            registry=r,
        )
        self.profile_caps = _every_series(
            Counter(
                "c360_profile_caps",
                "Times a cap bit on a profile's map (per aggregate: a fact may count twice, "
                "for its fragment and its person), by cap: a producer sending without bound.",
                ["cap"],
                registry=r,
            ),
            CAPS,
        )
        # --- API ---
        self.api_requests = Counter(
            "c360_api_requests",
            "API requests answered, by route and HTTP status.",
            ["route", "status"],
            registry=r,
        )
        self.api_seconds = Histogram(
            "c360_api_request_seconds",
            "API request latency, by route and HTTP status.",
            ["route", "status"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )
        # --- recovery ---
        self.recovery_records = Counter(
            "c360_table_recovery_records",
            "Changelog records applied to a table's local state during recovery or as standby.",
            ["table"],
            registry=r,
        )
        self.collector = WorkerCollector()
        r.register(self.collector)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST

    def catalogue(self) -> list[tuple[str, str, tuple[str, ...]]]:
        """(exposed name, type, labels) of every metric of the registry."""
        return catalogue(self.registry)


def _every_series(counter: Counter, values: Iterable[str]) -> Counter:
    """``counter`` with a series for each of a known set of label values from the start:
    Prometheus takes a new series' first sample as its baseline, so a series born with
    its first counts hides them from ``increase()``."""
    for value in values:
        counter.labels(value)
    return counter


def catalogue(registry: CollectorRegistry) -> list[tuple[str, str, tuple[str, ...]]]:
    """(exposed name, type, labels) of every metric a registry can expose, sorted."""
    out = []
    for collector in list(registry._collector_to_names):
        kind = getattr(collector, "_type", None)
        if kind is not None:  # Counter, Gauge, Histogram, …
            name = collector._name + ("_total" if kind == "counter" else "")
            out.append((name, kind, tuple(collector._labelnames)))
        else:
            for family in collector.describe():
                out.append((family.name, family.type, tuple(getattr(family, "labelnames", ()))))
    return sorted(out)


def _family(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=list(labels))
    family.labelnames = tuple(labels)  # for catalogue()
    return family


class WorkerCollector:
    """Gauges read when ``/metrics`` is scraped: from the worker's state and from faust.

    ``source`` is set by the app once it is built (:func:`stream.app.create_app`); a
    callable returning the readings, so that this module does not import faust.
    """

    FAMILIES = (
        ("c360_worker_ready", "1 when the worker is assigned, recovered and consuming.", ()),
        (
            "c360_consumer_lag",
            "Records on the broker after this worker's committed offset, by topic and "
            "partition (every assigned partition but changelogs: inputs and internal).",
            ("topic", "partition"),
        ),
        (
            "c360_table_recovering",
            "1 while the worker recovers table state from changelogs.",
            (),
        ),
        (
            "c360_table_recovery_remaining_records",
            "Changelog records left to apply before recovery completes, by kind (active, standby).",
            ("kind",),
        ),
        (
            "c360_profiles",
            "Persons with a live profile, in the profile partitions this worker holds "
            "(sum over workers for the total).",
            (),
        ),
        (
            "c360_persons_by_lifecycle",
            "Live persons by lifecycle stage, in this worker's profile partitions.",
            ("lifecycle",),
        ),
        (
            "c360_persons_by_vip_tier",
            "Live persons by VIP tier (persons without a tier are not counted), in this "
            "worker's profile partitions.",
            ("tier",),
        ),
        (
            "c360_channel_persons",
            f"Persons acquired by channel (top {TOP_CHANNELS} by revenue, the rest as other), "
            "in this worker's channel partitions.",
            ("channel",),
        ),
        (
            "c360_channel_revenue_usd",
            f"Revenue in USD at current prices by acquisition channel (top {TOP_CHANNELS}, "
            "the rest as other), in this worker's channel partitions.",
            ("channel",),
        ),
    )

    def __init__(self) -> None:
        self.source: Callable[[], dict[str, Any]] | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        return [_family(name, doc, labels) for name, doc, labels in self.FAMILIES]

    def collect(self) -> list[GaugeMetricFamily]:
        families = {name: _family(name, doc, labels) for name, doc, labels in self.FAMILIES}
        if self.source is None:
            return []
        readings = self.source()
        for name, samples in readings.items():
            family = families[name]
            for labels, value in samples:
                family.add_metric(list(labels), value)
        return [families[name] for name in readings]


def top_channels(rows: dict[str, tuple[int, float]], n: int = TOP_CHANNELS):
    """(channel label, persons, revenue USD): the top ``n`` by revenue, the rest as other."""
    ranked = sorted(rows.items(), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    out = [(channel, persons, usd) for channel, (persons, usd) in ranked[:n]]
    rest = ranked[n:]
    if rest:
        out.append(("other", sum(p for _, (p, _) in rest), sum(u for _, (_, u) in rest)))
    return out


class Throttle:
    """Reuse a reading for ``seconds`` (two scrapers, or a scrape storm, cost one read)."""

    def __init__(self, read: Callable[[], Any], seconds: float = 2.0) -> None:
        self.read = read
        self.seconds = seconds
        self._at = -1e18
        self._value: Any = None

    def __call__(self) -> Any:
        now = time.monotonic()
        if now - self._at >= self.seconds:
            self._value = self.read()
            self._at = now
        return self._value


METRICS = Metrics()
