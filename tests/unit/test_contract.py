"""The contract: schemas generated from the structs, and every example valid by both."""

from __future__ import annotations

import json

import jsonschema
import msgspec
import pytest

from stream import contract
from stream.core.ingest import TOPIC_DECODERS, Ingest
from stream.core.rules import DEFAULT, Compiled

EXAMPLES = [
    (spec, path) for spec in contract.SCHEMAS for path in sorted(spec.examples_dir.glob("*.json"))
]


def validator(spec: contract.SchemaSpec) -> jsonschema.Draft202012Validator:
    schema = json.loads((contract.SCHEMA_DIR / spec.filename).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )


@pytest.mark.parametrize("spec", contract.SCHEMAS, ids=lambda s: s.name)
def test_committed_schema_is_the_generated_one(spec):
    committed = (contract.SCHEMA_DIR / spec.filename).read_text()
    assert committed == contract.render(spec), "run `make schemas`"


@pytest.mark.parametrize("spec", contract.SCHEMAS, ids=lambda s: s.name)
def test_every_schema_has_examples(spec):
    assert list(spec.examples_dir.glob("*.json")), f"no example in {spec.examples_dir}"


@pytest.mark.parametrize(("spec", "path"), EXAMPLES, ids=lambda x: getattr(x, "stem", ""))
def test_example_validates_against_schema_and_struct(spec, path):
    raw = path.read_bytes()
    errors = sorted(validator(spec).iter_errors(json.loads(raw)), key=str)
    assert not errors, [e.message for e in errors]
    msgspec.json.decode(raw, type=spec.struct)


MUTATIONS = [
    ("web-event", "page-from-campaign", {"messageId": None}),
    ("web-event", "page-from-campaign", {"timestamp": "2026-11-02 09:14"}),
    ("web-event", "page-from-campaign", {"type": "teleport"}),
    ("web-event", "wallet-connected", {"properties": {"chainId": 1}}),
    ("chain-event", "erc20-transfer", {"op": "delete"}),
    ("chain-event", "erc20-transfer", {"block_hash": "0x1234"}),
    ("chain-event", "erc20-transfer", {"tx_hash": "0x" + "zz" * 32}),
    ("chain-event", "erc20-transfer", {"topics": ["0x" + "g" * 64]}),
    ("chain-event", "erc20-transfer", {"data": "0xabc"}),
    ("chain-event", "erc20-transfer", {"tx_to": "0x" + "q" * 40}),
    ("holding-snapshot", "usdc", {"wallet": "0x" + "q" * 40}),
    ("chain-event", "tx-with-fee-and-revenue", {"fee_wei": -1}),
    ("support-ticket", "zendesk-created", {"status": "exploded"}),
    ("support-ticket", "zendesk-solved-by-agent", {"by_requester": "agent"}),
    ("price", "eth", {"price_usd": "cheap"}),
]


@pytest.mark.parametrize(("name", "example", "patch"), MUTATIONS)
def test_broken_examples_fail_in_both(name, example, patch):
    """What the JSON Schema refuses, ingest (struct decode + its checks) refuses too."""
    spec = next(s for s in contract.SCHEMAS if s.name == name)
    doc = json.loads((spec.examples_dir / f"{example}.json").read_text())
    doc.update(patch)
    assert list(validator(spec).iter_errors(doc)), "the JSON Schema accepted it"
    if spec.topic.suffix in TOPIC_DECODERS:
        out = Ingest(Compiled(DEFAULT)).record(spec.topic.suffix, json.dumps(doc).encode())
        assert out.rejections and not out.facts
    else:
        with pytest.raises(msgspec.ValidationError):
            msgspec.json.decode(json.dumps(doc), type=spec.struct)
