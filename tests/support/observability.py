"""What the observability tests share: the metric catalogue, the metrics that the
alert rules and dashboards read, promtool, and parsing a /metrics page."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).parents[2]
DOCS = ROOT / "docs" / "metrics.md"
PROMETHEUS = ROOT / "ops" / "prometheus"
DASHBOARDS = ROOT / "ops" / "grafana" / "dashboards"

_METRIC = re.compile(r"\b(c360_[a-zA-Z0-9_]+|up)\b(?!\s*\()")
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"')
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (label values and label lists excluded)."""
    expr = _STRINGS.sub('""', expr)
    expr = _LABEL_LISTS.sub("", expr)
    return set(_METRIC.findall(expr))


def catalogue() -> dict[str, dict[str, tuple[str, tuple[str, ...]]]]:
    """docs/metrics.md: {section: {name: (type, labels)}}."""
    out: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {}
    section = None
    for line in DOCS.read_text().splitlines():
        if line.startswith("## "):
            section = line[3:].strip()
            out[section] = {}
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if section and len(cells) >= 4 and cells[0].startswith("`c360_"):
            labels = tuple(
                label.strip() for label in cells[2].split(",") if label.strip() and "(" not in label
            )
            out[section][cells[0].strip("`")] = (cells[1], labels)
    return out


def rule_groups() -> list[dict]:
    groups = []
    for path in sorted((PROMETHEUS / "rules").glob("*.yml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def alert_rules() -> dict[str, dict]:
    return {r["alert"]: r for g in rule_groups() for r in g["rules"] if "alert" in r}


def dashboards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panel_exprs(dashboard: dict) -> list[str]:
    exprs = []
    for panel in dashboard.get("panels", []):
        for inner in [panel, *panel.get("panels", [])]:
            exprs.extend(t["expr"] for t in inner.get("targets", []) if t.get("expr"))
    return exprs


def referenced_metrics() -> dict[str, set[str]]:
    """Every metric an alert rule or a dashboard panel reads -> where it is read."""
    where: dict[str, set[str]] = {}
    for g in rule_groups():
        for rule in g["rules"]:
            name = rule.get("alert") or rule.get("record")
            for metric in metric_names(rule["expr"]):
                where.setdefault(metric, set()).add(f"rule {name}")
    for file, dashboard in dashboards().items():
        for expr in panel_exprs(dashboard):
            for metric in metric_names(expr):
                where.setdefault(metric, set()).add(f"dashboard {file}")
    return where


def recorded() -> set[str]:
    """Names of recording rules (series Prometheus makes, not a target)."""
    return {r["record"] for g in rule_groups() for r in g["rules"] if "record" in r}


def samples(text: str) -> dict[str, list[tuple[dict, float]]]:
    """A /metrics page: {sample name: [(labels, value)]}."""
    out: dict[str, list[tuple[dict, float]]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out.setdefault(s.name, []).append((s.labels, s.value))
    return out


def promtool() -> str:
    """The promtool binary. `make test` installs it (ops/install-prometheus.sh); a missing
    one fails the test (never a skip: the rules would go untested)."""
    return _binary("promtool")


def prometheus() -> str:
    return _binary("prometheus")


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    pytest.fail(
        f"{name} is not installed (run ops/install-prometheus.sh, or `make test`)", pytrace=False
    )
    raise AssertionError  # unreachable
