"""Write ops/grafana/dashboards/*.json: the c360 Grafana dashboards, from this one file.

Edit here, run ``.venv/bin/python ops/grafana/build_dashboards.py``, commit both;
tests/unit/test_dashboards.py fails when the JSON files differ from this output.
Every panel reads the Prometheus datasource provisioned with uid ``prometheus``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).parent / "dashboards"
DS = {"type": "prometheus", "uid": "prometheus"}
RATE = "$__rate_interval"


def target(expr: str, legend: str = "", ref: str = "A") -> dict:
    return {"datasource": DS, "expr": expr, "legendFormat": legend or "__auto", "refId": ref}


def panel(
    title: str,
    exprs: list[tuple[str, str]],
    *,
    kind: str = "timeseries",
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    description: str = "",
    stack: bool = False,
) -> dict:
    custom: dict = {}
    if kind == "timeseries":
        custom = {"fillOpacity": 10, "lineWidth": 1, "showPoints": "never"}
        if stack:
            custom["stacking"] = {"mode": "normal", "group": "A"}
    p = {
        "type": kind,
        "title": title,
        "description": description,
        "datasource": DS,
        "gridPos": {"w": w, "h": h},
        "fieldConfig": {"defaults": {"unit": unit, "custom": custom}, "overrides": []},
        "options": {},
        "targets": [target(e, legend, chr(ord("A") + i)) for i, (e, legend) in enumerate(exprs)],
    }
    if kind == "stat":
        p["options"] = {"reduceOptions": {"calcs": ["lastNotNull"]}, "colorMode": "value"}
    if kind == "table":
        for t in p["targets"]:
            t.update(format="table", instant=True)
    return p


def row(title: str) -> dict:
    return {"type": "row", "title": title, "collapsed": False, "gridPos": {"w": 24, "h": 1}}


def dashboard(uid: str, title: str, description: str, panels: list[dict]) -> dict:
    x = y = 0
    line_h = 0
    for i, p in enumerate(panels, start=1):
        p["id"] = i
        g = p["gridPos"]
        if p["type"] == "row" or x + g["w"] > 24:
            x, y = 0, y + line_h
            line_h = 0
        g["x"], g["y"] = x, y
        x += g["w"]
        line_h = max(line_h, g["h"])
        if p["type"] == "row":
            x, y, line_h = 0, y + 1, 0
    return {
        "uid": uid,
        "title": title,
        "description": description,
        "tags": ["c360"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "editable": True,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": []},
        "annotations": {"list": []},
        "links": [{"type": "dashboards", "tags": ["c360"], "asDropdown": True, "title": "c360"}],
        "panels": panels,
    }


def q(quantile: float, metric: str, by: str = "") -> str:
    labels = f"{by}, le" if by else "le"
    return f"histogram_quantile({quantile}, sum by ({labels}) (rate({metric}_bucket[{RATE}])))"


PIPELINE = dashboard(
    "c360-pipeline",
    "c360 / Pipeline health",
    "Workers, input rates, dead letters, consumer lag, latency per stage, recovery and API.",
    [
        panel("Workers up", [('sum(up{job="c360-worker"})', "up")], kind="stat", w=4, h=4),
        panel("Workers ready", [("sum(c360_worker_ready)", "ready")], kind="stat", w=4, h=4),
        panel(
            "Events in /s",
            [(f"sum(rate(c360_events_in_total[{RATE}]))", "events/s")],
            kind="stat",
            unit="ops",
            w=4,
            h=4,
        ),
        panel(
            "Dead letters /s",
            [(f"sum(rate(c360_dead_letters_total[{RATE}]))", "dead letters/s")],
            kind="stat",
            unit="ops",
            w=4,
            h=4,
        ),
        panel(
            "Consumer lag (records)",
            [("sum(c360_consumer_lag)", "lag")],
            kind="stat",
            w=4,
            h=4,
        ),
        panel(
            "Recovering workers",
            [("sum(c360_table_recovering)", "recovering")],
            kind="stat",
            w=4,
            h=4,
        ),
        row("Input"),
        panel(
            "Events in by source",
            [(f"sum by (source) (rate(c360_events_in_total[{RATE}]))", "{{source}}")],
            unit="ops",
            stack=True,
        ),
        panel(
            "Events in by type",
            [(f"sum by (type) (rate(c360_events_in_total[{RATE}]))", "{{type}}")],
            unit="ops",
            stack=True,
        ),
        panel(
            "Dead letters by source and reason",
            [
                (
                    f"sum by (source, reason) (rate(c360_dead_letters_total[{RATE}]))",
                    "{{source}} {{reason}}",
                )
            ],
            unit="ops",
        ),
        panel(
            "Reference records older than the ones held (not applied)",
            [
                (f"sum(rate(c360_prices_stale_total[{RATE}]))", "prices"),
                (f"sum(rate(c360_labels_stale_total[{RATE}]))", "wallet labels"),
            ],
            unit="ops",
            description="A price quote older (timestamp) or a labels record older (updated_at) "
            "than the one applied for its key: a feed backfilling, or a second source.",
        ),
        panel(
            "Facts routed, duplicates dropped, facts outside the duplicate window",
            [
                (
                    f"sum by (outcome) (rate(c360_route_facts_total[{RATE}]))",
                    "{{outcome}}",
                ),
                (f"sum(rate(c360_facts_outside_window_total[{RATE}]))", "outside the window"),
            ],
            unit="ops",
            description="A fact outside the window is applied without a duplicate check.",
        ),
        panel(
            "Consumer lag by topic",
            [("sum by (topic) (c360_consumer_lag)", "{{topic}}")],
            description="Records after the committed offset, summed over partitions and workers.",
        ),
        row("Latency"),
        panel(
            "Input → output per stage (p50, p99)",
            [
                (q(0.5, "c360_stage_latency_seconds", "stage"), "p50 {{stage}}"),
                (q(0.99, "c360_stage_latency_seconds", "stage"), "p99 {{stage}}"),
            ],
            unit="s",
        ),
        panel(
            "Event time → processed (p50, p99)",
            [
                (q(0.5, "c360_event_latency_seconds"), "p50"),
                (q(0.99, "c360_event_latency_seconds"), "p99"),
            ],
            unit="s",
            description="Oldest event of each profile group; backfilled events are old by design.",
        ),
        panel(
            "Group processing time per stage (p99)",
            [(q(0.99, "c360_stage_record_seconds", "stage"), "{{stage}}")],
            unit="s",
        ),
        panel(
            "Records applied, replays skipped and partitions sought back",
            [
                (f"sum by (stage) (rate(c360_stage_records_total[{RATE}]))", "applied {{stage}}"),
                (
                    f"sum by (stage) (rate(c360_stage_replays_skipped_total[{RATE}]))",
                    "skipped {{stage}}",
                ),
                (
                    f"sum by (reason) (rate(c360_redeliveries_total[{RATE}]))",
                    "sought back: {{reason}}",
                ),
            ],
            unit="ops",
        ),
        row("Recovery"),
        panel(
            "Worker restarts (1h)",
            [("changes(c360_worker_start_time_seconds[1h])", "{{instance}}")],
            description="Starts of each worker in the last hour: more than one or two is a "
            "crash loop (C360WorkerRestarting), which up and ready can miss.",
            w=24,
        ),
        panel(
            "Changelog records left to recover",
            [("sum by (kind) (c360_table_recovery_remaining_records)", "{{kind}}")],
        ),
        panel(
            "Changelog records applied by table",
            [
                (
                    f"sum by (table) (rate(c360_table_recovery_records_total[{RATE}]))",
                    "{{table}}",
                )
            ],
            unit="ops",
        ),
        row("API"),
        panel(
            "API requests by route and status",
            [
                (
                    f"sum by (route, status) (rate(c360_api_requests_total[{RATE}]))",
                    "{{route}} {{status}}",
                )
            ],
            unit="reqps",
        ),
        panel(
            "API latency by route (p99)",
            [(q(0.99, "c360_api_request_seconds", "route"), "{{route}}")],
            unit="s",
        ),
    ],
)

IDENTITY = dashboard(
    "c360-identity",
    "c360 / Identity graph",
    "Link evidence, merges, refused merges by rule and splits of the link stage.",
    [
        panel(
            "Links /s",
            [(f"sum(rate(c360_link_events_total[{RATE}]))", "links/s")],
            kind="stat",
            unit="ops",
            w=6,
            h=4,
        ),
        panel(
            "Merges (1h)",
            [("sum(increase(c360_merges_total[1h]))", "merges")],
            kind="stat",
            w=6,
            h=4,
        ),
        panel(
            "Refused merges (1h)",
            [("sum(increase(c360_merge_refusals_total[1h]))", "refused")],
            kind="stat",
            w=6,
            h=4,
        ),
        panel(
            "Splits (1h)",
            [("sum(increase(c360_splits_total[1h]))", "splits")],
            kind="stat",
            w=6,
            h=4,
        ),
        panel(
            "Links, merges and splits /s",
            [
                (f"sum(rate(c360_link_events_total[{RATE}]))", "links"),
                (f"sum(rate(c360_merges_total[{RATE}]))", "merges"),
                (f"sum(rate(c360_splits_total[{RATE}]))", "splits"),
                (f"sum(rate(c360_merge_retries_total[{RATE}]))", "retried after a split"),
            ],
            unit="ops",
        ),
        panel(
            "Refused merges by rule",
            [(f"sum by (rule) (rate(c360_merge_refusals_total[{RATE}]))", "{{rule}}")],
            unit="ops",
            stack=True,
            description="Rules: blocked_value, blocked_label, limit:{type}, hub:{type}.",
        ),
        panel(
            "Refused share of links",
            [
                (
                    f"sum(rate(c360_merge_refusals_total[{RATE}])) / "
                    f"sum(rate(c360_link_events_total[{RATE}]))",
                    "refused / links",
                )
            ],
            unit="percentunit",
        ),
        panel(
            "Link stage input → output (p99)",
            [
                (
                    "histogram_quantile(0.99, sum by (le) "
                    f'(rate(c360_stage_latency_seconds_bucket{{stage="link"}}[{RATE}])))',
                    "p99",
                )
            ],
            unit="s",
        ),
    ],
)

PROFILES = dashboard(
    "c360-profiles",
    "c360 / Profiles and lifecycle",
    "Live persons, lifecycle stages and profile change events.",
    [
        panel("Persons", [("sum(c360_profiles)", "persons")], kind="stat", w=6, h=4),
        panel(
            "Profile changes /s",
            [(f"sum(rate(c360_profile_changes_total[{RATE}]))", "changes/s")],
            kind="stat",
            unit="ops",
            w=6,
            h=4,
        ),
        panel(
            "Power users",
            [('sum(c360_persons_by_lifecycle{lifecycle="power"})', "power")],
            kind="stat",
            w=6,
            h=4,
        ),
        panel(
            "At risk",
            [('sum(c360_persons_by_lifecycle{lifecycle="at_risk"})', "at risk")],
            kind="stat",
            w=6,
            h=4,
        ),
        panel("Persons over time", [("sum(c360_profiles)", "persons")]),
        panel(
            "Persons by lifecycle stage",
            [("sum by (lifecycle) (c360_persons_by_lifecycle)", "{{lifecycle}}")],
            stack=True,
        ),
        panel(
            "Lifecycle now",
            [("sum by (lifecycle) (c360_persons_by_lifecycle)", "{{lifecycle}}")],
            kind="piechart",
        ),
        panel(
            "Profile changes /s",
            [(f"sum(rate(c360_profile_changes_total[{RATE}]))", "changes/s")],
            unit="ops",
        ),
    ],
)

VIP = dashboard(
    "c360-vip-revenue",
    "c360 / VIP and revenue by channel",
    "VIP tiers and revenue (USD at current prices) by acquisition channel: top 10 and other.",
    [
        panel(
            "VIP persons by tier",
            [("sum by (tier) (c360_persons_by_vip_tier)", "{{tier}}")],
            kind="bargauge",
        ),
        panel(
            "VIP persons over time",
            [("sum by (tier) (c360_persons_by_vip_tier)", "{{tier}}")],
            stack=True,
        ),
        panel(
            "VIP alerts held back by the cooldown",
            [("sum(increase(c360_vip_alerts_suppressed_total[1h]))", "in the last hour")],
            description="A tier reached again within the rules' vip_alert_cooldown_hours of "
            "the person's last alert for it (or a higher one) is not paged again.",
        ),
        panel(
            "Revenue by channel (USD)",
            [("sum by (channel) (c360_channel_revenue_usd)", "{{channel}}")],
            kind="bargauge",
            unit="currencyUSD",
        ),
        panel(
            "Persons acquired by channel",
            [("sum by (channel) (c360_channel_persons)", "{{channel}}")],
            kind="bargauge",
        ),
        panel(
            "Revenue by channel over time (USD)",
            [("sum by (channel) (c360_channel_revenue_usd)", "{{channel}}")],
            unit="currencyUSD",
            stack=True,
        ),
        panel(
            "Revenue per acquired person (USD)",
            [
                (
                    "sum by (channel) (c360_channel_revenue_usd) / "
                    "sum by (channel) (c360_channel_persons)",
                    "{{channel}}",
                )
            ],
            kind="table",
            unit="currencyUSD",
        ),
    ],
)

CONNECTORS = dashboard(
    "c360-connectors",
    "c360 / Connectors",
    "The web collector, the support webhook receiver and the chain connector.",
    [
        panel(
            "Targets up",
            [('sum by (job) (up{job=~"c360-.*"})', "{{job}}")],
            kind="stat",
            w=12,
            h=4,
        ),
        panel(
            "Connectors producing",
            [("sum by (connector) (c360_connector_up)", "{{connector}}")],
            kind="stat",
            w=12,
            h=4,
        ),
        row("Web collector"),
        panel(
            "Collector requests by route and status",
            [
                (
                    f"sum by (route, status) (rate(c360_collector_requests_total[{RATE}]))",
                    "{{route}} {{status}}",
                )
            ],
            unit="reqps",
        ),
        panel(
            "Collector latency by route (p99)",
            [(q(0.99, "c360_collector_request_seconds", "route"), "{{route}}")],
            unit="s",
        ),
        panel(
            "Collector events by type and outcome",
            [
                (
                    f"sum by (type, outcome) (rate(c360_collector_events_total[{RATE}]))",
                    "{{type}} {{outcome}}",
                )
            ],
            unit="ops",
        ),
        panel(
            "Collector rejections by reason",
            [
                (
                    f"sum by (reason) (rate(c360_collector_rejections_total[{RATE}]))",
                    "{{reason}}",
                )
            ],
            unit="ops",
        ),
        panel(
            "SIWE verifications by result",
            [
                (
                    f"sum by (result) (rate(c360_siwe_verifications_total[{RATE}]))",
                    "{{result}}",
                )
            ],
            unit="ops",
        ),
        row("Support webhooks"),
        panel(
            "Webhooks by help desk and result",
            [
                (
                    f"sum by (system, result) (rate(c360_webhook_requests_total[{RATE}]))",
                    "{{system}} {{result}}",
                )
            ],
            unit="reqps",
            w=24,
        ),
        row("Chain connector"),
        panel(
            "Head and processed block",
            [
                ("max by (instance) (c360_chain_head_block)", "head {{instance}}"),
                ("max by (instance) (c360_chain_processed_block)", "processed {{instance}}"),
            ],
            unit="none",
        ),
        panel(
            "Blocks behind the head",
            [
                (
                    "max by (instance) (c360_chain_head_block - c360_chain_processed_block)",
                    "{{instance}}",
                )
            ],
            unit="none",
        ),
        panel(
            "Chain events /s",
            [(f"sum by (instance) (rate(c360_chain_events_total[{RATE}]))", "{{instance}}")],
            unit="ops",
        ),
        panel(
            "Reorgs",
            [
                (
                    "sum by (instance) (increase(c360_chain_reorgs_total[1h]))",
                    "reorgs/h {{instance}}",
                ),
                (
                    "max by (instance) (c360_chain_last_reorg_depth)",
                    "depth of the last {{instance}}",
                ),
            ],
            description="Reorgs undone per hour, and the blocks the last one orphaned "
            "(C360ChainDeepReorg: over 12).",
        ),
        panel(
            "RPC errors /s by kind",
            [
                (
                    f"sum by (instance, kind) (rate(c360_chain_rpc_errors_total[{RATE}]))",
                    "{{instance}} {{kind}}",
                )
            ],
            unit="ops",
            description="Failed RPC calls, retried or not: rate_limit, timeout, range, "
            "missing, other.",
        ),
        panel(
            "Backfill eth_getLogs range",
            [("max by (instance) (c360_chain_getlogs_range)", "{{instance}}")],
            unit="none",
            description="Blocks per eth_getLogs call while backfilling; it shrinks on "
            "the provider's range errors.",
        ),
        panel(
            "Skipped holdings and unfit events /h",
            [
                (
                    "sum by (instance, reason) (increase(c360_chain_holdings_failed_total[1h]))",
                    "holdings {{instance}} {{reason}}",
                ),
                (
                    "sum by (instance, reason) (increase(c360_chain_unfit_events_total[1h]))",
                    "unfit {{instance}} {{reason}}",
                ),
            ],
            unit="none",
            description="Holdings snapshots skipped (a balanceOf that reverts, state a "
            "pruned node no longer has, ...) and events that broke the contract (emitted "
            "without their data, or not at all): the connector's log names each.",
        ),
    ],
)

DASHBOARDS = {
    "c360-pipeline.json": PIPELINE,
    "c360-identity.json": IDENTITY,
    "c360-profiles.json": PROFILES,
    "c360-vip-revenue.json": VIP,
    "c360-connectors.json": CONNECTORS,
}


def render() -> dict[str, str]:
    return {name: json.dumps(d, indent=2) + "\n" for name, d in DASHBOARDS.items()}


def main() -> int:
    OUT.mkdir(exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
