"""The expected identities of a pipeline run, in the order its link stage recorded the links.

The link stage's guards (per-type limits, hubs) make the persons depend on the order in
which links reach it: a person that already holds a ``user`` refuses a second one, so
``anon:A — wallet:W`` then ``kiosk — wallet:W`` gives another person than the reverse
order. DESIGN.md states the invariant accordingly: the persons equal the components that
an offline union-find computes from the accepted links, *in the order the link stage
recorded them*. A run's order is its single link partition: the link topic. A stage
groups many input records into one record per destination partition, so on a real
broker route partition 0's whole backlog may reach the link stage before partition 1's,
an order the in-memory simulator (one input record at a time) practically never picks.

So the expected state of a run is computed from two order-free parts:

- the persons: the link topic replayed, from its first record, through the link stage
  (each sender's segments applied once, as the worker does);
- the events of each person: the sum over its identifiers of each identifier's own
  events, from the simulator run with merging disabled (counts are additive under
  merges, and an event counts for the person of its primary identifier).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream import topics
from stream.core.link import LinkStage
from stream.core.messages import DECODERS
from stream.core.rules import DEFAULT, Compiled
from stream.core.state import Collected, MemoryState
from stream.settings import Settings
from stream.sim import Input, Simulator


async def link_records(settings: Settings) -> list[bytes]:
    """Every record of the link topic (one partition: the link stage's input order)."""
    name = topics.LINK.name(settings)
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False
    )
    await consumer.start()
    try:
        tp = TopicPartition(name, 0)
        end = (await consumer.end_offsets([tp]))[tp]
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        values: list[bytes] = []
        while len(values) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            for record in batch.get(tp, []):
                if record.offset < end:
                    values.append(record.value)
        return values
    finally:
        await consumer.stop()


def link_components(records: Iterable[bytes]) -> dict[str, frozenset[str]]:
    """identifier -> the identifiers of its person, replaying the link stage's input."""
    stage = LinkStage(Compiled(DEFAULT))
    state = MemoryState()
    applied: dict[str, int] = {}
    decode = DECODERS["link"].decode
    for value in records:
        for source, seq, items in decode(value):
            if seq <= applied.get(source, -1):
                continue  # a sender's replay after a crash
            applied[source] = seq
            stage.process(state, items, Collected())
            state.commit()
    out: dict[str, frozenset[str]] = {}
    for _, component in state.scan("c:", "c;"):
        members = frozenset(component["m"])
        for ident in members:
            out[ident] = members
    return out


def events_by_identifier(events: list[tuple[str, str, dict]]) -> dict[str, int]:
    """identifier -> how many events count for it (its own, whatever person it joins)."""
    apart = msgspec.structs.replace(
        DEFAULT, merge={"verified": False, "observed": False, "asserted": False}
    )
    sim = Simulator(partitions=2, seed=5, rules=apart)
    sim.run([Input(s, msgspec.json.encode(p), key=k) for s, k, p in events])
    counts: dict[str, int] = {}
    for row in sim.persons().values():
        members = list(row["m"])
        if len(members) != 1:
            raise AssertionError(f"a person formed with merging disabled: {members}")
        counts[members[0]] = row["a"]["n"]
    return counts


def expected_persons(
    components: dict[str, frozenset[str]], counts: dict[str, int]
) -> dict[str, tuple[frozenset[str], int]]:
    """identifier -> (its person's identifiers, its person's event count)."""
    out: dict[str, tuple[frozenset[str], int]] = {}
    for ident in set(counts) | set(components):
        members = components.get(ident, frozenset({ident}))
        out[ident] = (members, sum(counts.get(i, 0) for i in members))
    return out


def person_total(want: dict[str, tuple[frozenset[str], int]]) -> int:
    """The events of all persons together."""
    return sum({members: n for members, n in want.values()}.values())


def describe(want: dict[str, Any]) -> str:
    persons = {members for members, _ in want.values()}
    return f"{len(persons)} persons, {len(want)} identifiers"
