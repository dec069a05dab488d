"""The identity journey (tests/fixtures/journey) in the simulator, for many schedules."""

import json
from pathlib import Path

import pytest

from stream.replay import person_lines, read_inputs, replay

JOURNEY = Path(__file__).parents[1] / "fixtures" / "journey"


def inputs():
    return list(read_inputs((JOURNEY / "events.jsonl").read_text().splitlines()))


@pytest.mark.parametrize("partitions", [1, 3, 8])
@pytest.mark.parametrize("seed", range(5))
def test_the_journey_ends_in_one_person(partitions, seed):
    expected = json.loads((JOURNEY / "expected_identities.json").read_text())
    sim = replay(inputs(), partitions=partitions, seed=seed)
    [person] = [p for p in person_lines(sim) if "anon:dev-A" in p["identifiers"].get("anon", [])]
    assert person["identifiers"] == expected["identifiers"]
    assert person["associations"] == expected["associations"]
    profile = {"identifiers": person["identifiers"], "associations": person["associations"]}
    profile.update(person["profile"])
    assert profile == json.loads((JOURNEY / "expected_profile.json").read_text())
