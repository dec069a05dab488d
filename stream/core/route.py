"""The route stage: identifier -> person, duplicates and retractions, and the skip rule.

Keyed by identifier (the fact's primary identifier). For each fact it

1. drops a duplicate: the key ``d:{source}:{day}:{ident}:{fact id}`` exists while
   the fact is applied (an upsert sets it, its retract removes it), so a repeated
   upsert or retract counts once, and a retract of an unknown fact is a no-op. The
   day is the fact's event day. The duplicate window is ``dedupe_days`` (default 7)
   of event time before the *horizon*: the newest day this partition has seen from
   that source, capped at the latest tick's day (so that one event dated in the
   future cannot empty the window). Keys of days before it are swept (``sweep``: a
   tick starts a sweep, the facts that follow pay for what it leaves). A fact that
   is already older than the window when it arrives (late, or part of a replay of
   history out of order), upsert or retract, is applied as it comes: not checked
   for, nor remembered against, duplicates (so a retract undoes its upsert, and a
   repeat counts again). Before, an upsert's key was written and forgotten at the
   next sweep, so whether a repeat was caught, and whether a retract was applied,
   depended on when the next tick came; and a replay of a month of history wrote,
   then deleted, a key for nearly every fact;
2. looks up the identifier's person: the link stage's assignment (``i:{ident}``),
   else ``f(ident)``;
3. sends link evidence to the one-partition link stage, unless every linked
   identifier is already known to be linked (or known to be refused): then, like
   every single-identifier fact, it goes straight to the person's profile
   partition.

Assignments from the link stage update ``i:{ident}``: ``p`` person, ``s`` its
sequence number, ``k`` and ``r`` the pairs known linked and refused, ``v`` the row's
version. Cached refusals are trusted only in rows of ``ROW_VERSION``: before it, the
link stage kept no record of the refusals the route stage cached, so it could not tell
the route stage to forget them when they stop holding (docs/identity.md, "The
known-pairs cache"); an older row's refusals are decided again, once.
"""

from __future__ import annotations

from typing import Any

from stream import topics
from stream.core.facts import Fact
from stream.core.messages import Assign, Event, Tick, person_of
from stream.core.rules import Compiled
from stream.core.state import Emit, State

DAY_MS = 86_400_000
ROW_VERSION = 1
"""The version of ``i:`` rows whose cached refusals are trusted (see the module doc)."""


def dedupe_key(fact: Fact) -> str:
    return f"d:{fact.src}:{fact.ts // DAY_MS:06d}:{fact.ident}:{fact.id}"


class RouteStage:
    """See the module doc."""

    def __init__(self, rules: Compiled) -> None:
        self.rules = rules
        self.cache_size = rules.rules.known_links_cache
        self.dedupe_days = rules.rules.dedupe_days
        self.stats = {
            "duplicates": 0,
            "outside_window": 0,
            "retracts": 0,
            "retract_unknown": 0,
            "to_link": 0,
            "to_profile": 0,
        }

    def process(self, state: State, messages: list[Any], emit: Emit) -> None:
        facts = 0
        ticked = False  # a record with a tick has its part: its facts pay for no other
        for message in messages:
            if type(message) is Fact:
                self.fact(state, message, emit)
                facts += 1
            elif type(message) is Assign:
                self.assign(state, message)
            elif type(message) is Tick:
                today = message.now // DAY_MS
                if state.get(TODAY) != today:
                    state.put(TODAY, today)
                # a tick starts over (an older worker's continuation goes on at its cursor)
                self.sweep(state, message.now, message.cursor, SWEEP_MAX)
                ticked = True
        if facts and not ticked:
            self._pay(state, facts)

    # --- facts ---
    def fact(self, state: State, fact: Fact, emit: Emit) -> None:
        if self._outside(state, fact):
            self.stats["outside_window"] += 1  # applied as it comes (module doc)
            if fact.op < 0:  # a key kept from when it was inside goes with it (the
                key = dedupe_key(fact)  # horizon can move back: a tick sent by hand)
                if state.get(key) is not None:
                    state.delete(key)
        else:
            key = dedupe_key(fact)
            applied = state.get(key) is not None
            if fact.op > 0:
                if applied:
                    self.stats["duplicates"] += 1
                    return
                state.put(key, 1)
            else:
                if not applied:
                    self.stats["retract_unknown"] += 1
                    return
                state.delete(key)
                self.stats["retracts"] += 1
        row = state.get("i:" + fact.ident)
        if fact.links:
            refused = row["r"] if row is not None and row.get("v") == ROW_VERSION else ()
            skip = row is not None and all(i in row["k"] or i in refused for i, _ in fact.links)
            if not skip:
                self.stats["to_link"] += 1
                emit.internal(topics.LINK, fact.ident, fact)
                return
        if row is None:
            person, seq = person_of(fact.ident), 0
        else:
            person, seq = row["p"], row["s"]
        self.stats["to_profile"] += 1
        emit.internal(topics.PROFILE, person, Event(person, seq, fact))

    # --- assignments ---
    def assign(self, state: State, a: Assign) -> None:
        key = "i:" + a.ident
        row = state.get(key)
        if row is not None and row.get("v") != ROW_VERSION:
            row["r"], row["v"] = [], ROW_VERSION  # refusals cached before: decided again
        if a.forget:
            if row is None:
                return  # nothing cached; the person is still f(ident)
            row["k"] = [i for i in row["k"] if i not in a.forget]
            row["r"] = [i for i in row["r"] if i not in a.forget]
        if row is None:
            row = {"p": person_of(a.ident), "s": 0, "k": [], "r": [], "v": ROW_VERSION}
        if a.seq >= row["s"]:
            row["p"], row["s"] = a.person, a.seq
        if a.known:
            row["k"] = _bounded(row["k"], a.known, self.cache_size)
            row["r"] = [i for i in row["r"] if i not in a.known]
        if a.refused:
            row["r"] = _bounded(row["r"], a.refused, self.cache_size)
        state.put(key, row)

    # --- time ---
    def sweep(self, state: State, now: int, cursor: str, budget: int, carry: int = 0) -> None:
        """Forget up to ``budget`` duplicate keys older than the window, per source topic:
        ``dedupe_days`` before the newest event day of that source (capped at ``now``'s
        day). Per source, so that a source lagging behind the others keeps its window.
        ``cursor``: the last key an earlier part forgot ("": from the start); ``carry``:
        budget already paid for the next part.

        Forgetting is background work, and it comes in bursts: keys fall out of the
        window a day at a time (in real time, a whole day of them at the first tick
        after midnight; in a replay of history, most keys as soon as they are written).
        Forgotten in one group, a backlog's keys held the partition and its commit for
        seconds (90k per partition after a 300k-event backlog); sent on through Kafka a
        part at a time, as until 2026-11-30, the parts still took the stage's time
        until the backlog was gone, and a worker near its capacity queued every event
        behind them. So a part forgets at most ``budget`` keys, and when more are due
        it leaves the rest in the state (``SWEEPING``: ``now``, the last key it forgot,
        the budget paid so far): every fact that follows pays ``SWEEP_PER_FACT`` keys,
        and a part runs whenever ``SWEEP_MAX`` are paid for. Forgetting then keeps pace
        with the input (about one key falls due per fact written) in steady parts. The
        next tick starts over from the first key (and so finds a late fact's key written
        behind the cursor). A partition that gets no facts forgets ``SWEEP_MAX`` keys
        per tick."""
        left = budget
        last = cursor
        for key, newest in list(state.scan("dd:", "dd;")):
            prefix = f"d:{key[3:]}:"
            if cursor:
                if not cursor.startswith(prefix):
                    continue  # swept before the cursor's source
                start, cursor = cursor + "\x00", ""
            else:
                start = prefix
            horizon = self._horizon(newest, now // DAY_MS)
            for old, _ in list(state.scan(start, f"{prefix}{horizon:06d}", left + 1)):
                if left == 0:
                    state.put(SWEEPING, [now, last, carry])
                    return
                state.delete(old)
                left -= 1
                last = old
        if state.get(SWEEPING) is not None:
            state.delete(SWEEPING)

    def _outside(self, state: State, fact: Fact) -> bool:
        """Whether the fact is older than the duplicate window (an upsert first moves its
        source's newest day). Before the partition's first tick, nothing is."""
        day = fact.ts // DAY_MS
        newest = state.get("dd:" + fact.src)
        if fact.op > 0 and (newest is None or day > newest):
            state.put("dd:" + fact.src, day)
            newest = day
        today = state.get(TODAY)
        if today is None or newest is None:
            return False
        return day < self._horizon(newest, today)

    def _horizon(self, newest: int, today: int) -> int:
        """The first day inside the duplicate window (module doc)."""
        return min(newest, today) - self.dedupe_days

    def _pay(self, state: State, facts: int) -> None:
        """``facts`` facts pay for the sweep left for later, if any (see ``sweep``)."""
        pending = state.get(SWEEPING)
        if pending is None:
            return
        now, cursor, paid = pending
        paid += facts * SWEEP_PER_FACT
        if paid < SWEEP_MAX:
            state.put(SWEEPING, [now, cursor, paid])
        else:  # a part of SWEEP_MAX; a large record's extra pay is kept for the next
            self.sweep(state, now, cursor, SWEEP_MAX, min(paid - SWEEP_MAX, SWEEP_MAX))


SWEEP_MAX = 1000
"""Duplicate keys a tick forgets at most, and the budget a part waits for (see
RouteStage.sweep)."""
SWEEP_PER_FACT = 2
"""Keys of a pending sweep each fact pays for: keys fall due about as fast as facts
write them, so twice that clears a backlog while keeping up (see RouteStage.sweep)."""
TODAY = "dt"
"""The state key of the latest tick's day: the cap of every source's newest day (the
latest, not the greatest: a tick sent by hand with a future time is undone by the next)."""
SWEEPING = "sw"
"""The state key of a sweep left for later: [now, the last key forgotten, the budget
paid so far]."""


def _bounded(current: list[str], new: list[str], size: int) -> list[str]:
    merged = [i for i in current if i not in new] + list(new)
    return merged[-size:]
