"""A service keyed by identifier, fed only by ``profile.changes``, knows every
identifier's person: whatever the order it reads the change topic's partitions in
(each in order, as Kafka guarantees), it keeps per identifier the claim with the
highest ``identity_seq``."""

from __future__ import annotations

import random

import msgspec
import pytest

from stream.core.partitioner import partition_for
from stream.population import Population
from stream.sim import Input, Simulator

PARTITIONS = 4


def consume(changes) -> dict[str, str]:
    claims: dict[str, tuple[int, str]] = {}  # identifier -> (identity_seq, person)
    for change in changes:
        field = change.changes.get("identifiers")
        if field is None:
            continue
        old = {i for ids in (field.old or {}).values() for i in ids}
        new = {i for ids in (field.new or {}).values() for i in ids}
        seq, person = change.identity_seq, change.person_id
        for ident in new:
            if ident not in claims or seq >= claims[ident][0]:
                claims[ident] = (seq, person)
        for ident in old - new:  # let go: forget it unless another person claimed it since
            if claims.get(ident, (0, None))[1] == person:
                del claims[ident]
    return {ident: person for ident, (_, person) in claims.items()}


def orders(changes, seed: int):
    by_partition: dict[int, list] = {}
    for change in changes:
        by_partition.setdefault(partition_for(change.person_id, PARTITIONS), []).append(change)
    yield "as sent", changes
    for name, parts in (("one after another", sorted(by_partition)),
                        ("backwards", sorted(by_partition, reverse=True))):  # fmt: skip
        yield name, [c for p in parts for c in by_partition[p]]
    r = random.Random(seed)
    for n in range(3):  # interleaved at random, each partition in order
        queues = {p: list(cs) for p, cs in by_partition.items()}
        mixed = []
        while queues:
            p = r.choice(sorted(queues))
            mixed.append(queues[p].pop(0))
            if not queues[p]:
                del queues[p]
        yield f"interleaved {n}", mixed


@pytest.mark.parametrize("seed", [1, 2])
def test_a_consumer_keyed_by_identifier_follows_merges_and_splits_in_any_partition_order(seed):
    population = Population(1500, seed=seed)
    sim = Simulator(partitions=PARTITIONS, seed=seed)
    sim.run([Input(s, msgspec.json.encode(p), key=k) for s, k, p in population.events(40_000)])
    assert sim.link.stats["merges"] and sim.link.stats["splits"]  # both happen
    truth = {ident: person for person, row in sim.persons().items() for ident in row["m"]}
    for name, order in orders(sim.outputs.profile_changes, seed):
        known = consume(order)
        wrong = {i: (known.get(i), p) for i, p in truth.items() if known.get(i) != p}
        assert not wrong, (name, len(wrong), list(wrong.items())[:3])
