"""The chain connector's Prometheus metrics, in their own registry (``c360_chain_`` prefix).

Label values come from fixed sets: event kinds (``log``, ``tx``, ``retract``,
``holding``), RPC error kinds (``rate_limit``, ``timeout``, ``range``,
``missing``, ``other``) and holdings failure reasons (``HOLDING_FAILURES``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

from connectors.chain.decode import UNFIT_REASONS
from connectors.chain.rpc import HOLDING_FAILURES
from connectors.metrics import connector_up


class ChainMetrics:
    """The metrics of one chain connector."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.head_block = Gauge(
            "c360_chain_head_block", "Newest block number the node reported.", registry=r
        )
        self.processed_block = Gauge(
            "c360_chain_processed_block",
            "Last block whose events Kafka acknowledged (the checkpoint).",
            registry=r,
        )
        self.reorgs = Counter("c360_chain_reorgs", "Reorgs detected and undone.", registry=r)
        self.reorg_depth = Gauge(
            "c360_chain_last_reorg_depth", "Blocks orphaned by the last reorg.", registry=r
        )
        self.events = Counter(
            "c360_chain_events",
            "Events produced and acknowledged, by kind (log, tx, retract, holding).",
            ["kind"],
            registry=r,
        )
        self.rpc_errors = Counter(
            "c360_chain_rpc_errors",
            "Failed RPC calls (retried or not), by kind.",
            ["kind"],
            registry=r,
        )
        self.logs_range = Gauge(
            "c360_chain_getlogs_range",
            "Current eth_getLogs block range of the backfill.",
            registry=r,
        )
        self.holdings_failed = Counter(
            "c360_chain_holdings_failed",
            "Holdings snapshots skipped because their balance read failed, by reason.",
            ["reason"],
            registry=r,
        )
        self.unfit_events = Counter(
            "c360_chain_unfit_events",
            "Events that break the event contract, by reason (data_too_large: emitted "
            "without their data; invalid: not emitted, logged).",
            ["reason"],
            registry=r,
        )
        self.up = connector_up(r)
        for kind in ("log", "tx", "retract", "holding"):
            self.events.labels(kind)
        for kind in ("rate_limit", "timeout", "range", "missing", "other"):
            self.rpc_errors.labels(kind)
        for reason in HOLDING_FAILURES:
            self.holdings_failed.labels(reason)
        for reason in UNFIT_REASONS:
            self.unfit_events.labels(reason)
