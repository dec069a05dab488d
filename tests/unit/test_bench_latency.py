"""bench/run.py's latency figures: one phase's keys, and a second phase's beside them."""

from __future__ import annotations

import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

from run import FRESH, LATENCY_LOADS, SIZES, record_latency

from stream.population import Population


def test_a_phase_records_its_percentiles_under_its_suffix():
    results: dict = {}
    lat = [float(ms) for ms in range(200, 0, -1)]  # 1..200 ms, unsorted
    record_latency(results, "", lat, [2.0, 1.0, 3.0], 0.5, 120.0, 60.0)
    record_latency(results, "_quarter_load", [5.0], [], 0.25, 150.0, 60.0)
    assert results["latency_ms_p50"] == 100.5
    assert results["latency_ms_p99"] == 199.0  # the 99th percentile of 1..200 (index 198)
    assert results["latency_probes"] == 200
    assert (results["api_ms_p50"], results["api_ms_p99"], results["api_requests"]) == (2.0, 3.0, 3)
    assert (results["latency_worker_cpu"], results["latency_worker_cpu_us_per_event"]) == (
        0.5,
        120.0,
    )
    assert results["latency_ms_p99_quarter_load"] == 5.0
    assert results["latency_worker_cpu_us_per_event_quarter_load"] == 150.0
    assert "api_ms_p99_quarter_load" not in results  # no lookups answered: no figure


def test_each_latency_phase_paces_persons_new_to_the_deployment():
    """The throughput phase's persons are numbered from 0, the link-heavy ones from
    FRESH, each latency phase's background from its own start: no two share an
    identifier, and each range (a background has ~4,500 persons at 30,000 events/s)
    ends before the next begins."""
    sizes = SIZES["full"]
    starts = [0, FRESH, *(first for _, _, first in LATENCY_LOADS)]
    assert len(set(starts)) == len(starts)
    assert sizes["persons"] <= FRESH and FRESH + sizes["heavy_persons"] <= min(starts[2:])
    ordered = sorted(starts[1:])
    assert all(b - a >= FRESH for a, b in itertools.pairwise(ordered))
    owners = [set(Population(50, first=first).truth()["owner"]) for first in starts]
    for i, one in enumerate(owners):
        assert one
        for other in owners[i + 1 :]:
            assert not one & other
