"""Prometheus metrics of a c360 worker, served on ``/metrics``.

Names follow Prometheus conventions (``c360_`` prefix, ``_total`` counters,
base units); labels are bounded sets (source, type, reason, rule, stage),
never an identifier or a person id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest
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

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


METRICS = Metrics()
