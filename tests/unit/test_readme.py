"""The README tells the truth: its producer examples are valid, its topics table is current."""

import json
import re
from pathlib import Path

from stream import topics
from stream.core.ingest import TOPIC_DECODERS, Ingest
from stream.core.rules import DEFAULT, Compiled
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
