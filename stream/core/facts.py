"""Facts: the internal events every input becomes at ingest.

A fact is about one **primary identifier** (its routing key). It may carry
**links** (other identifiers it proves belong to the same person, each with the
kind of evidence that proves it) and **associations** (asserted identifiers that
are recorded on the profile and never merge). ``data`` holds what the profile
aggregates need, in compact form. A chain ``retract`` is a fact with ``op=-1``
and the same id as the upsert it undoes.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Strength = Literal["verified", "observed", "asserted"]

# Fact kinds, by what the profile does with them.
WEB_KINDS = frozenset({"page", "screen", "track", "identify", "alias", "group"})
WEB3_KINDS = frozenset({"wallet", "chain_switch", "siwe", "tx_intent"})
CHAIN_KINDS = frozenset({"tx", "transfer", "revenue", "log"})
OTHER_KINDS = frozenset({"holding", "form", "social", "ticket"})
KINDS = WEB_KINDS | WEB3_KINDS | CHAIN_KINDS | OTHER_KINDS


class Fact(msgspec.Struct, array_like=True, omit_defaults=True, tag="f", gc=False):
    """One internal event about one primary identifier.

    Plain data, never part of a reference cycle: so the cycle collector does not track
    facts (``gc=False``), and ``links`` and ``assoc`` are tuples (the empty tuple is
    shared, an empty list is one more tracked object per fact). A worker holds a
    group's tens of thousands of decoded messages while young collections run; with
    them tracked, collections took ~10 % of a draining worker's CPU (docs/design.md).
    """

    id: str
    ident: str
    kind: str
    ts: int  # event time, milliseconds since the epoch
    src: str  # source topic suffix
    op: int = 1  # +1 upsert, -1 retract
    # (identifier, evidence kind), e.g. ("wallet:0x…", "siwe")
    links: tuple[tuple[str, str], ...] = ()
    assoc: tuple[str, ...] = ()
    data: dict[str, Any] = {}

    def identifiers(self) -> list[str]:
        """The primary identifier followed by the linked ones."""
        return [self.ident, *(i for i, _ in self.links)]
