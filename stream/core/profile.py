"""The profile stage: one row per person, fragments per identifier, merges and splits.

Keyed by person. State:

- ``p:{person}`` person row: ``v`` version (grows by one per change event),
  ``m`` members ``{ident: seq}`` (from the link stage's member lists and from
  events), ``ms`` the seq of the last member list, ``mi`` merged into (absorbed
  persons keep a tombstone, with ``fi`` the identifier the person was founded by,
  when known: the lookup API resolves an absorbed person id through it, since a
  split may have moved it away from ``mi``), ``vt`` the best VIP tier a merged or
  split-off part showed, until the next publish (its alert is for a higher tier
  only), ``va`` the VIP alerts sent ``{tier: at}`` (the latest of each tier no later
  alert of a higher tier covers: one, but after a merge or a split; see
  ``ProfileStage._alerted``), ``ab`` persons it absorbed (a repeated absorb is a
  no-op), ``mv`` identifiers split away ``{ident: [person, seq]}``, ``a`` the
  profile aggregate, ``w`` the last published view (to diff against), ``at`` the
  time of its last change published before the partition's first tick (a later
  change with no time of its own is dated by it), ``c`` present while the person is
  **compact** (below);
- ``pl:{token}`` the prices and ``lb:{wallet}`` the wallet labels the partition
  values and labels with, as its input brought them (``Price`` to every partition;
  ``Refresh`` and ``Members`` from the link stage), never read from the global
  tables: a batch redone after a crash computes what it computed the first time;
- ``f:{person}:{ident}`` the aggregate of one identifier's facts (a fragment). The
  person's aggregate is the combine of its fragments: merges move fragments,
  splits move them back out, so a person can be split exactly.

Compact persons: most persons start with facts of one identifier only (every
identifier is its own person until the link stage merges it). While that holds, the
row's aggregate *is* that identifier's fragment, so no ``f:`` key is kept: ``c`` is
the identifier (None before the first fact). The first fact of another identifier,
incoming fragments (a merge, a split) or a split of the person **materialize** the
fragment (``f:{person}:{c}`` = a copy of the aggregate) and drop ``c``; an absorbed
compact person sends its aggregate as that identifier's fragment.

Routing of a message about identifier ``i`` reaching person ``P`` with the
sender's assignment seq ``h``: if ``i`` was split away from ``P`` at a seq above
``h``, it goes to where it went; else if ``P`` was absorbed, to its survivor;
else it applies at ``P``. Everything that reaches a person is combined with an
associative, commutative ``combine``, so arrival order does not change the
result.

At the end of each input batch every touched person gets at most one
``profile.changes`` event (the fields that changed, old and new).

``s:counts`` holds the partition's totals for metrics: live persons (``n``), by
lifecycle stage (``lc``) and by VIP tier (``vip``). They move by the changes each
batch publishes (never by a scan), in the same transaction as the rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import msgspec

from stream import topics
from stream.contract.outputs import Alert, Cause, FieldChange, ProfileChange, SegmentChange
from stream.core.aggregate import ALL_GROUPS, ALWAYS, LABELS, Aggregator, Context
from stream.core.messages import (
    Absorb,
    ChannelDelta,
    Event,
    Members,
    MergeIn,
    Price,
    Refresh,
    Split,
    SplitIn,
    Tick,
    founder,
)
from stream.core.state import Emit, State, prefix_end

MAX_CAUSE_IDS = 10
TICK_MAX = 200
"""Timers one tick message fires at most (see ProfileStage.tick)."""
FLOOR_WAIT_MS = 5 * 60_000
"""How long (the partition's clock) a merged or split-off part's tier is kept as a
person's alert floor while the person shows a lower tier and holds unpriced tokens
(see ProfileStage._keep_floor)."""
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode
COUNTS = "s:counts"
HOUR = 3_600_000


class _Touched:
    """What one batch did to one person (for its change event), and which groups of
    its published fields may have changed."""

    __slots__ = ("event_ids", "events", "groups", "kind", "newest", "persons")

    def __init__(self) -> None:
        self.kind = "events"
        self.events = 0
        self.newest = 0  # the newest event time the batch applied to the person
        self.event_ids: list[str] = []
        self.persons: list[str] = []
        self.groups: set[str] = set()


class ProfileStage:
    """See the module doc."""

    def __init__(self, aggregator: Aggregator, *, check_views: bool = False) -> None:
        self.agg = aggregator
        # tests: check that recomputing only the touched groups gives the whole view
        self.check_views = check_views
        self.stats = {
            "applied": 0, "forwarded": 0, "merges": 0, "splits": 0, "changes": 0,
            "tick_parts": 0,  # ticks sent on to their partition with a cursor
            "revalued": 0,  # persons a tick revalued (a price moved, or came)
            "vip_alerts_suppressed": 0,  # VIP alerts not sent: within the cooldown
        }  # fmt: skip
        self.cooldown = round(aggregator.rules.vip_alert_cooldown_hours * HOUR)
        # for metrics: the event time (ms) of the oldest event applied since the shell
        # last read it (None: none since)
        self.oldest_event: int | None = None
        self._counts: dict[str, Any] | None = None

    # --- entry ---
    def process(self, state: State, messages: list[Any], emit: Emit) -> None:
        for _ in self.steps(state, messages, emit):
            pass

    def steps(self, state: State, messages: list[Any], emit: Emit) -> Iterator[None]:
        """``process``, a step at a time: it yields after every message and every person
        it touched (published or not), so that a caller can serve others between two
        steps (one record can hold tens of milliseconds of work). What it computes is
        the same however the caller spaces the steps, as long as one caller drives one
        generator of a stage at a time (the stage keeps per-call state: ``_counts``,
        its aggregator's horizon; a worker runs each stage with concurrency 1)."""
        touched: dict[str, _Touched] = {}
        ctx = self.agg.context(state)
        for message in messages:
            kind = type(message)
            if kind is Event:
                self.event(state, message, touched, emit)
            elif kind is Absorb:
                self.absorb(state, message, touched, emit)
            elif kind is MergeIn:
                self.merge_in(state, message, touched, emit)
            elif kind is Split:
                self.split(state, message, touched, emit)
            elif kind is SplitIn:
                self.split_in(state, message, touched, emit)
            elif kind is Members:
                self.members(state, message, touched, emit)
            elif kind is Refresh:
                self.refresh(state, message, touched, emit)
            elif kind is Price:
                self.price(state, message, touched, ctx)
            elif kind is Tick:
                self.tick(state, message, touched, ctx, emit)
            yield
        self._counts = None
        for person, t in touched.items():
            self.publish(state, person, t, ctx, emit)
            yield
        if self._counts is not None:
            state.put(COUNTS, self._counts)
            self._counts = None

    # --- helpers ---
    def _row(self, state: State, person: str) -> dict:
        row = state.get("p:" + person)
        return _new_row(self.agg.empty(), c=None) if row is None else row

    @staticmethod
    def _materialize(state: State, person: str, row: dict) -> None:
        """End a compact person: its identifier's fragment becomes a key of its own."""
        if "c" not in row:
            return
        ident = row.pop("c")
        if ident is not None:
            state.put(f"f:{person}:{ident}", _copy(row["a"]))

    @staticmethod
    def _fragments(state: State, person: str) -> list[tuple[str, Any]]:
        """(identifier, fragment) of every fragment the person holds. Not by its members:
        a fragment can be held for an identifier its member list dropped meanwhile (one
        split away that came back through the person it went to, absorbed since, before
        the link stage's member list says so), and its facts still count here."""
        prefix = f"f:{person}:"
        return [
            (key[len(prefix) :], value) for key, value in state.scan(prefix, prefix_end(prefix))
        ]

    @staticmethod
    def _touch(
        touched: dict[str, _Touched],
        person: str,
        kind: str | None = None,
        groups: Iterable[str] = ALL_GROUPS,
    ) -> _Touched:
        t = touched.get(person)
        if t is None:
            t = touched[person] = _Touched()
        if kind is not None and t.kind == "events":
            t.kind = kind
        t.groups.update(groups)
        return t

    def _route(self, row: dict, ident: str, seq: int) -> str | None:
        """Where a message about ``ident`` must go instead of here (None: apply here)."""
        moved = row["mv"].get(ident)
        if moved is not None and moved[1] > seq:
            return moved[0]
        return row.get("mi")

    # --- events ---
    def event(self, state: State, e: Event, touched: dict, emit: Emit) -> None:
        row = self._row(state, e.person)
        fact = e.fact
        elsewhere = self._route(row, fact.ident, e.seq)
        if elsewhere is not None:
            self.stats["forwarded"] += 1
            moved = row["mv"].get(fact.ident)
            seq = max(e.seq, moved[1]) if moved is not None and moved[0] == elsewhere else e.seq
            emit.internal(topics.PROFILE, elsewhere, Event(elsewhere, seq, fact))
            return
        if "c" in row and row["c"] in (None, fact.ident):
            row["c"] = fact.ident  # compact: the aggregate is this identifier's fragment
        else:
            self._materialize(state, e.person, row)
            key = f"f:{e.person}:{fact.ident}"
            fragment = state.get(key) or self.agg.empty()
            self.agg.apply(fragment, fact)
            state.put(key, fragment)
        self.agg.apply(row["a"], fact)
        self.agg.observe(state, fact)
        groups = self.agg.groups_of(fact)
        if fact.ident not in row["m"]:
            row["m"][fact.ident] = e.seq
            groups = groups | {"ids"}
        state.put("p:" + e.person, row)
        self.stats["applied"] += 1
        if self.oldest_event is None or fact.ts < self.oldest_event:
            self.oldest_event = fact.ts
        t = self._touch(touched, e.person, None, groups)
        t.events += 1
        t.newest = max(t.newest, fact.ts)
        if len(t.event_ids) < MAX_CAUSE_IDS:
            t.event_ids.append(fact.id)

    # --- merges ---
    def absorb(self, state: State, a: Absorb, touched: dict, emit: Emit) -> None:
        row = state.get("p:" + a.absorbed)
        if row is None:
            # never reached by a fact (the new wallet of a sign-in): nothing to send on;
            # the tombstone forwards whatever reaches it later
            state.put("p:" + a.absorbed, _new_row(None, mi=a.survivor, ms=a.seq))
            self.stats["merges"] += 1
            return
        if row.get("mi") is not None:
            return  # already absorbed: a repeated absorb is a no-op
        fragments = {}
        if "c" in row:
            ident = row.pop("c")
            if ident is not None:
                fragments[ident] = row["a"]  # replaced by an empty aggregate below
        else:
            for ident, fragment in self._fragments(state, a.absorbed):
                fragments[ident] = fragment
                state.delete(f"f:{a.absorbed}:{ident}")
        emit.internal(
            topics.PROFILE,
            a.survivor,
            MergeIn(
                a.absorbed,
                a.survivor,
                a.seq,
                fragments,
                [a.absorbed, *row["ab"]],
                self._shown_tier(row),
                row.pop("va", None),  # its alerts go with its facts (the tombstone: none)
            ),
        )
        founding = founder(a.absorbed, row["m"])
        if founding is not None:  # the lookup API follows it, not mi (a split may move it)
            row["fi"] = founding
        row["mi"] = a.survivor
        row["ms"] = max(row["ms"], a.seq)  # its last claim on its identifiers: identity_seq
        row["a"] = self.agg.empty()
        row["m"] = {}
        state.put("p:" + a.absorbed, row)
        self.stats["merges"] += 1
        if row["v"] > 0:
            t = self._touch(touched, a.absorbed, "merge")
            t.persons.append(a.survivor)

    def _shown_tier(self, row: dict) -> str | None:
        """The best VIP tier the person's profile showed, or that a merge or split
        brought it and it has not published since (``vt``)."""
        tiers = (row["w"].get("vip_tier"), row.get("vt"))
        return min(tiers, key=self.agg.tier_rank)

    def _floor(self, row: dict, tier: str | None) -> None:
        """Remember (``vt``) the best tier a merged or split-off part showed, until the
        person's next publish: its VIP alert is for a tier above that one only. The
        survivor of a merge is often a person with no facts yet (its id was smaller),
        and reaching the absorbed VIP's tier again is no news for the VIP desk."""
        best = min((tier, row.get("vt")), key=self.agg.tier_rank)
        if best is not None:
            row["vt"] = best
            row.pop("vs", None)  # a new floor waits afresh (_keep_floor)

    def _keep_floor(
        self, row: dict, view: dict, floor: str | None, since: int | None, clock: int
    ) -> bool:
        """Keep ``floor`` past this publish (True) while the person shows a lower tier and
        holds tokens it cannot value yet: a price reaches every profile partition one
        after another, and a VIP absorbed where it had not arrived showed no tier at the
        survivor's first publish, then was announced again when it came. Kept for up to
        ``FLOOR_WAIT_MS`` of the partition's clock from that publish (``vs``): a token that
        is never priced must not silence the person's alerts for good."""
        if floor is None or row.get("mi") is not None or not view.get("unpriced_tokens"):
            return False
        if self.agg.tier_rank(view.get("vip_tier")) <= self.agg.tier_rank(floor):
            return False  # reached: nothing to wait for
        row["vt"], row["vs"] = floor, since or clock  # 0: no tick yet, the wait starts at one
        return True

    def _alerted(self, *records: dict[str, int] | None) -> dict[str, int]:
        """Combine records of VIP alerts sent (``va``, ``{tier: at}``): the latest alert of
        each tier, but for one that an alert of a higher tier, as late or later, covers
        (it silences everything that one does), and for a tier the rules no longer have
        (it silences nothing). Associative, commutative and idempotent, like the
        aggregates: the order merges and splits arrive in does not matter. One person's
        record holds one alert (its last: an alert is sent only above every tier alerted
        within the cooldown, or when none is); a merge or a split can bring more."""
        rank = self.agg.tier_rank
        none = rank(None)
        latest: dict[str, int] = {}
        for record in records:
            for tier, at in (record or {}).items():
                if rank(tier) < none and (tier not in latest or at > latest[tier]):
                    latest[tier] = at
        return {
            tier: at
            for tier, at in sorted(latest.items(), key=lambda item: rank(item[0]))
            if not any(rank(t) < rank(tier) and a >= at for t, a in latest.items())
        }

    def _heard(self, row: dict, alerted: dict[str, int] | None) -> None:
        """Add to the person's record the alerts a merged or split-off part was sent: the
        VIP desk was paged for this human (under another person id), and a survivor
        showing no tier yet, or a lower one (the floor, ``vt``, is the tier the part
        showed, not the tier it was paged for), must not page it again within the
        cooldown. Kept, unlike the floor, until a later alert lets it go."""
        if alerted:
            row["va"] = self._alerted(row.get("va"), alerted)

    def _cooling(self, row: dict, tier: str, at: int) -> bool:
        """Was the person alerted for ``tier`` or a higher one less than the cooldown
        before ``at``? (A row from before the cooldown has no record: never alerted.)"""
        if not self.cooldown:
            return False
        rank = self.agg.tier_rank(tier)
        return any(
            self.agg.tier_rank(t) <= rank and at - a < self.cooldown
            for t, a in row.get("va", {}).items()
        )

    def _alert_sent(self, row: dict, tier: str, at: int) -> None:
        """Record an alert (``va``): it covers the lower tiers' alerts before it, and the
        alerts that have cooled down by then silence nothing more."""
        record = self._alerted(row.get("va"), {tier: at})
        row["va"] = {t: a for t, a in record.items() if t == tier or at - a < self.cooldown}

    def merge_in(self, state: State, m: MergeIn, touched: dict, emit: Emit) -> None:
        row = self._row(state, m.target)
        merged_into = row.get("mi")
        if merged_into is None and m.source in row["ab"]:
            return  # this absorb was already combined: exactly once
        rest = self._receive(state, m.target, row, m.fragments, m.seq, emit, m.tier, m.alerted)
        if merged_into is not None:
            # absorbed meanwhile: what was not split away since goes on to the survivor
            onward = MergeIn(m.source, merged_into, m.seq, rest, m.absorbed, m.tier, m.alerted)
            emit.internal(topics.PROFILE, merged_into, onward)
            return
        self._floor(row, m.tier)
        self._heard(row, m.alerted)
        row["ab"] = sorted(set(row["ab"]) | set(m.absorbed))
        state.put("p:" + m.target, row)
        # an absorbed person with no facts (the usual new wallet of a sign-in) changes
        # nothing the view shows: the member list comes with Members
        t = self._touch(touched, m.target, "merge", ALL_GROUPS if m.fragments else ())
        t.persons.append(m.source)

    def _receive(
        self,
        state: State,
        person: str,
        row: dict,
        fragments: dict,
        seq: int,
        emit: Emit,
        tier: str | None = None,
        alerted: dict[str, int] | None = None,
    ) -> dict[str, Any]:
        """Route incoming fragments one by one: to where an identifier was split away
        since ``seq``, else here (combined) — or, if this person was absorbed, they are
        returned for its survivor."""
        onward: dict[str, dict[str, Any]] = {}
        rest: dict[str, Any] = {}
        merged_into = row.get("mi")
        if merged_into is None:
            self._materialize(state, person, row)
        for ident, fragment in fragments.items():
            moved = row["mv"].get(ident)
            if moved is not None and moved[1] > seq:
                onward.setdefault(moved[0], {})[ident] = fragment
            elif merged_into is not None:
                rest[ident] = fragment
            else:
                key = f"f:{person}:{ident}"
                current = state.get(key)
                state.put(key, fragment if current is None else self.agg.combine(current, fragment))
                row["a"] = self.agg.combine(row["a"], fragment)
                if ident not in row["m"]:
                    row["m"][ident] = seq
        for target, moved_fragments in onward.items():
            seq_out = max(row["mv"][i][1] for i in moved_fragments)
            emit.internal(
                topics.PROFILE,
                target,
                SplitIn(person, target, seq_out, moved_fragments, tier, alerted),
            )
        return rest

    # --- splits ---
    def split(self, state: State, s: Split, touched: dict, emit: Emit) -> None:
        row = self._row(state, s.person)
        self._materialize(state, s.person, row)
        outgoing: dict[str, dict[str, Any]] = {}
        for ident, target in s.moves.items():
            key = f"f:{s.person}:{ident}"
            fragment = state.get(key)
            if fragment is not None:
                outgoing.setdefault(target, {})[ident] = fragment
                state.delete(key)
            row["mv"][ident] = [target, s.seq]
            row["m"].pop(ident, None)
        row["ms"] = max(row["ms"], s.seq)  # identity_seq never goes back
        tier, alerted = self._shown_tier(row), row.get("va")
        for target, fragments in outgoing.items():
            split_in = SplitIn(s.person, target, s.seq, fragments, tier, alerted)
            emit.internal(topics.PROFILE, target, split_in)
        # the person's aggregate is the combine of what remains
        aggregate = self.agg.empty()
        for _, fragment in self._fragments(state, s.person):
            aggregate = self.agg.combine(aggregate, fragment)
        row["a"] = aggregate
        state.put("p:" + s.person, row)
        self.stats["splits"] += 1
        t = self._touch(touched, s.person, "split")
        t.persons.extend(sorted(set(s.moves.values())))

    def split_in(self, state: State, s: SplitIn, touched: dict, emit: Emit) -> None:
        row = self._row(state, s.target)
        rest = self._receive(state, s.target, row, s.fragments, s.seq, emit, s.tier, s.alerted)
        merged_into = row.get("mi")
        if merged_into is not None:
            if rest:
                emit.internal(
                    topics.PROFILE,
                    merged_into,
                    SplitIn(s.source, merged_into, s.seq, rest, s.tier, s.alerted),
                )
            return
        self._floor(row, s.tier)
        self._heard(row, s.alerted)
        state.put("p:" + s.target, row)
        t = self._touch(touched, s.target, "split")
        t.persons.append(s.source)

    def members(self, state: State, m: Members, touched: dict, emit: Emit) -> None:
        row = self._row(state, m.person)
        if row.get("mi") is not None:
            return  # absorbed since: its survivor gets its own member list
        if m.seq < row["ms"]:
            return
        row["ms"] = m.seq
        members = {ident: row["m"].get(ident, m.seq) for ident in m.members}
        # identifiers seen in events but unknown to this list stay until moved away
        for ident, seq in row["m"].items():
            if ident not in members and ident not in row["mv"]:
                members[ident] = seq
        row["m"] = members
        for ident in m.members:
            moved = row["mv"].get(ident)
            if moved is not None and moved[1] < m.seq:
                del row["mv"][ident]  # it came back
            if m.labels is not None and ident.startswith("wallet:"):
                self._label(state, ident, m.labels.get(ident))
        state.put("p:" + m.person, row)
        self._touch(touched, m.person, "merge", ("ids",))  # labels: ALWAYS

    def refresh(self, state: State, r: Refresh, touched: dict, emit: Emit) -> None:
        row = self._row(state, r.person)
        elsewhere = self._route(row, r.ident, r.seq)
        if elsewhere is not None:
            emit.internal(topics.PROFILE, elsewhere, Refresh(elsewhere, r.seq, r.ident, r.labels))
            return
        if r.labels is not None:
            # kept here even before the person's first fact (the label may come first)
            self._label(state, r.ident, r.labels)
        if row["v"]:
            # cause "events" with no events: the v1 contract has no "label" kind
            self._touch(touched, r.person, "events", ("labels",))

    @staticmethod
    def _label(state: State, wallet: str, labels: dict | None) -> None:
        """Keep the partition's copy of ``wallet``'s labels (``lb:``; none: deleted)."""
        key = LABELS + wallet
        if labels:
            if state.get(key) != labels:
                state.put(key, labels)
        elif state.get(key) is not None:
            state.delete(key)

    def price(self, state: State, p: Price, touched: dict, ctx: Context) -> None:
        """Keep the partition's copy of a token's price (``pl:``); revalue at once the
        holders of a token they hold unpriced (a changed price waits for a tick)."""
        for person in self.agg.price_came(state, p.token, p.value, ctx):
            self.stats["revalued"] += 1
            self._touch(touched, person, "revaluation", ("value",))

    # --- time ---
    def tick(self, state: State, t: Tick, touched: dict, ctx: Context, emit: Emit) -> None:
        """Fire due timers, at most ``TICK_MAX`` per tick message, and revalue holders of
        repriced tokens. When more timers are due, the tick goes on to its own
        partition with a cursor, behind the records already waiting there (after a
        backlog, a first tick had ~800 persons per partition to publish in one group,
        holding the partition and delaying every event behind it)."""
        limit = TICK_MAX if t.partition >= 0 else None
        due, cursor = self.agg.tick(state, t.now, ctx, t.cursor, limit)
        for person, reasons in due.items():
            if "revaluation" in reasons:
                self.stats["revalued"] += 1
            groups = {"activity" if r == "tick" else "value" for r in reasons}
            self._touch(touched, person, "tick" if "tick" in reasons else "revaluation", groups)
        if cursor is not None:
            self.stats["tick_parts"] += 1
            emit.internal_at(topics.PROFILE, t.partition, t.onward(cursor))

    # --- change events ---
    def publish(self, state: State, person: str, t: _Touched, ctx: Context, emit: Emit) -> None:
        """At most one change event per person per batch, then segments, alerts, channel."""
        row = state.get("p:" + person)
        if row is None:
            return
        old = row["w"]
        groups: Iterable[str] = ALL_GROUPS
        if row.get("mi") is not None:
            view: dict[str, Any] = {"merged_into": row["mi"]}
            changes = {k: FieldChange(old.get(k), v) for k, v in view.items() if old.get(k) != v}
            for k in old:
                if k not in view:
                    changes[k] = FieldChange(old[k], None)
        else:
            # the groups nothing touched since the last change show what they showed
            # then; a person's first change starts from the empty view
            groups = t.groups | ALWAYS
            if "activity" in groups or person in ctx.fired:
                self.agg.before_view(state, row, ctx)
            fresh = self.agg.view_groups(groups, row, ctx)
            if old:
                changes = {
                    k: FieldChange(old.get(k), v) for k, v in fresh.items() if old.get(k) != v
                }
                view = {**old, **fresh} if changes else old
            else:
                view = {**self.agg.empty_view(), **fresh}
                changes = {k: FieldChange(None, v) for k, v in view.items() if v is not None}
            if self.check_views:
                whole = self.agg.view(person, row, ctx)
                assert view == whole, {
                    k: (view.get(k), v) for k, v in whole.items() if view.get(k) != v
                }
        dirty = self.agg.maintain(
            state,
            person,
            row,
            ctx,
            timers="activity" in groups or person in ctx.fired,
            tokens="value" in groups,
        )
        ctx.summary = None
        dirty = self._channel(person, row, emit) or dirty
        # a merged or split-off part's tier: consumed here, unless prices are awaited
        floor, since = row.pop("vt", None), row.pop("vs", None)
        if since and ctx.now(state) - since > FLOOR_WAIT_MS:
            floor = None  # kept for prices that did not come: no longer
        if changes:
            row["v"] += 1
            row["w"] = view
            # the partition's clock; before any tick, the person's newest activity, else
            # the newest event of the batch (a person known only by holdings has no
            # activity time), else the time of its previous change (``at``: a price
            # revaluing a holder applies no event): 0 only for a change without any
            # time to go by
            clock = ctx.now(state)
            at = clock or row.get("now") or t.newest or row.get("at") or 0
            if not clock and at:
                row["at"] = at
            self.stats["changes"] += 1
            emit.record(
                topics.PROFILE_CHANGES,
                person,
                ProfileChange(
                    person_id=person,
                    version=row["v"],
                    changes=changes,
                    cause=Cause(
                        kind=t.kind,  # type: ignore[arg-type]
                        events=t.events,
                        event_ids=t.event_ids,
                        persons=sorted(set(t.persons)),
                    ),
                    at=at,
                    merged_into=row.get("mi"),
                    identity_seq=max(row["ms"], *row["m"].values()) if row["m"] else row["ms"],
                ),
            )
            self._segments(person, row["v"], old, view, at, emit, floor, row=row)
            self._count(state, old, view)
        # (the clock is a state read: only for a person with a floor, not per publish)
        kept = floor is not None and self._keep_floor(row, view, floor, since, ctx.now(state))
        if changes or dirty or kept:
            state.put("p:" + person, row)

    def _count(self, state: State, old: dict, new: dict) -> None:
        """Move the partition's totals (``s:counts``) by one published change."""
        was = bool(old) and "merged_into" not in old
        now = bool(new) and "merged_into" not in new
        lc_old, lc_new = (
            old.get("lifecycle") if was else None,
            new.get("lifecycle") if now else None,
        )
        vip_old, vip_new = (
            old.get("vip_tier") if was else None,
            new.get("vip_tier") if now else None,
        )
        if was == now and lc_old == lc_new and vip_old == vip_new:
            return
        counts = self._counts
        if counts is None:
            counts = self._counts = state.get(COUNTS) or {"n": 0, "lc": {}, "vip": {}}
        counts["n"] += now - was
        for key, before, after in (("lc", lc_old, lc_new), ("vip", vip_old, vip_new)):
            if before == after:
                continue
            by = counts[key]
            if before is not None:
                by[before] = by.get(before, 0) - 1
                if not by[before]:
                    del by[before]
            if after is not None:
                by[after] = by.get(after, 0) + 1

    def _segments(
        self,
        person: str,
        version: int,
        old: dict,
        new: dict,
        at: int,
        emit: Emit,
        floor: str | None = None,
        *,
        row: dict | None = None,
    ) -> None:
        """Segment enter/exit for lifecycle stage and VIP tier; an alert when a tier is
        reached above both the tier shown before and ``floor`` (what a merged or
        split-off part showed), unless the person (``row``) was alerted for that tier or
        a higher one less than the rules' cooldown before ``at`` (counted as
        ``vip_alerts_suppressed``; its segment entry is sent all the same)."""
        for field, prefix in (("lifecycle", "lifecycle"), ("vip_tier", "vip")):
            before, after = old.get(field), new.get(field)
            if before == after:
                continue
            if before is not None:
                emit.record(
                    topics.SEGMENT_CHANGES,
                    person,
                    SegmentChange(person, f"{prefix}:{before}", "exit", at, version),
                )
            if after is not None:
                emit.record(
                    topics.SEGMENT_CHANGES,
                    person,
                    SegmentChange(person, f"{prefix}:{after}", "enter", at, version),
                )
        before, after = old.get("vip_tier"), new.get("vip_tier")
        known = min((before, floor), key=self.agg.tier_rank)
        if after is not None and self.agg.tier_rank(after) < self.agg.tier_rank(known):
            if row is not None:
                if self._cooling(row, after, at):
                    self.stats["vip_alerts_suppressed"] += 1
                    return
                self._alert_sent(row, after, at)
            worth = new.get("net_worth_usd", 0.0)
            details = {"tier": after, "previous": before, "net_worth_usd": worth}
            reached = self.agg.reached_by(after, new)
            if reached is None:  # the view showed the tier: one threshold is met
                why = f"net worth ${worth:,.0f}"
            else:  # say what met it: volume or fees decide a tier as net worth does
                metric, threshold = reached
                amount = new.get(metric, 0.0)
                why = f"{METRIC_WORDS[metric]} ${amount:,.0f} ≥ ${threshold:,.0f}"
                details.update(metric=metric, value=amount, threshold=threshold)
            emit.record(
                topics.ALERTS,
                person,
                Alert(
                    alert_id=f"vip:{person}:{version}",
                    person_id=person,
                    kind="vip_tier_up",
                    severity="info",
                    message=f"person reached VIP tier {after} ({why})",
                    at=at,
                    details=details,
                ),
            )

    def _channel(self, person: str, row: dict, emit: Emit) -> bool:
        """Move the person's revenue between acquisition channels as ±deltas (exactly)."""
        agg = row["a"]
        live = row.get("mi") is None and agg["n"] > 0
        channel = channel_of(agg["ft"]) if live else None
        revenue = dict(agg["rev"]) if live else {}
        old_channel = row.get("chn")
        old_revenue = row.get("rvs", {})
        if channel == old_channel and revenue == old_revenue:
            return False
        if old_channel == channel:
            delta = dict(revenue)
            for token, raw in old_revenue.items():
                delta[token] = delta.get(token, 0) - raw
            delta = {k: v for k, v in delta.items() if v}
            emit.internal(topics.CHANNEL, channel, ChannelDelta(channel, 0, delta))
        else:
            if old_channel is not None:
                negative = {k: -v for k, v in old_revenue.items()}
                emit.internal(topics.CHANNEL, old_channel, ChannelDelta(old_channel, -1, negative))
            if channel is not None:
                emit.internal(topics.CHANNEL, channel, ChannelDelta(channel, 1, revenue))
        row["chn"] = channel
        row["rvs"] = revenue
        return True


METRIC_WORDS = {"net_worth_usd": "net worth", "volume_usd": "volume", "fees_usd": "fees"}
"""How an alert's message names the threshold a tier was reached by."""


def _new_row(aggregate: dict | None, **extra: Any) -> dict:
    """A person row before any change (see the module doc for its fields)."""
    return {"v": 0, "m": {}, "ms": 0, "ab": [], "mv": {}, "a": aggregate, "w": {}, **extra}


def _copy(value: Any) -> Any:
    """A deep copy of plain data (state values are JSON)."""
    return _decode(_encode(value))


def channel_of(first_touch: dict | None) -> str:
    """The acquisition channel of a first touch: "source / medium / campaign"."""
    if first_touch is None:
        return "(direct)"
    return " / ".join(first_touch.get(k) or "(none)" for k in ("source", "medium", "campaign"))


__all__ = ["ProfileStage"]
