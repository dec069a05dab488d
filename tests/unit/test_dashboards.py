"""The Grafana dashboards: generated from ops/grafana/build_dashboards.py, provisioned,
valid PromQL (promtool), and reading only catalogued metrics."""

from __future__ import annotations

import importlib.util
import re
import subprocess

import yaml

from connectors.chain.metrics import ChainMetrics
from stream.shell.metrics import catalogue as registered
from tests.support.observability import (
    DASHBOARDS,
    ROOT,
    catalogue,
    dashboards,
    metric_names,
    panel_exprs,
    promtool,
    referenced_metrics,
    rule_groups,
)

GRAFANA = ROOT / "ops" / "grafana"
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*\"")
EXPECTED = {
    "c360-pipeline.json",
    "c360-identity.json",
    "c360-profiles.json",
    "c360-vip-revenue.json",
    "c360-connectors.json",
}


def build_module():
    spec = importlib.util.spec_from_file_location("build", GRAFANA / "build_dashboards.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_json_files_are_the_generators_output():
    rendered = build_module().render()
    assert set(rendered) == EXPECTED
    for name, text in rendered.items():
        stale = f"{name} is stale: run ops/grafana/build_dashboards.py"
        assert (DASHBOARDS / name).read_text() == text, stale


def test_dashboards_have_unique_uids_panel_ids_and_the_provisioned_datasource():
    datasource = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    uids = [d["uid"] for d in dashboards().values()]
    assert len(set(uids)) == len(uids) == len(EXPECTED)
    for name, d in dashboards().items():
        ids = [p["id"] for p in d["panels"]]
        assert len(set(ids)) == len(ids), name
        for p in d["panels"]:
            if p["type"] != "row":
                assert p["datasource"]["uid"] == uid, (name, p["title"])
                assert p["targets"], (name, p["title"])


def test_the_provider_loads_the_directory_compose_mounts():
    provider = yaml.safe_load((GRAFANA / "provisioning/dashboards/c360.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    grafana = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]["grafana"]
    assert f"./ops/grafana/dashboards:{path}:ro" in grafana["volumes"]
    assert "./ops/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana["volumes"]


def test_every_panel_expression_is_valid_promql(tmp_path):
    rules = []
    for name, d in dashboards().items():
        for i, expr in enumerate(panel_exprs(d)):
            expr = expr.replace("$__rate_interval", "1m")
            record = f"panel:{name.split('.')[0].replace('-', '_')}:{i}"
            rules.append({"record": record, "expr": expr})
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    done = subprocess.run(
        [promtool(), "check", "rules", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_dashboards_and_alerts_read_only_catalogued_metrics():
    known = {"up"} | {name for section in catalogue().values() for name in section}
    histograms = {
        name
        for section in catalogue().values()
        for name, (kind, _) in section.items()
        if kind == "histogram"
    }
    known |= {f"{h}_{suffix}" for h in histograms for suffix in ("bucket", "sum", "count")}
    unknown = {m: where for m, where in referenced_metrics().items() if m not in known}
    assert unknown == {}


def test_the_chain_metrics_read_are_the_chain_connectors():
    """Alerts and panels read what connectors/chain registers, and show all of it."""
    chain = {m for m in referenced_metrics() if m.startswith("c360_chain_")}
    own = {name for name, _, _ in registered(ChainMetrics().registry)}
    assert chain == {m for m in own if m.startswith("c360_chain_")}


def labels_read(expr: str) -> set[str]:
    """Labels a PromQL expression groups, joins or matches on."""
    out = set()
    for group in _GROUPING.finditer(expr):
        out |= {label.strip() for label in group.group(1).split(",") if label.strip()}
    for selector in re.findall(r"\{([^}]*)\}", expr):
        out |= set(_MATCHER.findall(selector))
    return out


def test_dashboards_and_alerts_use_labels_their_metrics_have():
    """A label a metric does not carry groups or matches nothing (an empty panel, a
    silent alert): every label an expression, a legend or an annotation names is one of
    its metrics' (docs/metrics.md) or a target's (job, instance)."""
    labels: dict[str, set[str]] = {"up": set()}
    for section in catalogue().values():
        for name, (kind, names) in section.items():
            labels[name] = set(names)
            if kind == "histogram":
                labels[f"{name}_bucket"] = {*names, "le"}
                labels[f"{name}_sum"] = labels[f"{name}_count"] = set(names)
    uses = []  # (where, expression, labels named outside it)
    for group in rule_groups():
        for rule in group["rules"]:
            text = " ".join(rule.get("annotations", {}).values())
            named = set(re.findall(r"\$labels\.([a-zA-Z_]+)", text))
            uses.append((rule.get("alert") or rule.get("record"), rule["expr"], named))
    for file, dashboard in dashboards().items():
        for panel in dashboard["panels"]:
            for target in panel.get("targets", []):
                named = set(
                    re.findall(r"\{\{\s*([a-zA-Z_]+)\s*\}\}", target.get("legendFormat", ""))
                )
                uses.append((f"{file} {panel['title']}", target["expr"], named))
    wrong = {}
    for where, expr, named in uses:
        have = {"job", "instance"}.union(*(labels[m] for m in metric_names(expr)))
        if (labels_read(expr) | named) - have:
            wrong[where] = sorted((labels_read(expr) | named) - have)
    assert wrong == {}
