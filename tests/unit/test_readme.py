"""The README tells the truth: its producer examples are valid, its topics table is current."""

import json
import re
from pathlib import Path

from stream import topics
from stream.core.ingest import TOPIC_DECODERS, Ingest
from stream.core.rules import DEFAULT, Compiled
from stream.replay import person_lines, read_inputs, replay
from stream.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def examples() -> dict[str, str]:
    pattern = re.compile(r"`c360\.([a-z.]+)` \(key: [^)]*\):\n\n```json\n(.*?)\n```", re.S)
    return {topic: body for topic, body in pattern.findall(README)}


def test_every_input_topic_has_a_valid_example_in_the_readme():
    found = examples()
    assert set(found) == {t.suffix for t in topics.INPUTS}
    ingest = Ingest(Compiled(DEFAULT))
    for topic, body in found.items():
        json.loads(body)
        if topic in TOPIC_DECODERS:
            out = ingest.record(topic, body.encode())
            assert out.facts and not out.rejections, (topic, out.rejections)


def test_topics_table_is_current():
    assert topics.markdown_table(Settings.from_env({})) in README


def test_lookup_examples_name_persons_of_the_journey_fixture():
    """The README's lookups answer on the journey fixture (person ids depend only on the
    identifiers, so a worker fed the fixture gives the ids the simulator gives)."""
    journey = Path(__file__).parents[1] / "fixtures" / "journey" / "events.jsonl"
    sim = replay(list(read_inputs(journey.read_text().splitlines())))
    persons = {}
    for line in person_lines(sim):
        for members in line["identifiers"].values():
            persons.update(dict.fromkeys(members, line["person_id"]))
    for person_id in re.findall(r"/v1/persons/(p[0-9a-f]+)", README):
        assert person_id in persons.values(), f"{person_id} is no person of the journey"
    for identifier in re.findall(r"/v1/(?:profiles|identities)/([a-z]+:[^\s`]+)", README):
        assert identifier.lower() in persons, f"{identifier} is not in the journey"
    shown = re.search(
        r'/v1/identities/(\S+)\n# \{"identifier": "...", "person_id": "(p[0-9a-f]+)', README
    )
    assert persons[shown[1]].startswith(shown[2])


def test_the_input_examples_tell_one_story():
    """Sent together, the README's examples are one person's first days: nothing is
    dead-lettered and no one is judged back after a long absence (a chain event dated a
    year before the others once made its person ``resurrected``)."""
    keys = {
        "web.events": lambda v: v["anonymousId"],
        "forms": lambda v: v["form_id"],
        "socials": lambda v: f"{v['platform']}:{v['platform_user_id']}",
        "chain.events": lambda v: f"{v['chain_id']}:{v['tx_hash']}",
        "chain.holdings": lambda v: v["wallet"],
        "support": lambda v: f"{v['system']}:{v['external_id']}",
        "prices": lambda v: f"{v['chain_id']}:{v['token']}".lower(),
        "labels": lambda v: f"{v['chain_id']}:{v['address']}".lower(),
    }
    lines = []
    for topic, body in examples().items():
        value = json.loads(body)
        lines.append(json.dumps({"topic": topic, "key": keys[topic](value), "value": value}))
    sim = replay(list(read_inputs(lines)))
    assert not sim.outputs.dead_letters
    people = list(person_lines(sim))
    assert people and {p["profile"]["lifecycle"] for p in people} <= {"new", None}
