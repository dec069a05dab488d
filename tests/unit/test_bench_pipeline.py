"""bench/pipeline.py's in-process measure (the benchmark's ``core_us_per_event``)."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "bench"))

from pipeline import ORDER, measure


def test_the_measure_runs_the_mix_through_every_stage_and_restores_the_collector():
    thresholds = gc.get_threshold()
    run = measure(3000)
    assert gc.get_threshold() == thresholds
    assert 2800 <= run.events <= 3000  # the events that travel in batched records
    assert set(run.spent) == {"ingest", *ORDER}
    assert all(run.messages[stage] > 0 for stage in ("route", "link", "profile"))
    assert run.outputs > 0
    assert run.seconds >= sum(run.spent.values()) * 0.99
    assert run.us_per_event == run.seconds / run.events * 1e6
    assert run.sizes["profile p:"][0] > 0


def test_sign_ins_each_reach_the_link_stage():
    run = measure(200, links=True)
    assert run.events == 200
    assert run.messages["link"] == 200
