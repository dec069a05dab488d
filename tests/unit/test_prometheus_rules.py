"""promtool accepts the Prometheus config and rules, and every alert's unit tests pass.

promtool is installed by `make test` (ops/install-prometheus.sh); when it is missing
these tests fail: untested alert rules are not an option.
"""

from __future__ import annotations

import re
import subprocess

import yaml

from tests.support.observability import PROMETHEUS, alert_rules, promtool


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool(), *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60
    )


def test_promtool_checks_the_config():
    done = run("check", "config", "prometheus.yml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_checks_the_rules():
    rules = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "rules").glob("*.yml"))
    assert rules
    done = run("check", "rules", *rules)
    assert done.returncode == 0, done.stdout + done.stderr


def test_promtool_rule_unit_tests_pass():
    tests = sorted(str(p.relative_to(PROMETHEUS)) for p in (PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    done = run("test", "rules", *tests)
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_not_firing():
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in (PROMETHEUS / "tests").glob("*.yml"):
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    alerts = set(alert_rules())
    assert alerts - firing == set(), "alerts without a firing test"
    assert alerts - quiet == set(), "alerts without a not-firing test"


def test_every_alert_has_a_severity_and_a_summary():
    for name, rule in alert_rules().items():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}, name
        assert rule["annotations"]["summary"], name


def test_the_observability_page_lists_every_alert_with_its_severity():
    """docs/observability.md's alert table is what an operator reads when one fires."""
    page = (PROMETHEUS.parents[1] / "docs" / "observability.md").read_text()
    listed = dict(re.findall(r"^\| `(C360[A-Za-z]+)` \| (\w+) \|", page, re.M))
    assert listed == {name: rule["labels"]["severity"] for name, rule in alert_rules().items()}
