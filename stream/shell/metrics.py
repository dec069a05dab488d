"""Prometheus metrics of a c360 worker, served on ``/metrics``.

Names follow Prometheus conventions (``c360_`` prefix, ``_total`` counters,
base units); labels are bounded sets (source, type, reason, rule, stage),
never an identifier or a person id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


class Metrics:
    """The worker's metric families, in their own registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_in = Counter(
            "c360_events_in",
            "Input events read, by source topic and event type.",
            ["source", "type"],
            registry=r,
        )
        self.dead_letters = Counter(
            "c360_dead_letters",
            "Inputs written to the dead-letter topic, by source topic and reason.",
            ["source", "reason"],
            registry=r,
        )

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
        self.stage_seconds = Histogram(
            "c360_stage_record_seconds",
            "Time to apply one input record (batch), commit included, by stage.",
            ["stage"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )

        self.api_requests = Counter(
            "c360_api_requests",
            "API requests answered, by route and HTTP status.",
            ["route", "status"],
            registry=r,
        )
        self.api_seconds = Histogram(
            "c360_api_request_seconds",
            "API request latency, by route.",
            ["route"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=r,
        )

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


METRICS = Metrics()
