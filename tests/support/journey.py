"""Producing a replay-format JSONL file (like tests/fixtures/journey) to the real broker."""

from __future__ import annotations

import json
from pathlib import Path

from stream import topics
from stream.settings import Settings
from stream.ticks import send_tick
from tests.support.kafka import produce

JOURNEY = Path(__file__).parents[1] / "fixtures" / "journey"


async def produce_jsonl(settings: Settings, path: Path) -> int:
    """Produce every line to its topic, one record each, in file order (a ``tick`` line
    sends time to the pipeline); returns the count."""
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    for line in lines:
        if line["topic"] == "tick":
            await send_tick(settings, line["value"]["now"])
            continue
        spec = topics.by_suffix(line["topic"])
        key = str(line.get("key", "")).encode() or None
        await produce(
            settings.kafka_bootstrap,
            spec.name(settings),
            [(key, json.dumps(line["value"]).encode())],
        )
    return len(lines)
