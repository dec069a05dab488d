"""The collector's Prometheus metrics, in their own registry (``c360_`` prefix).

Every label takes values from a fixed set: the route is the endpoint's name
(``unmatched`` for any other path), the status an HTTP code the collector
sends, the type one of Segment's six (``unknown`` otherwise) and the reasons
come from c360's code, never from a client's input.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from connectors.metrics import connector_up


class CollectorMetrics:
    """The metrics of one collector."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "c360_collector_requests",
            "HTTP requests answered by the collector, by route and status.",
            ["route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "c360_collector_request_seconds",
            "Time to answer a request (including Kafka delivery), by route.",
            ["route"],
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.events = Counter(
            "c360_collector_events",
            "Events received, by Segment type and outcome (accepted: produced; rejected: "
            "invalid; failed: Kafka did not acknowledge).",
            ["type", "outcome"],
            registry=r,
        )
        self.rejections = Counter(
            "c360_collector_rejections",
            "Events and requests rejected, by reason.",
            ["reason"],
            registry=r,
        )
        self.siwe = Counter(
            "c360_siwe_verifications",
            "Sign-In With Ethereum verifications, by result (verified or the refusal reason).",
            ["result"],
            registry=r,
        )
        self.up = connector_up(r)
