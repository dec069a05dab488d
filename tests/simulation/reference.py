"""An offline reference for the identity graph. It does not import the core.

Persons are the connected components of the accepted links. With guards, the
links are replayed in the order the link stage recorded them, and each is
decided the plain way: blocked identifiers never link; an identifier that would
have more distinct identifiers proposed by links (accepted or not) than its cap is
a hub: refused, blocked, and its
edges removed (so the components it held together fall apart); a link inside one
component is an edge; a union that would exceed a per-type limit is refused; a wallet
labelled with a blocking category is blocked the same way. When a block removes
edges, the limit refusals kept by the identifiers of its component are retried in the
order they were refused (each identifier keeps its last ``REFUSED_KEPT``).
"""

from __future__ import annotations

import re
from collections import defaultdict

REFUSED_KEPT = 16  # as the link stage's default (stated here, not imported)


def kind(identifier: str) -> str:
    return identifier.split(":", 1)[0]


class Reference:
    def __init__(
        self,
        limits: dict[str, int] | None = None,
        max_joins: dict[str, int] | None = None,
        blocked_exact: set[str] | None = None,
        blocked_patterns: list[str] | None = None,
        label_categories: set[str] | None = None,
        refused_kept: int = REFUSED_KEPT,
    ) -> None:
        self.limits = limits or {}
        self.max_joins = max_joins or {}
        self.blocked_exact = blocked_exact or set()
        self.patterns = [re.compile(p) for p in blocked_patterns or []]
        self.label_categories = label_categories or set()
        self.edges: dict[str, set[str]] = defaultdict(set)
        self.proposed: dict[str, set[str]] = defaultdict(set)
        self.ever_linked: set[str] = set()
        self.hubs: set[str] = set()
        self.labels: dict[str, dict[int, set[str]]] = defaultdict(dict)
        self.refused = 0
        self.kept: dict[str, dict[str, int]] = defaultdict(dict)  # limit refusals: other -> order
        self.order = 0
        self.refused_kept = refused_kept

    # --- graph --------------------------------------------------------------------
    def component(self, start: str) -> set[str]:
        seen = {start}
        stack = [start]
        while stack:
            for other in self.edges[stack.pop()]:
                if other not in seen:
                    seen.add(other)
                    stack.append(other)
        return seen

    def blocked(self, identifier: str) -> bool:
        if identifier in self.hubs or identifier in self.blocked_exact:
            return True
        if any(p.search(identifier) for p in self.patterns):
            return True
        return any(cats & self.label_categories for cats in self.labels[identifier].values())

    def block(self, identifier: str) -> None:
        """Remove the identifier's edges; retry the refusals its component kept."""
        members = self.component(identifier)
        edges = self.edges.pop(identifier, set())
        for other in edges:
            self.edges[other].discard(identifier)
        if not edges:
            return
        pending = {}
        for x in members:
            for y, order in self.kept[x].items():
                pending[(min(x, y), max(x, y))] = order
        for a, b in sorted(pending, key=pending.get):
            if b not in self.kept[a] and a not in self.kept[b]:
                continue
            if self.blocked(a) or self.blocked(b):
                self._forget(a, b)
            elif self._fits(a, b):
                self._edge(a, b)

    def _fits(self, a: str, b: str) -> bool:
        """Within one component or within the limits: the link is accepted."""
        ca = self.component(a)
        if b not in ca:
            cb = self.component(b)
            for t in {kind(i) for i in ca | cb}:
                total = sum(kind(i) == t for i in ca) + sum(kind(i) == t for i in cb)
                if t in self.limits and total > self.limits[t]:
                    return False
        return True

    def _forget(self, a: str, b: str) -> None:
        self.kept[a].pop(b, None)
        self.kept[b].pop(a, None)

    # --- the recorded log ---------------------------------------------------------------
    def link(self, a: str, b: str) -> None:
        if a == b:
            return
        blocked = self.blocked(a) or self.blocked(b)
        hubs = []
        for x, y in ((a, b), (b, a)):  # a proposal counts for a side not blocked, refused or not
            cap = self.max_joins.get(kind(x))
            if self.blocked(x) or y in self.proposed[x]:
                continue
            if cap is not None and len(self.proposed[x]) >= cap:
                hubs.append(x)
            else:
                self.proposed[x].add(y)
        if blocked or hubs:
            self.refused += 1
            for x in hubs:
                self.hubs.add(x)
                self.block(x)
            return
        if self._fits(a, b):
            self._edge(a, b)
            return
        self.refused += 1
        self.order += 1
        for x, y in ((a, b), (b, a)):
            kept = self.kept[x]
            kept.pop(y, None)
            kept[y] = self.order
            while len(kept) > self.refused_kept:
                del kept[min(kept, key=kept.get)]

    def _edge(self, a: str, b: str) -> None:
        self._forget(a, b)
        self.edges[a].add(b)
        self.edges[b].add(a)
        self.ever_linked |= {a, b}

    def label(self, wallet: str, chain: int, categories: list[str]) -> None:
        if categories:
            self.labels[wallet][chain] = set(categories)
        else:
            self.labels[wallet].pop(chain, None)
        if self.blocked(wallet):
            self.block(wallet)

    def persons(self, universe: set[str]) -> set[frozenset[str]]:
        """The final persons over ``universe`` (identifiers with events or ever linked)."""
        out = set()
        seen: set[str] = set()
        for identifier in sorted(universe | self.ever_linked):
            if identifier not in seen:
                comp = self.component(identifier)
                seen |= comp
                out.add(frozenset(comp))
        return out
