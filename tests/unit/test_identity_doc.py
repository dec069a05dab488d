"""docs/identity.md shows the whole rules file with its defaults."""

import json
import re
from pathlib import Path

import msgspec

from stream.core.rules import DEFAULT, Rules

DOC = (Path(__file__).parents[2] / "docs" / "identity.md").read_text()


def shown() -> dict:
    """Every rules-file block of the doc, merged (the identity rules, then the profile rules)."""
    blocks = re.findall(r"```json\n(\{.*?\})\n```", DOC, re.S)
    merged: dict = {}
    for block in blocks:
        merged.update(json.loads(block))
    return merged


def test_every_key_of_the_rules_file_is_shown():
    assert set(shown()) == set(Rules.__struct_fields__)


def test_the_values_shown_are_the_defaults_but_the_two_examples():
    rules = shown()
    del rules["evidence"]  # the doc's example of an override
    rules["blocked"].pop("exact")  # the other one
    assert msgspec.convert(rules, Rules) == DEFAULT
