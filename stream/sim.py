"""A deterministic simulator: the same core over N partitions, on an in-memory bus.

Stages run exactly as in the worker — ingest, route (N partitions), link (one
partition), profile (N partitions) — and exchange records (one per destination
partition per processed record, as the shell sends them). The bus keeps every
(source partition -> destination partition) channel in FIFO order, like a Kafka
partition fed by one producer, and a seeded scheduler picks which channel
delivers next, so records from different sources interleave at random, merges
are in flight while new inputs arrive, and any run can be replayed from its seed.

Used by the property tests, ``c360 replay`` (a dry run of events or of a rule
change) and the benchmarks of the pure stages.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import msgspec

from stream import topics
from stream.core.aggregate import Aggregator
from stream.core.channel import ChannelStage
from stream.core.ingest import Ingest, Rejection
from stream.core.link import LinkStage
from stream.core.messages import DECODERS, Label, Price, Tick, encode_record
from stream.core.partitioner import partition_for
from stream.core.profile import ProfileStage
from stream.core.route import RouteStage
from stream.core.rules import DEFAULT, Compiled, Rules
from stream.core.state import MemoryState

_encode = msgspec.json.Encoder().encode
STAGE_OF = {
    topics.ROUTE.suffix: "route",
    topics.LINK.suffix: "link",
    topics.PROFILE.suffix: "profile",
    topics.CHANNEL.suffix: "channel",
}


@dataclass
class Input:
    """One input record: a topic suffix and its value (bytes), or a tick."""

    topic: str
    value: bytes | None = None
    key: str | None = None
    now: int | None = None  # for topic == "tick"


@dataclass
class Outputs:
    """What the pipeline wrote for its users."""

    profile_changes: list[Any] = field(default_factory=list)
    merges: list[Any] = field(default_factory=list)
    conflicts: list[Any] = field(default_factory=list)
    segments: list[Any] = field(default_factory=list)
    alerts: list[Any] = field(default_factory=list)
    dead_letters: list[tuple[str, Rejection]] = field(default_factory=list)


class _Emit:
    """Collects a stage partition's output for one processed record."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self.groups: dict[tuple[str, int], list[Any]] = {}
        self.records: list[tuple[topics.TopicSpec, str, Any]] = []

    def internal(self, spec: topics.TopicSpec, key: str, message: Any) -> None:
        n = 1 if spec.partitions == 1 else self.partitions
        self.internal_at(spec, 0 if n == 1 else partition_for(key, n), message)

    def internal_at(self, spec: topics.TopicSpec, partition: int, message: Any) -> None:
        self.groups.setdefault((spec.suffix, partition), []).append(message)

    def record(self, spec: topics.TopicSpec, key: str, payload: Any) -> None:
        self.records.append((spec, key, payload))


class Simulator:
    """See the module doc."""

    def __init__(
        self,
        partitions: int = 4,
        seed: int = 0,
        rules: Rules = DEFAULT,
        *,
        inject_probability: float = 0.3,
        record_log: bool = False,
        check_views: bool = False,
        batch_max: int = 500,
        record_max: int = 1_000_000,
    ) -> None:
        self.partitions = partitions
        self.random = random.Random(seed)
        self.compiled = Compiled(rules)
        self.ingest = Ingest(self.compiled, batch_max=batch_max, record_max=record_max)
        self.route = RouteStage(self.compiled)
        self.link = LinkStage(self.compiled)
        self.prices: dict[str, list] = {}  # the global prices table, as every worker sees it
        # the labels as the labels topic says them (what profiles should show in the end)
        self.labels: dict[str, dict[str, list[str]]] = {}
        self._label_times: dict[str, dict[str, int]] = {}  # of the dated records applied
        self.aggregator = Aggregator(rules)
        self.profile = ProfileStage(self.aggregator, check_views=check_views)
        self.channel = ChannelStage()
        if record_log:
            self.link.log = []
        self.states: dict[tuple[str, int], MemoryState] = {}
        self.channels: dict[tuple[str, str, int], deque[bytes]] = {}
        self.inject_probability = inject_probability
        self.outputs = Outputs()
        self.link_inputs: list[Any] = []  # every message the link stage processed, in order
        self.delivered = 0
        self._seq = 0

    # --- state ---
    def state(self, stage: str, partition: int) -> MemoryState:
        key = (stage, partition)
        s = self.states.get(key)
        if s is None:
            s = self.states[key] = MemoryState()
        return s

    # --- running ---
    def run(self, inputs: list[Input]) -> Outputs:
        """Feed every input, interleaved with internal deliveries, until quiet."""
        pending = deque(inputs)
        while pending or self._busy():
            if pending and (not self._busy() or self.random.random() < self.inject_probability):
                self._inject(pending.popleft())
            else:
                self._deliver_one()
        return self.outputs

    def feed(self, item: Input) -> None:
        """Apply one input record, its internal messages left undelivered (see
        :meth:`step`): to look at the state between the stages' steps."""
        self._inject(item)

    def step(self) -> bool:
        """Deliver one pending internal record (chosen at random); False when none is."""
        if not self._busy():
            return False
        self._deliver_one()
        return True

    def _busy(self) -> bool:
        return any(self.channels.values())

    def _inject(self, item: Input) -> None:
        if item.topic == "tick":
            now = int(item.now or 0)
            for p in range(self.partitions):
                self._enqueue("tick", ("route", p), [Tick(now, p)])
                self._enqueue("tick", ("profile", p), [Tick(now, p)])
            return
        if item.topic == topics.LABELS.suffix:
            self._labels(item)
            return
        if item.topic == topics.PRICES.suffix:
            self._price(item)
            return
        out = self.ingest.record(item.topic, item.value)
        for rejection in out.rejections:
            self.outputs.dead_letters.append((item.topic, rejection))
        emit = _Emit(self.partitions)
        for fact in out.facts:
            emit.internal(topics.ROUTE, fact.ident, fact)
        self._dispatch(f"ingest:{item.topic}", emit)

    def _labels(self, item: Input) -> None:
        from stream.core.reference import date_label, wallet_label

        message = wallet_label((item.key or "").encode(), item.value)
        if not isinstance(message, Label):
            self.outputs.dead_letters.append((item.topic, message))
            return
        self._enqueue("labels", ("link", 0), [message])  # the link stage decides
        if not date_label(self._label_times.setdefault(message.wallet, {}), message):
            return  # older than the record held: not what profiles should show
        table = self.labels.setdefault(message.wallet, {})
        if message.categories:
            table[str(message.chain)] = message.categories
        else:
            table.pop(str(message.chain), None)

    def _price(self, item: Input) -> None:
        from stream.core.reference import apply_quote, price_entry

        quote = price_entry((item.key or "").encode(), item.value)
        if isinstance(quote, Rejection):
            self.outputs.dead_letters.append((item.topic, quote))
            return
        value, _ = apply_quote(self.prices, quote)  # stale: the worker counts it
        for p in range(self.partitions):
            self._enqueue("prices", ("profile", p), [Price(quote.token, value)])

    def _dispatch(self, source: str, emit: _Emit) -> None:
        for (suffix, partition), messages in emit.groups.items():
            self._enqueue(source, (STAGE_OF[suffix], partition), messages)
        for spec, _key, payload in emit.records:
            if spec is topics.PROFILE_CHANGES:
                self.outputs.profile_changes.append(payload)
            elif spec is topics.IDENTITY_MERGES:
                self.outputs.merges.append(payload)
            elif spec is topics.IDENTITY_CONFLICTS:
                self.outputs.conflicts.append(payload)
            elif spec is topics.SEGMENT_CHANGES:
                self.outputs.segments.append(payload)
            elif spec is topics.ALERTS:
                self.outputs.alerts.append(payload)

    def _enqueue(self, source: str, dest: tuple[str, int], messages: list[Any]) -> None:
        channel = (source, dest[0], dest[1])
        queue = self.channels.get(channel)
        if queue is None:
            queue = self.channels[channel] = deque()
        self._seq += 1
        # through serialization, as on Kafka: one record, one segment
        queue.append(encode_record([(source, self._seq, messages)]))

    def _deliver_one(self) -> None:
        ready = [c for c, q in self.channels.items() if q]
        source, stage, partition = self.random.choice(ready)
        record = self.channels[(source, stage, partition)].popleft()
        self.delivered += 1
        self._dispatch(f"{stage}:{partition}", self.apply(stage, partition, record))

    def apply(self, stage: str, partition: int, record: bytes) -> _Emit:
        """One internal record through its stage partition (committed); what it emitted."""
        messages = [m for _, _, items in DECODERS[stage].decode(record) for m in items]
        emit = _Emit(self.partitions)
        state = self.state(stage, partition)
        if stage == "route":
            self.route.process(state, messages, emit)
        elif stage == "link":
            self.link_inputs.extend(messages)
            self.link.process(state, messages, emit)
        elif stage == "channel":
            self.channel.process(state, messages, emit)
        else:
            self.profile.process(state, messages, emit)
        state.commit()
        return emit

    # --- results ---
    def persons(self) -> dict[str, dict[str, Any]]:
        """Every live person: its row (members, aggregate, last view)."""
        out = {}
        for (stage, _), state in self.states.items():
            if stage != "profile":
                continue
            for key, row in state.scan("p:", "p;"):
                if row.get("mi") is None:
                    out[key[2:]] = row
        return out

    def channel_table(self) -> dict[str, dict[str, Any]]:
        """The channel revenue table, all partitions."""
        from stream.core.channel import channel_rows

        out: dict[str, dict[str, Any]] = {}
        for (stage, _), state in self.states.items():
            if stage == "channel":
                out.update(channel_rows(state))
        return out

    def person_of(self, identifier: str) -> str:
        """The person an identifier belongs to, as the route stage says."""
        from stream.core.messages import person_of

        state = self.state("route", partition_for(identifier, self.partitions))
        row = state.get("i:" + identifier)
        return row["p"] if row else person_of(identifier)
