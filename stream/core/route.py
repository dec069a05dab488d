"""The route stage: identifier -> person, duplicates and retractions, and the skip rule.

Keyed by identifier (the fact's primary identifier). For each fact it

1. drops a duplicate: the key ``d:{source}:{day}:{ident}:{fact id}`` exists while
   the fact is applied (an upsert sets it, its retract removes it), so a repeated
   upsert or retract counts once, and a retract of an unknown fact is a no-op. The
   day is the fact's event day; on ticks, days older than ``dedupe_days`` before
   the newest day this partition has seen from that source (capped at today) are
   swept: the duplicate window is ``dedupe_days`` of event time (default 7);
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
            "retracts": 0,
            "retract_unknown": 0,
            "to_link": 0,
            "to_profile": 0,
        }

    def process(self, state: State, messages: list[Any], emit: Emit) -> None:
        for message in messages:
            if type(message) is Fact:
                self.fact(state, message, emit)
            elif type(message) is Assign:
                self.assign(state, message)
            elif type(message) is Tick:
                self.sweep(state, message, emit)

    # --- facts ---
    def fact(self, state: State, fact: Fact, emit: Emit) -> None:
        key = dedupe_key(fact)
        applied = state.get(key) is not None
        if fact.op > 0:
            if applied:
                self.stats["duplicates"] += 1
                return
            state.put(key, 1)
            day = fact.ts // DAY_MS
            newest = state.get("dd:" + fact.src)
            if newest is None or day > newest:
                state.put("dd:" + fact.src, day)
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
    def sweep(self, state: State, tick: Tick, emit: Emit) -> None:
        """Forget duplicate keys older than the window, per source topic: ``dedupe_days``
        before the newest event day of that source (capped at today). Per source, so
        that a source lagging behind the others keeps its window.

        At most ``SWEEP_MAX`` keys per tick message: when more are due (the first tick
        after a backlog forgot ~90k keys per partition in one group, holding the
        partition and its commit for seconds), the stage sends the tick on to its own
        partition, behind the records already waiting there, with the last key it
        forgot as the cursor: the next part seeks past it instead of stepping again
        over the deleted keys before it (RocksDB keeps them as tombstones until a
        compaction)."""
        left = SWEEP_MAX
        cursor = last = tick.cursor
        for key, newest in list(state.scan("dd:", "dd;")):
            prefix = f"d:{key[3:]}:"
            if cursor:
                if not cursor.startswith(prefix):
                    continue  # swept before the cursor's source
                start, cursor = cursor + "\x00", ""
            else:
                start = prefix
            horizon = min(newest, tick.now // DAY_MS) - self.dedupe_days
            for old, _ in list(state.scan(start, f"{prefix}{horizon:06d}", left + 1)):
                if left == 0:
                    if tick.partition >= 0:
                        emit.internal_at(topics.ROUTE, tick.partition, tick.onward(last))
                    return
                state.delete(old)
                left -= 1
                last = old


SWEEP_MAX = 1000
"""Duplicate keys one tick message forgets at most (see RouteStage.sweep)."""


def _bounded(current: list[str], new: list[str], size: int) -> list[str]:
    merged = [i for i in current if i not in new] + list(new)
    return merged[-size:]
