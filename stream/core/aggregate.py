"""Profile aggregates: every field is mergeable (empty, update from one fact, combine).

``combine`` is associative and commutative, so merging two persons is combining
their aggregates, and the order in which facts and merges arrive does not change
the final profile. A retract (``op=-1``) is the inverse update of its upsert.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from stream.core.facts import Fact
from stream.core.identifiers import kind_of
from stream.core.state import Emit, State


@dataclass
class Context:
    """What a batch of the profile stage reads besides its own rows."""

    def now(self, state: State) -> int:
        """The partition's clock: the latest tick, else the latest event time seen."""
        return state.get("clock") or 0


class Aggregator:
    """The identity-graph profile: identifiers, associations and event counts."""

    def context(self, state: State) -> Context:
        return Context()

    def empty(self) -> dict[str, Any]:
        return {"n": 0, "k": {}, "as": {}}

    def apply(self, agg: dict[str, Any], fact: Fact) -> None:
        sign = fact.op
        agg["n"] += sign
        kinds = agg["k"]
        kinds[fact.kind] = kinds.get(fact.kind, 0) + sign
        if fact.assoc:
            assoc = agg["as"]
            for ident in fact.assoc:
                assoc[ident] = assoc.get(ident, 0) + sign

    def combine(self, a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
        out = {"n": a["n"] + b["n"], "k": dict(a["k"]), "as": dict(a["as"])}
        for key in ("k", "as"):
            target = out[key]
            for k, v in b[key].items():
                target[k] = target.get(k, 0) + v
        return out

    def view(self, person: str, row: dict[str, Any], ctx: Context) -> dict[str, Any]:
        agg = row["a"]
        members = row["m"]
        identifiers: dict[str, list[str]] = {}
        for ident in sorted(members):
            identifiers.setdefault(kind_of(ident), []).append(ident)
        return {
            "identifiers": identifiers,
            "associations": sorted(i for i, n in agg["as"].items() if n > 0 and i not in members),
            "events": agg["n"],
            "events_by_kind": {k: n for k, n in sorted(agg["k"].items()) if n},
        }

    def tick(self, state: State, now: int, ctx: Context) -> list[str]:
        clock = state.get("clock") or 0
        if now > clock:
            state.put("clock", now)
        return []

    def after_publish(self, state: State, person: str, row: dict, ctx: Context, emit: Emit) -> None:
        return None
