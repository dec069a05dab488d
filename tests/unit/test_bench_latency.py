"""bench/run.py's latency figures: one phase's keys, and a second phase's beside them."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

from run import FRESH, PACED, SIZES, record_latency

from stream.population import Population


def test_a_phase_records_its_percentiles_under_its_suffix():
    results: dict = {}
    lat = [float(ms) for ms in range(200, 0, -1)]  # 1..200 ms, unsorted
    record_latency(results, "", lat, [2.0, 1.0, 3.0], 0.5, 120.0, 60.0)
    record_latency(results, "_quarter_load", [5.0], [], 0.25, 150.0, 60.0)
    assert results["latency_ms_p50"] == 100.5
    assert results["latency_ms_p99"] == 199.0  # the 99th of 200 sorted values
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
    FRESH, the half-load background's from PACED, the quarter-load one's from
    PACED + FRESH: no two share an identifier."""
    sizes = SIZES["full"]
    assert sizes["persons"] <= FRESH and FRESH + sizes["heavy_persons"] <= PACED
    owners = [
        set(Population(50, first=first).truth()["owner"])
        for first in (0, FRESH, PACED, PACED + FRESH)
    ]
    for i, one in enumerate(owners):
        assert one
        for other in owners[i + 1 :]:
            assert not one & other
