"""`c360 demo` end to end on the real broker (small population, exits when done)."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess

import pytest

from stream import topics
from tests.support.kafka import list_topics
from tests.support.waiting import wait_for
from tests.support.worker import BIN

pytestmark = pytest.mark.integration


def demo(settings, persons: int, events: int) -> subprocess.CompletedProcess:
    """``c360 demo --exit`` of a population of that size, on the test broker."""
    return subprocess.run(
        [str(BIN / "c360"), "demo", "--persons", str(persons), "--events", str(events), "--exit"],
        env={**os.environ, **settings.to_env()},
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_demo_streams_a_population_and_shows_profiles_channels_and_quality(settings):
    run = demo(settings, 600, 15000)
    out = run.stdout
    assert run.returncode == 0, out[-3000:] + run.stderr[-3000:]
    for title in (
        "A VIP",
        "Three wallets and a support history",
        "A campaign user who never transacted",
        "Revenue by acquisition channel",
    ):
        assert title in out
    assert out.count("     person           p") == 3, out[-4000:]
    quality = re.search(r"precision (\d\.\d+)\s+recall (\d\.\d+)", out)
    assert quality is not None, out[-2000:]
    assert float(quality.group(1)) >= 0.99 and float(quality.group(2)) >= 0.99
    assert f"{settings.web_url}/metrics" in out
    # its topics went with its worker
    prefix = re.search(r"topics (demo[0-9a-f]{8}\.)\*", out)
    assert prefix is not None, out[:500]
    deleted = re.search(r"deleted this run's (\d+) topics", out)
    assert deleted is not None and int(deleted.group(1)) >= len(topics.ALL), out[-500:]
    tag = prefix.group(1)[4:-1]
    wait_for(
        lambda: asyncio.run(list_topics(settings.kafka_bootstrap)),
        lambda names: not [n for n in names if n.startswith((f"demo{tag}.", f"c360-demo-{tag}-"))],
        timeout=30,
        what="the demo's topics and faust's topics of its app id are gone",
    )
    # each run has its own topics: a second run on the same broker starts clean
    again = demo(settings, 50, 300)
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
