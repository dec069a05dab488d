"""The Faust agents: a few lines each around the pure core.

ingest (input topics) -> route (by identifier) -> link (one partition) ->
profile (by person) -> channel (by acquisition channel). Prices go to every profile
partition (and a global table that every worker holds, for the API's channel
revenue), labels to the link stage. A leader timer sends ticks.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

from stream import topics
from stream.core.aggregate import Aggregator
from stream.core.channel import ChannelStage
from stream.core.ingest import Ingest, Rejection
from stream.core.link import LinkStage
from stream.core.messages import DECODERS, Price
from stream.core.profile import ProfileStage
from stream.core.reference import AHEAD_MS, apply_quote, price_entry, wallet_label
from stream.core.route import RouteStage
from stream.shell import observe
from stream.shell.batching import take_groups
from stream.shell.metrics import METRICS
from stream.shell.outbox import Outbox
from stream.shell.rewind import Rewind
from stream.shell.sender import BatchSender
from stream.shell.stage import (
    GROUP_MAX,
    GROUP_MAX_BYTES,
    GROUP_WAIT,
    Pacer,
    StageRunner,
    fatal,
)
from stream.ticks import tick_records

if TYPE_CHECKING:
    from stream.app import C360

log = logging.getLogger(__name__)
REWIND_INTERVAL = 0.25
"""Seconds between checks for records to deliver again (see stream/shell/rewind.py)."""

# Input topics that ingest reads (prices and labels feed state instead).


def register(c360: C360) -> None:
    """Declare every table and agent of a worker."""
    c360.rewind = Rewind(c360.app)

    @c360.app.on_before_shutdown.connect
    async def _stop_probe(sender: Any, **kwargs: Any) -> None:
        await c360.rewind.stop()  # after the consumer: no agent probes any more

    @c360.app.timer(interval=REWIND_INTERVAL, name="rewind")
    async def _rewind() -> None:
        await c360.rewind.flush()
        for runner in c360.stages.values():
            await runner.realign()
            await runner.unstick()
        await unstick_ingest()

    unstick_ingest = register_ingest(c360)
    prices = register_reference(c360)
    route = RouteStage(c360.rules)
    c360.stages["route"] = stage(
        c360, "route", topics.ROUTE, route.process, observe.route_hook(route)
    )
    link = LinkStage(c360.rules)
    c360.stages["link"] = stage(c360, "link", topics.LINK, link.process, observe.link_hook(link))
    c360.prices = GlobalView(prices)
    aggregator = Aggregator(c360.rules.rules)
    c360.aggregator = aggregator
    profile = ProfileStage(aggregator)
    c360.stages["profile"] = stage(
        c360, "profile", topics.PROFILE, profile.steps, observe.profile_hook(profile)
    )
    c360.stages["channel"] = stage(c360, "channel", topics.CHANNEL, ChannelStage().process)
    register_ticker(c360)

    @c360.app.on_partitions_revoked.connect
    @c360.app.on_rebalance_complete.connect
    async def _forget_positions(sender: Any, *args: Any, **kwargs: Any) -> None:
        # At revocation too: an open transaction holds its partition's database, which
        # faust's store drops without closing (closed when the last reference goes), and
        # RocksDB refuses to open a database twice in a process: the partition assigned
        # back (a standby's changelog replay, an active) would fail on the lock.
        for runner in c360.stages.values():
            runner.forget()


def sender_of(c360: C360) -> BatchSender:
    """A BatchSender on the app's own (idempotent, acks=all) producer."""
    return BatchSender(c360.app.producer._ensure_producer())


def stage(
    c360: C360, name: str, spec: topics.TopicSpec, process: Any, hook: Any = None
) -> StageRunner:
    """A stateful stage: its table (batch store), its agent and its runner."""
    settings = c360.settings
    table = c360.app.Table(
        name,
        partitions=spec.partition_count(settings),
        store=f"c360:{name}",  # yarl: a scheme-only URL is falsy and faust would ignore it
        key_type=bytes,
        value_type=bytes,
        options=c360.rocksdb_options,
        help=f"state of the {name} stage",
    )
    c360.tables[name] = table
    METRICS.recovery_records.labels(name)  # exposed at 0 until a recovery applies records
    runner = StageRunner(
        name,
        settings,
        table,
        process,
        DECODERS[spec.suffix].decode,
        lambda: sender_of(c360),
        observe=hook,
        rewind=c360.rewind,
        topic=spec.name(settings),
    )

    async def agent(stream):
        groups = take_groups(stream, GROUP_MAX, GROUP_WAIT, GROUP_MAX_BYTES, runner.due_in)
        async for events in groups:
            await runner.handle([event.message for event in events])

    c360.app.agent(c360.topic(spec), name=f"{name}-stage", concurrency=1)(agent)
    return runner


def register_ingest(c360: C360) -> Callable[[], Awaitable[None]]:
    """Ingest: validate and normalize input records into facts keyed by identifier.
    Returns its unstick check (see Rewind.unstick), for the rewind timer."""
    app, settings = c360.app, c360.settings
    ingest = Ingest(
        c360.rules, batch_max=settings.batch_max_events, record_max=settings.record_max_bytes
    )
    suffix_of = {t.name(settings): t.suffix for t in topics.INGESTED}
    source = app.topic(
        *suffix_of, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    counters: dict[tuple[str, str], Any] = {}
    latency = METRICS.stage_latency.labels("ingest")

    def count(suffix: str, kind: str, n: int) -> None:
        counter = counters.get((suffix, kind))
        if counter is None:
            counter = counters[(suffix, kind)] = METRICS.events_in.labels(suffix, kind)
        counter.inc(n)

    # Ingest keeps no state, so its positions live in memory (``rewind.next``): the
    # next offset it applies per partition, from the group's committed offset on, or
    # from where it sought a partition back (see rewind.py).
    rewind = c360.rewind
    expected = rewind.next
    held = rewind.held  # refused partitions faust must not commit past (rewind.hold)

    def next_offset(tp: Any) -> int | None:
        """The offset ingest applies next on ``tp`` (None: any, nothing committed)."""
        want = expected.get((tp.topic, tp.partition))
        return want if want is not None else rewind.committed(tp)

    busy = False  # handling a group

    async def unstick() -> None:
        if not rewind.settled():
            return
        for tp in sorted(app.consumer.assignment()):
            want = next_offset(tp) if tp.topic in suffix_of else None
            if want is not None:
                await rewind.unstick(tp, want, busy)

    @app.agent(source, name="ingest", concurrency=1)
    async def ingest_agent(stream):
        nonlocal busy
        sender = None
        async for events in take_groups(stream, GROUP_MAX, GROUP_WAIT, GROUP_MAX_BYTES):
            busy = True
            try:
                events = await rewind.in_order(events, next_offset, "ingest")
                if not events:
                    continue
                sender = sender or sender_of(c360)
                outbox = Outbox(settings)
                pace = Pacer(settings.yield_after)
                for event in events:
                    if pace.due():  # let the API and the other agents in
                        await pace.rest()
                    msg = event.message
                    suffix = suffix_of[msg.topic]
                    out = ingest.record(suffix, msg.value)
                    outbox.begin(f"ingest:{suffix}:{msg.partition}", msg.offset)
                    for fact in out.facts:
                        outbox.internal(topics.ROUTE, fact.ident, fact)
                    for kind, n in out.accepted_by_type.items():
                        count(suffix, kind, n)
                    for rejection in out.rejections:
                        METRICS.dead_letters.labels(suffix, rejection.reason).inc()
                        outbox.dead_letter(msg.topic, msg.partition, msg.offset, rejection)
                for sent in await outbox.send(sender):
                    await sent.last_offset()
                if held:  # applied and acknowledged: held partitions may commit again
                    for event in events:
                        msg = event.message
                        rewind.release(msg.topic, msg.partition, msg.offset + 1)
                oldest = min(event.message.timestamp or 0 for event in events)
                if oldest:
                    latency.observe(max(0.0, time.time() - oldest))
            except Exception as exc:
                msg = events[0].message
                fatal(f"ingest at {msg.topic}:{msg.partition}@{msg.offset}", exc)
            finally:
                busy = False

    return unstick


class GlobalView(Mapping):
    """A faust GlobalTable as a read-only mapping (the live prices the channel revenue
    is valued at), with what it read cached until the table's store changes (prices
    change rarely and every channel row reads them; a faust Table read costs a store
    lookup and decode)."""

    CACHE_MAX = 100_000

    def __init__(self, table: Any) -> None:
        self.table = table
        self._cache: dict[str, Any] = {}
        self._version = -1

    def get(self, key: str, default: Any = None) -> Any:
        version = self.table.data.version  # a VersionedStore (c360v://)
        if version != self._version or len(self._cache) >= self.CACHE_MAX:
            self._cache.clear()
            self._version = version
        try:
            value = self._cache[key]
        except KeyError:
            value = self._cache[key] = self.table.data.read(key)
        return default if value is None else value

    def __getitem__(self, key: str) -> Any:
        value = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __iter__(self):
        return iter(self.table.keys())

    def __len__(self) -> int:
        return len(self.table)

    def items(self):  # type: ignore[override]
        return self.table.items()


def register_reference(c360: C360) -> Any:
    """Prices and wallet labels, validated (bad records dead-lettered) and sent on to the
    stages that use them, as messages in their input: a price to every profile
    partition (each values at the prices its own input brought, so a batch redone after
    a crash computes the same), a label to the link stage (which blocks labelled
    exchange/contract/bridge/router wallets and tells the profile stage). Prices are
    also kept in a global table (one partition, held by every worker: DESIGN.md) for
    the channel revenue the API and the metrics value at current prices."""
    app, settings = c360.app, c360.settings
    options = {"partitions": 1, "recovery_buffer_size": 1, "options": c360.rocksdb_options}
    prices = app.GlobalTable(
        "prices",
        help="chain:token -> [usd, decimals, symbol, quote time (ms)]",
        store="c360v:prices",  # counts changes: GlobalView caches reads between them
        **options,
    )
    c360.tables["prices"] = prices
    profile_partitions = topics.PROFILE.partition_count(settings)

    stale = METRICS.prices_stale

    def latest() -> int:
        """The latest time a reference record may be dated: this worker's clock + 1 h."""
        return int(time.time() * 1000) + AHEAD_MS

    def price(msg: Any, outbox: Outbox) -> Rejection | None:
        quote = price_entry(msg.key, msg.value, latest())
        if isinstance(quote, Rejection):
            return quote
        value, stale_quote = apply_quote(prices, quote)  # stale: the price held goes on
        if stale_quote:
            stale.inc()
        # every profile partition values at the prices its own input brought
        for partition in range(profile_partitions):
            outbox.internal_at(topics.PROFILE, partition, Price(quote.token, value))
        return None

    def label(msg: Any, outbox: Outbox) -> Rejection | None:
        label = wallet_label(msg.key, msg.value, latest())
        if isinstance(label, Rejection):
            return label
        outbox.internal(topics.LINK, label.wallet, label)
        return None

    reference_agent(c360, topics.PRICES, "price", price)
    reference_agent(c360, topics.LABELS, "labels", label)
    return prices


def reference_agent(
    c360: C360,
    spec: topics.TopicSpec,
    kind: str,
    handle: Callable[[Any, Outbox], Rejection | None],
) -> None:
    """The agent of a reference topic: ``handle`` puts what one record causes into the
    group's outbox (or says why the record is refused: dead-lettered), and a group's
    records go out together, one wait for the broker a group. Waiting for the broker
    after each record, a labels dataset loaded at 320 records/s; in groups at 7,100
    (bench/reference.py, 20,000 labels). Each record is its own segment (source
    ``{suffix}:{partition}``, its offset), so a group sent again after a crash is
    dropped by the receivers; a group is acknowledged only once sent (take_groups)."""
    settings = c360.settings

    @c360.app.agent(c360.topic(spec), name=spec.suffix, concurrency=1)
    async def agent(stream):
        sender = None
        accepted = METRICS.events_in.labels(spec.suffix, kind)
        async for events in take_groups(stream, GROUP_MAX, GROUP_WAIT, GROUP_MAX_BYTES):
            try:
                sender = sender or sender_of(c360)
                outbox = Outbox(settings)
                for event in events:
                    msg = event.message
                    outbox.begin(f"{spec.suffix}:{msg.partition}", msg.offset)
                    # faust writes a table only "during stream iteration": the event
                    # gives its changelog record's partition (faust 0.15, pinned)
                    stream._set_current_event(event)
                    rejection = handle(msg, outbox)
                    if rejection is None:
                        accepted.inc()
                    else:
                        METRICS.dead_letters.labels(spec.suffix, rejection.reason).inc()
                        outbox.dead_letter(msg.topic, msg.partition, msg.offset, rejection)
                stream._set_current_event(None)
                for sent in await outbox.send(sender):
                    await sent.last_offset()
            except Exception as exc:
                msg = events[0].message
                fatal(f"{spec.suffix} at {msg.topic}:{msg.partition}@{msg.offset}", exc)


def register_ticker(c360: C360) -> None:
    """The leader sends ``now`` to every route and profile partition (time is a message):
    at once when it becomes the leader, then every ``tick_interval`` seconds (0: never).

    At once, because a partition without time misjudges what comes before its first
    tick: a new deployment fed history judged every person's lifecycle as of their
    last event, so a minute later the first tick fired the timers of those that had
    fallen due in one burst (after the bench's first phases, 500-900 ms of latency at
    half load), and the route stage remembered duplicates of facts already outside the
    window. faust's timers wait their interval before the first call, so the timer
    polls every second: a worker that is not the leader forgets when it last ticked
    (it ticks at once when it becomes the leader again), and a tick that could not be
    sent is tried again at the next poll (a repeated tick is harmless)."""
    app, settings = c360.app, c360.settings
    if settings.tick_interval == 0:
        return
    last: float | None = None
    failing = False

    @app.timer(interval=max(0.05, min(1.0, settings.tick_interval)), name="ticker")
    async def ticker():
        nonlocal last, failing
        if not app.is_leader():
            last = None
            return
        if last is not None and time.monotonic() - last < settings.tick_interval:
            return
        try:
            await send_tick(c360, int(time.time() * 1000))
        except Exception as exc:
            if not failing:  # once per outage, not once a second
                log.warning("tick not sent, retrying every second: %r", exc)
            failing = True
        else:
            if failing:
                log.warning("tick sent again")
            failing = False
            last = time.monotonic()


async def send_tick(c360: C360, now: int) -> None:
    sender = sender_of(c360)
    for topic, partition, value, headers in tick_records(c360.settings, now):
        await (await sender.send(topic, partition, [(None, value, headers)])).last_offset()
