"""docs/metrics.md lists every registered metric, with its type and labels, and nothing else."""

from __future__ import annotations

import re

from connectors.chain.metrics import ChainMetrics
from connectors.support.app import SupportMetrics
from connectors.web.metrics import CollectorMetrics
from stream.shell.metrics import METRICS, TOP_CHANNELS, catalogue, top_channels
from tests.support.observability import DOCS
from tests.support.observability import catalogue as documented


def registered(registry) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {name: (kind, labels) for name, kind, labels in catalogue(registry)}


def test_the_worker_section_is_the_worker_registry():
    assert documented()["Worker"] == registered(METRICS.registry)


def test_the_connector_sections_are_their_registries():
    docs = documented()
    assert docs["Web collector"] == registered(CollectorMetrics().registry)
    assert docs["Support receiver"] == registered(SupportMetrics().registry)
    assert docs["Chain connector"] == registered(ChainMetrics().registry)


def test_the_chain_connectors_page_lists_the_same_metrics():
    """docs/connectors/chain.md has its own metrics table: the same names."""
    page = (DOCS.parent / "connectors" / "chain.md").read_text()
    section = page.split("## Metrics", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"^\| `(c360_[a-z0-9_]+)`", section, re.M))
    assert listed == set(registered(ChainMetrics().registry))


def test_every_metric_has_the_prefix_and_counters_end_in_total():
    for section in documented().values():
        for name, (kind, _) in section.items():
            assert name.startswith("c360_")
            assert name.endswith("_total") == (kind == "counter"), name


def test_no_label_is_an_identifier():
    forbidden = {"person", "person_id", "wallet", "identifier", "ident", "address", "user"}
    for section in documented().values():
        for name, (_, labels) in section.items():
            assert not forbidden & set(labels), name


def test_channels_beyond_the_top_n_add_up_as_other():
    rows = {f"ch{i}": (i, float(i * 10)) for i in range(TOP_CHANNELS + 5)}
    top = top_channels(rows)
    assert len(top) == TOP_CHANNELS + 1
    assert top[0] == (f"ch{TOP_CHANNELS + 4}", TOP_CHANNELS + 4, (TOP_CHANNELS + 4) * 10.0)
    assert top[-1] == ("other", sum(range(5)), sum(i * 10.0 for i in range(5)))
    assert top_channels({"a": (1, 2.0)}) == [("a", 1, 2.0)]


def test_the_series_c360_webhook_kafka_unavailable_counts_exist_from_the_start():
    """Prometheus takes a new series' first sample as its baseline: a series born with
    the receiver's first 503 hid that 503 from the alert's increase()."""
    from prometheus_client import generate_latest

    from connectors.support.mapping import MAPPERS
    from tests.support.observability import samples

    exposed = samples(generate_latest(SupportMetrics().registry).decode())
    unavailable = {
        labels["system"]: value
        for labels, value in exposed.get("c360_webhook_requests_total", [])
        if labels["result"] == "kafka_unavailable"
    }
    assert unavailable == dict.fromkeys(MAPPERS, 0.0)
