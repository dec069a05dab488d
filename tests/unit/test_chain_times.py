"""First/last transaction times under retractions (stream.core.aggregate.ChainTimes)."""

from hypothesis import given
from hypothesis import strategies as st

from stream.core.aggregate import HOUR, ChainTimes

BLOCK_MS = 12_000


def times(blocks: list[int]) -> dict:
    ct = ChainTimes.empty()
    for b in blocks:
        ChainTimes.apply(ct, 1, b, b * BLOCK_MS, 1, horizon=0)
    return ct


@given(st.lists(st.integers(1, 10_000), max_size=30), st.integers(0, 10_000 * BLOCK_MS))
def test_settling_never_changes_the_bounds(blocks, horizon):
    ct = times(blocks)
    before = ChainTimes.bounds(ct)
    ChainTimes.settle(ct, horizon)
    assert ChainTimes.bounds(ct) == before


def test_a_retract_inside_the_window_restores_the_last_time():
    ct = times([100, 200])
    horizon = 200 * BLOCK_MS - 24 * HOUR
    ChainTimes.apply(ct, 1, 300, 300 * BLOCK_MS, 1, horizon)
    ChainTimes.apply(ct, 1, 300, 300 * BLOCK_MS, -1, horizon)
    assert ChainTimes.bounds(ct) == (100 * BLOCK_MS, 200 * BLOCK_MS)


def test_a_retract_before_its_upsert_cancels_it():
    ct = times([100])
    ChainTimes.apply(ct, 1, 300, 300 * BLOCK_MS, -1, 0)
    assert ChainTimes.bounds(ct) == (100 * BLOCK_MS, 100 * BLOCK_MS)
    ChainTimes.apply(ct, 1, 300, 300 * BLOCK_MS, 1, 0)
    assert ChainTimes.bounds(ct) == (100 * BLOCK_MS, 100 * BLOCK_MS)
    assert ct["r"] == {"1:100": [100 * BLOCK_MS, 100 * BLOCK_MS, 1]}


def test_a_retract_beyond_the_window_keeps_the_times_as_documented():
    ct = times([100])
    late = 100 * BLOCK_MS + 48 * HOUR
    ChainTimes.settle(ct, late - 24 * HOUR)  # the block is now older than the window
    ChainTimes.apply(ct, 1, 100, 100 * BLOCK_MS, -1, late - 24 * HOUR)
    assert ChainTimes.bounds(ct) == (100 * BLOCK_MS, 100 * BLOCK_MS)
    assert ct["r"] == {}
