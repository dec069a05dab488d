"""``c360 replay EVENTS.jsonl``: run input events through the simulator, print the persons.

Each input line is ``{"topic": <input topic>, "key": ..., "value": <payload as on
that topic>}`` (the topic with or without the deployment prefix; ``"tick"`` with
``{"now": epoch ms}``, between 2000 and 2100, sends time). Output: one JSON line per
person on stdout (person id, identifiers, associations, profile), then a summary on
stderr. With ``--rules`` it is a dry run of a rule change on an export; without, the rules are a
worker's (``C360_RULES_FILE``), as are the record limits.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec

from stream import topics
from stream.core.ingest import MAX_EVENT_MS, MIN_EVENT_MS
from stream.core.rules import Rules
from stream.sim import Input, Simulator

INPUT_SUFFIXES = {t.suffix for t in topics.INPUTS}


class ReplayError(ValueError):
    """An input line that is not a replay record."""


def read_inputs(lines: Iterable[str], prefix: str = "c360.") -> Iterator[Input]:
    """Parse replay lines into simulator inputs (raises ReplayError with the line number)."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ReplayError(f"line {number}: not JSON: {exc}") from None
        if not isinstance(record, dict) or "topic" not in record:
            raise ReplayError(f"line {number}: expected an object with a 'topic'")
        topic = str(record["topic"])
        if topic.startswith(prefix) and topic[len(prefix) :] in INPUT_SUFFIXES:
            topic = topic[len(prefix) :]
        value = record.get("value")
        if topic == "tick":
            now = value.get("now") if isinstance(value, dict) else value
            if not isinstance(now, int) or isinstance(now, bool):
                raise ReplayError(f"line {number}: a tick needs an integer 'now' (epoch ms)")
            if not MIN_EVENT_MS <= now < MAX_EVENT_MS:  # as `c360 tick --now` refuses
                raise ReplayError(
                    f"line {number}: a tick's 'now' {now} is not epoch milliseconds between "
                    "2000 and 2100 (a partition's clock never moves back)"
                )
            yield Input("tick", now=now)
            continue
        if topic not in INPUT_SUFFIXES:
            known = ", ".join(sorted(INPUT_SUFFIXES))
            raise ReplayError(f"line {number}: unknown topic {topic!r}; inputs: {known}")
        raw = None if value is None else json.dumps(value).encode()
        key = record.get("key")
        yield Input(topic, raw, key=None if key is None else str(key))


def person_lines(sim: Simulator) -> Iterator[dict[str, Any]]:
    for person, row in sorted(sim.persons().items()):
        view = row.get("w") or {}
        profile = {k: v for k, v in view.items() if k not in ("identifiers", "associations")}
        yield {
            "person_id": person,
            "identifiers": view.get("identifiers", {}),
            "associations": view.get("associations", []),
            "profile": profile,
        }


def replay(
    inputs: list[Input],
    *,
    partitions: int = 4,
    seed: int = 0,
    rules: Rules | None = None,
    batch_max: int = 500,
    record_max: int = 1_000_000,
) -> Simulator:
    """Run ``inputs`` through a simulator whose ingest has a worker's record limits
    (``C360_BATCH_MAX_EVENTS``, ``C360_RECORD_MAX_BYTES``)."""
    sim = Simulator(
        partitions=partitions,
        seed=seed,
        rules=rules or Rules(),
        batch_max=batch_max,
        record_max=record_max,
    )
    sim.run(inputs)
    return sim


def main(
    path: str,
    partitions: int,
    seed: int,
    rules_file: str | None,
    out: IO[str],
    prefix: str = "c360.",
    *,
    batch_max: int = 500,
    record_max: int = 1_000_000,
) -> int:
    from stream.core.rules import RulesError, load

    try:
        rules = load(rules_file)
    except RulesError as exc:
        print(f"c360 replay: {exc}", file=sys.stderr)
        return 2
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        print(f"c360 replay: cannot read {path}: {exc}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"c360 replay: {path} is not UTF-8 text (byte {exc.start})", file=sys.stderr)
        return 2
    try:
        inputs = list(read_inputs(text.splitlines(), prefix))
    except ReplayError as exc:
        print(f"c360 replay: {path}: {exc}", file=sys.stderr)
        return 2
    sim = replay(
        inputs,
        partitions=partitions,
        seed=seed,
        rules=rules,
        batch_max=batch_max,
        record_max=record_max,
    )
    encoder = msgspec.json.Encoder()
    persons = 0
    for line in person_lines(sim):
        out.write(encoder.encode(line).decode() + "\n")
        persons += 1
    o = sim.outputs
    summary = {
        "events": sum(1 for i in inputs if i.topic != "tick"),
        "persons": persons,
        "merges": len(o.merges),
        "merges_retried": sim.link.stats["retried"],
        "conflicts": len(o.conflicts),
        "refused_by_rule": dict(sorted(sim.link.refusals.items())),
        "splits": sim.link.stats["splits"],
        "dead_letters": len(o.dead_letters),
    }
    print("summary: " + json.dumps(summary), file=sys.stderr)
    for topic, rejection in o.dead_letters[:20]:
        print(f"dead letter ({topic}): {rejection.reason}: {rejection.message}", file=sys.stderr)
    return 0
