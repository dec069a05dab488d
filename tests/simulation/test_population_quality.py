"""The synthetic population through the simulator: identity quality against ground truth."""

from __future__ import annotations

import msgspec

from stream.population import Population, score
from stream.sim import Input, Simulator


def test_identity_resolution_of_the_population_scores_above_99_percent():
    population = Population(600, seed=21)
    sim = Simulator(partitions=4, seed=2)
    sim.run([Input(s, msgspec.json.encode(p), key=k) for s, k, p in population.events(15_000)])
    assigned = {ident: person for person, row in sim.persons().items() for ident in row["m"]}
    q = score(population.truth(), assigned)
    assert q["identifiers_scored"] > 1500
    assert q["precision"] >= 0.99, q
    assert q["recall"] >= 0.99, q
    assert q["shared_kept_apart"] == q["shared_identifiers"], q
