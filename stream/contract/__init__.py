"""The event contract: one JSON Schema per topic payload, generated from the structs.

``SCHEMAS`` lists every payload with its topic and version. ``c360 schemas
--write`` regenerates ``schemas/*.json`` from the structs; the tests check that
the committed files equal the generated ones and that every example validates
both against the JSON Schema (draft 2020-12) and by decoding into the struct.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from stream import topics
from stream.contract import inputs, outputs

DRAFT = "https://json-schema.org/draft/2020-12/schema"
BASE_ID = "https://c360.dev/schemas/"
SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"


@dataclass(frozen=True)
class SchemaSpec:
    """A payload schema: its name, version, struct and topic."""

    name: str
    version: int
    struct: type[msgspec.Struct]
    topic: topics.TopicSpec
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def filename(self) -> str:
        return f"{self.name}.v{self.version}.json"

    @property
    def examples_dir(self) -> Path:
        return SCHEMA_DIR / "examples" / self.name

    def generate(self) -> dict[str, Any]:
        """The JSON Schema document of this payload."""
        generated = msgspec.json.schema(self.struct)
        defs = generated.get("$defs", {})
        root_name = generated["$ref"].rsplit("/", 1)[1]
        root = defs.pop(root_name)
        doc: dict[str, Any] = {
            "$schema": DRAFT,
            "$id": f"{BASE_ID}{self.name}/v{self.version}",
            "title": f"{self.name} v{self.version}",
            "x-topic": self.topic.suffix,
        }
        doc.update(root)
        doc.pop("title", None)
        doc["title"] = f"{self.name} v{self.version}"
        for key, value in self.extra.items():
            value = _merge_defs(value, defs)
            doc[key] = value
        if defs:
            doc["$defs"] = defs
        return doc


def _merge_defs(value: Any, defs: dict[str, Any]) -> Any:
    """Pull the ``$defs`` of embedded generated schemas into the document's ``$defs``."""
    if isinstance(value, dict):
        if "$defs" in value:
            defs.update(value["$defs"])
            value = {k: v for k, v in value.items() if k != "$defs"}
        return {k: _merge_defs(v, defs) for k, v in value.items()}
    if isinstance(value, list):
        return [_merge_defs(v, defs) for v in value]
    return value


def _web3_track_rules() -> list[dict[str, Any]]:
    rules = []
    for event, struct in inputs.WEB3_TRACKS.items():
        rules.append(
            {
                "if": {
                    "properties": {"type": {"const": "track"}, "event": {"const": event}},
                    "required": ["type", "event"],
                },
                "then": {
                    "properties": {"properties": msgspec.json.schema(struct)},
                    "required": ["properties"],
                },
            }
        )
    return rules


WEB_EVENT_RULES = {
    "allOf": [
        {"anyOf": [{"required": ["anonymousId"]}, {"required": ["userId"]}]},
        {
            "if": {"properties": {"type": {"const": "alias"}}, "required": ["type"]},
            "then": {"required": ["previousId", "userId"]},
        },
        {
            "if": {"properties": {"type": {"const": "track"}}, "required": ["type"]},
            "then": {"required": ["event"]},
        },
        *_web3_track_rules(),
    ]
}

SCHEMAS: tuple[SchemaSpec, ...] = (
    SchemaSpec("web-event", 1, inputs.WebEvent, topics.WEB_EVENTS, extra=WEB_EVENT_RULES),
    SchemaSpec("form-response", 1, inputs.FormResponse, topics.FORMS),
    SchemaSpec("social-verification", 1, inputs.SocialVerification, topics.SOCIALS),
    SchemaSpec("chain-event", 1, inputs.ChainEvent, topics.CHAIN_EVENTS),
    SchemaSpec("holding-snapshot", 1, inputs.HoldingSnapshot, topics.HOLDINGS),
    SchemaSpec("support-ticket", 1, inputs.SupportTicketEvent, topics.SUPPORT),
    SchemaSpec("price", 1, inputs.Price, topics.PRICES),
    SchemaSpec("wallet-labels", 1, inputs.WalletLabels, topics.LABELS),
    SchemaSpec("profile-change", 1, outputs.ProfileChange, topics.PROFILE_CHANGES),
    SchemaSpec("identity-merge", 1, outputs.IdentityMerge, topics.IDENTITY_MERGES),
    SchemaSpec("identity-conflict", 1, outputs.IdentityConflict, topics.IDENTITY_CONFLICTS),
    SchemaSpec("segment-change", 1, outputs.SegmentChange, topics.SEGMENT_CHANGES),
    SchemaSpec("alert", 1, outputs.Alert, topics.ALERTS),
    SchemaSpec("dead-letter", 1, outputs.DeadLetter, topics.DEAD_LETTERS),
)

BY_TOPIC: dict[str, SchemaSpec] = {s.topic.suffix: s for s in SCHEMAS}


def render(spec: SchemaSpec) -> str:
    """The file content of a schema (stable formatting)."""
    return json.dumps(spec.generate(), indent=2, sort_keys=False) + "\n"


def write_all(directory: Path = SCHEMA_DIR) -> list[Path]:
    """Regenerate every schema file; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for spec in SCHEMAS:
        path = directory / spec.filename
        path.write_text(render(spec))
        written.append(path)
    return written
