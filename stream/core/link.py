"""The link stage: the identity graph, its guards, merges and splits (one partition).

State (one writer, so the guards are exact):

- ``n:{ident}`` node: ``p`` person, ``e`` edges ``{other: [evidence, event ms, event id]}``,
  ``a`` the distinct identifiers links have proposed for it, accepted or not (kept for
  the types with a hub cap, at most the cap), ``b`` why it is blocked (absent: not),
  ``r`` the links a per-type limit refused ``{other: [evidence, event ms, event id,
  source, seq]}`` (the last ``REFUSED_KEPT``), retried when a split undoes the merge
  that made the limit bite, ``rb`` (a label-blocked wallet) the identifiers it was
  refused to, the last ``BLOCKED_KEPT``, forgotten by the route stage's cache when
  the label is removed;
- ``c:{person}`` component: ``m`` members, ``t`` members by identifier type;
- ``l:{wallet}`` labels ``{chain: [categories]}`` (the profile stage learns them from
  this stage only: a label change's ``Refresh`` and every member list carry them),
  and ``lt:{wallet}`` ``{chain: updated_at}`` of the dated records applied: an older
  record that comes after a newer one is not applied (``label_supersedes``), its
  ``Refresh`` carries the labels held;
- ``seq``: the last sequence number. Every recorded decision (merge, refusal,
  split) takes the next one; assignments carry it so that later beats earlier.

An identifier that is not yet a node is the singleton person ``f(ident)``.

A link ``a — b`` (evidence from one fact) is, in this order:

1. refused if either identifier is blocked: a rule's blocked value
   (``blocked_value``), a wallet labelled exchange/contract/bridge/router
   (``blocked_label``), or a detected hub (``hub``);
2. refused when links would have proposed more distinct identifiers for ``a`` or
   ``b`` than ``max_joins`` allows for its type: that identifier is a **hub** (a
   shared device, an exchange wallet in many users' sign-ins). It is blocked and
   every merge it caused is undone: its edges are removed and its person is split
   into the connected components that remain (``hub:{type}``). Counting distinct
   proposed neighbours (not unions, not accepted edges) makes the detection
   independent of arrival order: a link inside a person that other links already
   merged, or one a limit refused, still counts, and so does a link refused by
   guard 1, for its identifier that is not blocked (else whether a label came before
   or after the links decided whether a kiosk was a hub);
3. recorded as an edge when both are already in one person;
4. refused when the merged person would exceed a per-type limit (``limit:{type}``);
5. otherwise a union: the survivor is the smaller person id (so the final id of
   a person is the smallest ``f(i)`` of its founding identifiers, whatever the
   order), the other is absorbed.

A label that blocks a wallet already linked splits its person the same way
(``label:{category}``), so it does not matter whether the label arrives before or
after the links. A split keeps the person id for the component holding the
identifier the person was founded by (``f(i)`` = its id; a person a split created has
none, and keeps it for its largest component, ties: the one holding the smallest
identifier) and gives the others new ids that were never used.

After a split, the links a limit refused to any identifier of the split person are
retried, in the order they were refused: a hub that joined two persons for a while
made the limit refuse the second person's own user id, say, and that refusal must
not outlive the hub. A retry is decided like a link, without counting a proposal
again and without a second conflict event: blocked, the refusal is forgotten; inside
one person, an edge; over a limit still, kept; otherwise a union (rule
``merge:{strength}:retried``). Every retry that ends in one person tells the route
stage (``Assign.known``), which had cached the refusal.

The route stage's cache never hides a decision that would now differ: a block makes
it forget the pairs the split cut, a label's removal the pairs refused while it
blocked (``rb``), and a refusal let go (past ``REFUSED_KEPT`` or ``BLOCKED_KEPT``)
is forgotten too (``Assign.forget``; within a fact, after the fact's own Assign).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from stream import topics
from stream.contract.outputs import Evidence, IdentityConflict, IdentityMerge
from stream.core.facts import Fact
from stream.core.identifiers import kind_of
from stream.core.messages import (
    Absorb,
    Assign,
    Event,
    Label,
    Members,
    Refresh,
    Split,
    founder,
    person_of,
    split_person,
)
from stream.core.reference import date_label
from stream.core.rules import Compiled
from stream.core.state import Emit, State

REFUSED_KEPT = 16
"""Limit refusals an identifier keeps for retries after a split (the oldest go first)."""

BLOCKED_KEPT = 64
"""Partners a label-blocked wallet remembers refusing, for the route stage to forget
when the label is removed (the route stage caches refused pairs; the newest are kept)."""


class LinkStage:
    """See the module doc."""

    def __init__(self, rules: Compiled) -> None:
        self.rules = rules
        self.limits = rules.rules.limits
        self.max_joins = rules.rules.max_joins
        self.stats = {
            "links": 0,
            "merges": 0,
            "refused": 0,
            "splits": 0,
            "known": 0,
            "retried": 0,
            "labels_stale": 0,  # labels records older than the ones held: not applied
        }
        self.refusals: dict[str, int] = {}  # by rule (metrics)
        self.log: list[tuple] | None = None  # set to a list to record decisions (tests)
        self.refused_kept = REFUSED_KEPT  # tests lower these two to let pairs go sooner
        self.blocked_kept = BLOCKED_KEPT
        self._deferred: list[tuple[str, str]] | None = None  # pairs to forget after a fact

    def refusal_rules(self) -> list[str]:
        """Every rule a merge can be refused by under these rules (the keys of
        ``refusals``), so that their counters exist before the first refusal."""
        return [
            "blocked_value",
            "blocked_label",
            "hub",  # a link to an identifier blocked as a hub
            *(f"limit:{kind}" for kind in sorted(self.limits)),
            *(f"hub:{kind}" for kind in sorted(self.max_joins)),
        ]

    def process(self, state: State, messages: list[Any], emit: Emit) -> None:
        for message in messages:
            if type(message) is Fact:
                self.fact(state, message, emit)
            elif type(message) is Label:
                self.label(state, message, emit)

    # --- state helpers ---
    def _node(self, state: State, ident: str) -> dict:
        node = state.get("n:" + ident)
        if node is None:
            node = {"p": person_of(ident), "e": {}}
        return node

    def _component(self, state: State, person: str, ident: str | None = None) -> dict:
        comp = state.get("c:" + person)
        if comp is None:
            members = [ident] if ident is not None else []
            comp = {"m": members, "t": _types(members)}
        return comp

    @staticmethod
    def _members(state: State, person: str, seq: int, members: list[str]) -> Members:
        """The member list of ``person`` for the profile stage, with the labels of its
        labelled wallets (the profile reads labels only from its input: see Refresh)."""
        labels = {}
        for ident in members:
            if ident.startswith("wallet:"):
                entry = state.get("l:" + ident)
                if entry:
                    labels[ident] = entry
        return Members(person, seq, sorted(members), labels)

    def _next_seq(self, state: State) -> int:
        seq = (state.get("seq") or 0) + 1
        state.put("seq", seq)
        return seq

    def _blocked(self, state: State, ident: str, node: dict) -> str | None:
        if "b" in node:
            return node["b"]
        if self.rules.blocked(ident):
            return "blocked_value"
        if ident.startswith("wallet:"):
            labels = state.get("l:" + ident)
            if labels and self._label_block(labels):
                return "blocked_label"
        return None

    def _label_block(self, labels: dict) -> str | None:
        blocking = self.rules.label_categories
        for categories in labels.values():
            for category in categories:
                if category in blocking:
                    return category
        return None

    # --- facts (link evidence) ---
    def fact(self, state: State, fact: Fact, emit: Emit) -> None:
        a = fact.ident
        known: list[str] = []
        refused: list[str] = []
        self._deferred = deferred = []
        try:
            for b, evidence in fact.links:
                outcome = self.link(state, a, b, evidence, fact, emit)
                (known if outcome else refused).append(b)
        finally:
            self._deferred = None
        node = self._node(state, a)
        person = node["p"]
        seq = state.get("seq") or 0
        emit.internal(topics.ROUTE, a, Assign(a, person, seq, known, refused))
        for x, y in deferred:  # after the Assign above, which may list the pair as refused
            self._forget_pair(state, x, y, emit)
        emit.internal(topics.PROFILE, person, Event(person, seq, fact))

    def link(self, state: State, a: str, b: str, evidence: str, fact: Fact, emit: Emit) -> bool:
        """Apply one link; True when a and b end up in one person."""
        self.stats["links"] += 1
        if a == b:
            return True
        na, nb = self._node(state, a), self._node(state, b)
        sides = [(a, na, b, self._blocked(state, a, na)), (b, nb, a, self._blocked(state, b, nb))]
        # the proposal counts for a side that is not blocked, whether the link is then
        # refused or not (guard 2): a link to a blocked identifier counts too, else a
        # kiosk escaped its cap when a wallet it proposed was labelled before the link
        hubs = []
        for ident, node, other, why in sides:
            cap = self.max_joins.get(kind_of(ident))
            if why is not None or cap is None or other in node.get("a", ()):
                continue
            if len(node.get("a", ())) >= cap:
                hubs.append((ident, cap))
            else:
                node["a"] = [*node.get("a", ()), other]
                state.put("n:" + ident, node)
        blocked = next(((i, n, o, w) for i, n, o, w in sides if w is not None), None)
        if blocked is not None:
            ident, node, other, why = blocked
            self._refuse(
                state, a, b, na, nb, why, f"{ident} is blocked ({why})", evidence, fact, emit
            )
            if why == "blocked_label":
                self._remember_blocked(state, ident, node, other, emit)
        elif hubs:
            ident, cap = hubs[0]
            kind = kind_of(ident)
            detail = (
                f"{ident} would be linked to more than {cap} identifiers: a hub (shared {kind})"
            )
            self._refuse(state, a, b, na, nb, f"hub:{kind}", detail, evidence, fact, emit)
        for ident, _cap in hubs:  # both, when both went over their caps
            self.block(state, ident, "hub", f"hub:{kind_of(ident)}", emit)
        if blocked is not None or hubs:
            return False
        return self._join(state, a, b, na, nb, evidence, fact, emit, retry=False)

    def _join(self, state, a, b, na, nb, evidence, fact, emit, retry: bool) -> bool:
        """Guards 3-5 (one person, limits, union) for a link or a retried refusal."""
        pa, pb = na["p"], nb["p"]
        if pa == pb:
            if ("r" in na or "r" in nb) and (_forget_refusal(na, b) | _forget_refusal(nb, a)):
                state.put("n:" + a, na)
                state.put("n:" + b, nb)
            self._add_edge(state, a, b, na, nb, evidence, fact)
            self.stats["known"] += 1
            if self.log is not None:
                self.log.append(("edge", a, b))
            return True
        ca, cb = self._component(state, pa, a), self._component(state, pb, b)
        for kind in set(ca["t"]) | set(cb["t"]):
            limit = self.limits.get(kind)
            total = ca["t"].get(kind, 0) + cb["t"].get(kind, 0)
            if limit is not None and total > limit:
                if retry:
                    return False  # still refused: kept, reported when it was refused
                detail = (
                    f"a person may hold at most {limit} {kind} identifiers; "
                    f"the merge would give {total}"
                )
                seq = self._refuse(
                    state, a, b, na, nb, f"limit:{kind}", detail, evidence, fact, emit
                )
                entry = [evidence, fact.ts, fact.id, fact.src, seq]
                for ident, node, other in ((a, na, b), (b, nb, a)):
                    evicted = _keep_refusal(node, other, entry, self.refused_kept)
                    state.put("n:" + ident, node)
                    if evicted is not None:  # not retried any more: let the cache go too
                        self._let_go(state, ident, evicted, emit)
                return False
        if "r" in na or "r" in nb:
            _forget_refusal(na, b)  # _union writes both nodes
            _forget_refusal(nb, a)
        self._union(state, a, b, na, nb, ca, cb, evidence, fact, emit, retry)
        return True

    def _add_edge(self, state, a, b, na, nb, evidence, fact) -> None:
        if b not in na["e"]:
            edge = [evidence, fact.ts, fact.id]
            na["e"][b] = edge
            nb["e"][a] = edge
            state.put("n:" + a, na)
            state.put("n:" + b, nb)

    def _union(self, state, a, b, na, nb, ca, cb, evidence, fact, emit, retry=False) -> None:
        pa, pb = na["p"], nb["p"]
        survivor, absorbed = (pa, pb) if pa < pb else (pb, pa)
        keep, gone = (ca, cb) if survivor == pa else (cb, ca)
        seq = self._next_seq(state)
        edge = [evidence, fact.ts, fact.id]
        na["e"][b] = edge
        nb["e"][a] = edge
        state.put("n:" + a, na)
        state.put("n:" + b, nb)
        for ident in gone["m"]:
            node = na if ident == a else nb if ident == b else self._node(state, ident)
            node["p"] = survivor
            state.put("n:" + ident, node)
            emit.internal(topics.ROUTE, ident, Assign(ident, survivor, seq))
        keep["m"] = keep["m"] + gone["m"]
        for kind, n in gone["t"].items():
            keep["t"][kind] = keep["t"].get(kind, 0) + n
        state.put("c:" + survivor, keep)
        state.delete("c:" + absorbed)
        self.stats["merges"] += 1
        if self.log is not None:
            self.log.append(("merge", a, b, absorbed, survivor, seq))
        emit.internal(topics.PROFILE, absorbed, Absorb(absorbed, survivor, seq))
        emit.internal(topics.PROFILE, survivor, self._members(state, survivor, seq, keep["m"]))
        strength = self.rules.strengths[evidence]
        rule = f"merge:{strength}:retried" if retry else f"merge:{strength}"
        emit.record(
            topics.IDENTITY_MERGES,
            absorbed,
            IdentityMerge(absorbed, survivor, _evidence(evidence, strength, a, b, fact), rule, seq),
        )

    def _refuse(self, state, a, b, na, nb, rule, detail, evidence, fact, emit) -> int:
        seq = self._next_seq(state)
        self.stats["refused"] += 1
        self.refusals[rule] = self.refusals.get(rule, 0) + 1
        if self.log is not None:
            self.log.append(("refuse", a, b, rule, seq))
        emit.record(
            topics.IDENTITY_CONFLICTS,
            a,
            IdentityConflict(
                kind="refused",
                rule=rule,
                detail=detail,
                identifiers=[a, b],
                persons=[na["p"], nb["p"]],
                seq=seq,
                evidence=_evidence(evidence, self.rules.strengths[evidence], a, b, fact),
            ),
        )
        return seq

    # --- blocking and splits ---
    def label(self, state: State, label: Label, emit: Emit) -> None:
        key = "l:" + label.wallet
        chain = str(label.chain)
        # when each chain's labels were updated (``updated_at``), for records that come late
        dated = dict(state.get("lt:" + label.wallet) or {})
        if not date_label(dated, label):
            # not applied; the labels held go on instead: the compacted topic keeps the
            # older record as the wallet's last, the one `c360 resend` produces again
            self.stats["labels_stale"] += 1
            self._refresh(state, label.wallet, state.get(key) or {}, emit)
            return
        if dated:
            state.put("lt:" + label.wallet, dated)
        elif state.get("lt:" + label.wallet) is not None:
            state.delete("lt:" + label.wallet)
        labels = dict(state.get(key) or {})  # a new dict: messages sent before hold the old
        if label.categories:
            labels[chain] = sorted(set(label.categories))
        else:
            labels.pop(chain, None)
        if labels:
            state.put(key, labels)
        else:
            state.delete(key)
        if self.log is not None:
            self.log.append(("label", label.wallet, label.chain, tuple(label.categories)))
        category = self._label_block(labels) if labels else None
        node = self._refresh(state, label.wallet, labels, emit)
        if category is not None:
            if node is not None and node.get("b") != "hub":
                self.block(state, label.wallet, "blocked_label", f"label:{category}", emit)
        elif node is not None and (node.get("b") == "blocked_label" or "rb" in node):
            if node.get("b") == "blocked_label":
                del node["b"]  # unblocked: future links may merge it again,
            partners = node.pop("rb", [])  # and the pairs refused meanwhile are decided again
            state.put("n:" + label.wallet, node)
            for other in partners:
                self._forget_pair(state, label.wallet, other, emit)

    @staticmethod
    def _refresh(state: State, wallet: str, labels: dict, emit: Emit) -> dict | None:
        """Tell the wallet's person (the profile stage) its labels; its node, if any."""
        node = state.get("n:" + wallet)
        person = node["p"] if node is not None else person_of(wallet)
        seq = state.get("seq") or 0
        emit.internal(topics.PROFILE, person, Refresh(person, seq, wallet, labels))
        return node

    def block(self, state: State, ident: str, why: str, rule: str, emit: Emit) -> None:
        """Block an identifier and undo every merge its links caused."""
        node = self._node(state, ident)
        already = node.get("b")
        node["b"] = why
        edges = node["e"]
        node["e"] = {}
        state.put("n:" + ident, node)
        if self.log is not None:
            self.log.append(("block", ident, why))
        if already is not None or not edges:
            return
        for other in edges:
            neighbour = self._node(state, other)
            neighbour["e"].pop(ident, None)
            state.put("n:" + other, neighbour)
        members = self._split(state, node["p"], ident, rule, emit)
        for other in edges:  # the route stage cached these pairs as linked
            self._forget_pair(state, ident, other, emit)
        self._retry(state, members, emit)

    def _forget_pair(self, state: State, a: str, b: str, emit: Emit) -> None:
        """Tell the route stage to forget the pair ``a — b`` (both ways), with each
        identifier's person as of now: its next link is decided again."""
        seq = state.get("seq") or 0
        for x, y in ((a, b), (b, a)):
            emit.internal(topics.ROUTE, x, Assign(x, self._node(state, x)["p"], seq, forget=[y]))

    def _let_go(self, state: State, a: str, b: str, emit: Emit) -> None:
        """A pair the link stage no longer remembers refusing: the route stage must not
        keep it cached as refused (within a fact, once the fact's own Assign is out)."""
        if self._deferred is not None:
            self._deferred.append((a, b))
        else:
            self._forget_pair(state, a, b, emit)

    def _remember_blocked(
        self, state: State, wallet: str, node: dict, other: str, emit: Emit
    ) -> None:
        """A label-blocked wallet remembers whom it was refused to: the route stage caches
        the pair, and must forget it when the label is removed. Past ``BLOCKED_KEPT``,
        the oldest partner is let go at once (its next link is refused again)."""
        kept = node.get("rb", [])
        if other in kept:
            return
        node["rb"] = [*kept, other]
        state.put("n:" + wallet, node)
        if len(node["rb"]) > self.blocked_kept:
            self._let_go(state, wallet, node["rb"].pop(0), emit)

    def _retry(self, state: State, members: list[str], emit: Emit) -> None:
        """Retry, in the order they were refused, the limit refusals kept by ``members``
        (see the module doc)."""
        pending: dict[tuple[str, str], list] = {}
        for ident in members:
            for other, entry in self._node(state, ident).get("r", {}).items():
                pending[(ident, other) if ident < other else (other, ident)] = entry
        for (a, b), (evidence, ts, event_id, src, _seq) in sorted(
            pending.items(), key=lambda item: item[1][4]
        ):
            na, nb = self._node(state, a), self._node(state, b)
            if b not in na.get("r", {}) and a not in nb.get("r", {}):
                continue  # forgotten meanwhile: an earlier retry joined the two
            why = [(x, n, y, self._blocked(state, x, n)) for x, n, y in ((a, na, b), (b, nb, a))]
            if why[0][3] or why[1][3]:
                _forget_refusal(na, b)
                _forget_refusal(nb, a)
                state.put("n:" + a, na)
                state.put("n:" + b, nb)
                for x, n, y, reason in why:
                    if reason == "blocked_label":  # decided again once unlabelled
                        self._remember_blocked(state, x, n, y, emit)
                continue
            fact = Fact(event_id, a, "link", ts, src, links=((b, evidence),))
            if self.log is not None:
                self.log.append(("retry", a, b))
            apart = na["p"] != nb["p"]
            if self._join(state, a, b, na, nb, evidence, fact, emit, retry=True):
                self.stats["retried"] += apart  # merges (an edge inside one person is not)
                seq = state.get("seq") or 0
                person = na["p"]
                emit.internal(topics.ROUTE, a, Assign(a, person, seq, [b]))
                emit.internal(topics.ROUTE, b, Assign(b, person, seq, [a]))

    def _split(self, state: State, person: str, cause: str, rule: str, emit: Emit) -> list[str]:
        """Split ``person`` into its connected components; returns its members before."""
        comp = self._component(state, person, cause)
        members = comp["m"]
        nodes = {m: self._node(state, m) for m in members}
        parts = _components(members, nodes)
        if len(parts) == 1:
            return members
        seq = self._next_seq(state)
        # the part holding the identifier the person was founded by keeps its id (a
        # stored person id then still names that human), else the largest
        parts.sort(key=lambda p: (founder(person, p) is None, -len(p), min(p)))
        keep, *others = parts
        comp = {"m": sorted(keep), "t": _types(keep)}
        state.put("c:" + person, comp)
        moves: dict[str, str] = {}
        created = []
        for part in others:
            new = split_person(min(part), seq)
            created.append(new)
            state.put("c:" + new, {"m": sorted(part), "t": _types(part)})
            for ident in part:
                moves[ident] = new
                nodes[ident]["p"] = new
                state.put("n:" + ident, nodes[ident])
                emit.internal(topics.ROUTE, ident, Assign(ident, new, seq))
            emit.internal(topics.PROFILE, new, self._members(state, new, seq, part))
        self.stats["splits"] += 1
        if self.log is not None:
            self.log.append(("split", person, tuple(sorted(moves.items())), seq))
        emit.internal(topics.PROFILE, person, Split(person, seq, moves))
        emit.internal(topics.PROFILE, person, self._members(state, person, seq, keep))
        emit.record(
            topics.IDENTITY_CONFLICTS,
            cause,
            IdentityConflict(
                kind="split",
                rule=rule,
                detail=f"{cause} was blocked ({rule}); the merges it caused were undone",
                identifiers=[cause],
                persons=[person],
                seq=seq,
                created=created,
            ),
        )
        return members


def _keep_refusal(node: dict, other: str, entry: list, most: int) -> str | None:
    """Keep a limit refusal on ``node`` (at most ``most``); returns the partner it let
    go, if any."""
    kept = node.setdefault("r", {})
    kept.pop(other, None)
    kept[other] = entry
    if len(kept) <= most:
        return None
    oldest = min(kept, key=lambda i: kept[i][4])
    del kept[oldest]
    return oldest


def _forget_refusal(node: dict, other: str) -> bool:
    """Forget a kept limit refusal; True when there was one."""
    kept = node.get("r")
    if kept is None or kept.pop(other, None) is None:
        return False
    if not kept:
        del node["r"]
    return True


def _types(members) -> dict[str, int]:
    out: dict[str, int] = {}
    for m in members:
        kind = kind_of(m)
        out[kind] = out.get(kind, 0) + 1
    return out


def _components(members: list[str], nodes: dict[str, dict]) -> list[list[str]]:
    """Connected components of ``members`` over the nodes' edges."""
    seen: set[str] = set()
    parts = []
    for start in sorted(members):
        if start in seen:
            continue
        part = []
        queue = deque([start])
        seen.add(start)
        while queue:
            ident = queue.popleft()
            part.append(ident)
            for other in nodes[ident]["e"]:
                if other in nodes and other not in seen:
                    seen.add(other)
                    queue.append(other)
        parts.append(part)
    return parts


def _evidence(kind: str, strength: str, a: str, b: str, fact: Fact) -> Evidence:
    return Evidence(
        kind=kind,
        strength=strength,  # type: ignore[arg-type]
        identifiers=[a, b],
        event_id=fact.id,
        source=fact.src,
        at=fact.ts,
    )
