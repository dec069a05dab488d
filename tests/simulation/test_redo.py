"""A profile batch redone after a crash computes what it computed the first time.

A worker that dies after sending a batch's changes and before committing its state
redoes the batch from the state it had stored. Meanwhile the global prices and labels
tables may have moved on; the profile stage must not read them: it values and labels
only with what its own input brought (``Price``, ``Refresh``, ``Members``). Here every
profile-stage delivery of a run in which prices and labels keep changing is redone
from the state it started from, once the run is over (the global tables then hold
their last values), and must emit the same changes, the same messages, in order.
"""

from __future__ import annotations

import random

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from stream.core.state import MemoryState
from stream.sim import Input, Simulator, _Emit
from tests.simulation.profile_scenarios import (
    USDC,
    label_input,
    price_input,
    profile_scenario,
    wallet,
)

HOUR = 3_600_000
_encode = msgspec.json.Encoder().encode


class Redoable(Simulator):
    """A simulator that keeps every profile delivery with the state it started from."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.done: list[tuple[int, bytes, MemoryState, bytes]] = []

    def apply(self, stage: str, partition: int, record: bytes) -> _Emit:
        if stage != "profile":
            return super().apply(stage, partition, record)
        before = _copy(self.state(stage, partition))
        emit = super().apply(stage, partition, record)
        self.done.append((partition, record, before, _outputs(emit)))
        return emit

    def redo(self, partition: int, record: bytes, before: MemoryState) -> bytes:
        """The delivery again, on a copy of the state it started from."""
        self.states[("profile", partition)] = before
        return _outputs(super().apply("profile", partition, record))


def _copy(state: MemoryState) -> MemoryState:
    state.commit()
    copy = MemoryState()
    for key, value in state.items():
        copy.put(key, value)
    copy.commit()
    return copy


def _outputs(emit: _Emit) -> bytes:
    """Everything a delivery emitted, in order, as bytes (structs compare by encoding)."""
    return _encode(
        [
            sorted((f"{suffix}:{p}", msgs) for (suffix, p), msgs in emit.groups.items()),
            [(spec.suffix, key, payload) for spec, key, payload in emit.records],
        ]
    )


def churned(seed: int, persons: int = 5) -> list[Input]:
    """A profile scenario with prices moving and labels changing throughout, and ticks."""
    r = random.Random(seed)
    inputs = list(profile_scenario(seed, events=90, persons=persons).inputs)
    clock = 1_788_000_000_000
    for _ in range(14):
        at = r.randrange(len(inputs) + 1)
        kind = r.random()
        if kind < 0.35:
            token, decimals = r.choice([("native", 18), (USDC, 6)])
            usd = None if r.random() < 0.15 else round(r.uniform(0.5, 4000.0), 2)
            item = price_input(token, usd, decimals)
        elif kind < 0.8:
            category = r.choice(["fund", "bot", "other", "exchange", None])
            item = label_input(wallet(r.randrange(persons * 2)), [category] if category else [])
        else:
            clock += r.randrange(1, 48) * HOUR
            item = Input("tick", now=clock)
        inputs.insert(at, item)
    return inputs


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**32), partitions=st.integers(1, 4))
def test_a_redone_profile_batch_emits_what_it_emitted_the_first_time(seed, partitions):
    sim = Redoable(partitions=partitions, seed=seed, check_views=True)
    sim.run(churned(seed))
    assert sim.done
    moved = {"prices": bool(sim.prices), "labels": bool(sim.labels)}
    assert any(moved.values())  # the global tables changed during the run
    for partition, record, before, first in sim.done:
        assert sim.redo(partition, record, before) == first


def test_the_profile_shows_the_labels_and_prices_its_input_brought():
    """What the global tables say and the partition has not been told yet is not shown."""
    sim = Simulator(partitions=2, seed=1, check_views=True)
    sim.run(list(profile_scenario(3, events=60, persons=3).inputs))
    holder = next(
        p for p, row in sim.persons().items() if any(i.startswith("wallet:") for i in row["m"])
    )
    address = next(i for i in sim.persons()[holder]["m"] if i.startswith("wallet:"))[7:]
    sim.run([label_input(address, ["fund"])])
    assert sim.persons()[holder]["w"]["labels"] == {f"wallet:{address}": ["fund"]}
    # the labels record reached the global table, its messages not the profile yet
    sim.feed(label_input(address, ["bot"]))
    assert sim.labels[f"wallet:{address}"] == {"1": ["bot"]}
    assert sim.persons()[holder]["w"]["labels"] == {f"wallet:{address}": ["fund"]}
    while sim.step():
        pass
    assert sim.persons()[holder]["w"]["labels"] == {f"wallet:{address}": ["bot"]}
