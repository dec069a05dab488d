"""The Faust agents: a few lines each around the pure core.

ingest (input topics) -> route (by identifier) -> link (one partition) ->
profile (by person); labels feed the link stage; a leader timer sends ticks.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import msgspec

from stream import topics
from stream.core.aggregate import Aggregator
from stream.core.ingest import Ingest, Rejection
from stream.core.link import LinkStage
from stream.core.messages import DECODERS, Tick
from stream.core.profile import ProfileStage
from stream.core.reference import wallet_label
from stream.core.route import RouteStage
from stream.shell.metrics import METRICS
from stream.shell.outbox import Outbox
from stream.shell.sender import BatchSender
from stream.shell.stage import StageRunner, fatal

if TYPE_CHECKING:
    from stream.app import C360

log = logging.getLogger(__name__)

# Input topics that ingest reads (prices and labels feed state instead).
INGESTED = tuple(t for t in topics.INPUTS if t not in (topics.PRICES, topics.LABELS))


def register(c360: C360) -> None:
    """Declare every table and agent of a worker."""
    register_ingest(c360)
    register_labels(c360)
    c360.stages["route"] = stage(c360, "route", topics.ROUTE, RouteStage(c360.rules).process)
    c360.stages["link"] = stage(c360, "link", topics.LINK, LinkStage(c360.rules).process)
    c360.stages["profile"] = stage(
        c360, "profile", topics.PROFILE, ProfileStage(Aggregator()).process
    )
    register_ticker(c360)

    @c360.app.on_rebalance_complete.connect
    async def _forget_positions(sender: Any, **kwargs: Any) -> None:
        for runner in c360.stages.values():
            runner.forget(set(range(c360.settings.partitions)))


def sender_of(c360: C360) -> BatchSender:
    """A BatchSender on the app's own (idempotent, acks=all) producer."""
    return BatchSender(c360.app.producer._ensure_producer())


def stage(c360: C360, name: str, spec: topics.TopicSpec, process: Any) -> StageRunner:
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
    runner = StageRunner(
        name, settings, table, process, DECODERS[spec.suffix].decode, lambda: sender_of(c360)
    )

    async def agent(stream):
        async for event in stream.events():
            await runner.handle(event.message)

    c360.app.agent(c360.topic(spec), name=f"{name}-stage", concurrency=1)(agent)
    return runner


def register_ingest(c360: C360) -> None:
    """Ingest: validate and normalize input records into facts keyed by identifier."""
    app, settings = c360.app, c360.settings
    ingest = Ingest(
        c360.rules, batch_max=settings.batch_max_events, record_max=settings.record_max_bytes
    )
    suffix_of = {t.name(settings): t.suffix for t in INGESTED}
    source = app.topic(
        *suffix_of, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
    )
    counters: dict[tuple[str, str], Any] = {}

    def count(suffix: str, kind: str, n: int) -> None:
        counter = counters.get((suffix, kind))
        if counter is None:
            counter = counters[(suffix, kind)] = METRICS.events_in.labels(suffix, kind)
        counter.inc(n)

    @app.agent(source, name="ingest", concurrency=1)
    async def ingest_agent(stream):
        sender = None
        async for event in stream.events():
            msg = event.message
            try:
                sender = sender or sender_of(c360)
                suffix = suffix_of[msg.topic]
                out = ingest.record(suffix, msg.value)
                outbox = Outbox(settings, f"ingest:{suffix}:{msg.partition}", msg.offset)
                for fact in out.facts:
                    outbox.internal(topics.ROUTE, fact.ident, fact)
                for kind, n in out.accepted_by_type.items():
                    count(suffix, kind, n)
                for rejection in out.rejections:
                    METRICS.dead_letters.labels(suffix, rejection.reason).inc()
                    outbox.dead_letter(msg.topic, msg.partition, msg.offset, rejection)
                for sent in await outbox.send(sender):
                    await sent.last_offset()
            except Exception as exc:
                fatal(f"ingest at {msg.topic}:{msg.partition}@{msg.offset}", exc)


def register_labels(c360: C360) -> None:
    """Wallet labels (one partition) become Label messages for the link stage."""
    app, settings = c360.app, c360.settings

    @app.agent(c360.topic(topics.LABELS), name="labels", concurrency=1)
    async def labels_agent(stream):
        sender = None
        async for event in stream.events():
            msg = event.message
            try:
                sender = sender or sender_of(c360)
                outbox = Outbox(settings, f"labels:{msg.partition}", msg.offset)
                label = wallet_label(msg.key, msg.value)
                if isinstance(label, Rejection):
                    METRICS.dead_letters.labels(topics.LABELS.suffix, label.reason).inc()
                    outbox.dead_letter(msg.topic, msg.partition, msg.offset, label)
                else:
                    count = METRICS.events_in.labels(topics.LABELS.suffix, "labels")
                    count.inc()
                    outbox.internal(topics.LINK, label.wallet, label)
                for sent in await outbox.send(sender):
                    await sent.last_offset()
            except Exception as exc:
                fatal(f"labels at {msg.topic}:{msg.partition}@{msg.offset}", exc)


def register_ticker(c360: C360) -> None:
    """The leader sends ``now`` to every route and profile partition (time is a message)."""
    app, settings = c360.app, c360.settings

    @app.timer(interval=settings.tick_interval, on_leader=True, name="ticker")
    async def ticker():
        try:
            await send_tick(c360, int(time.time() * 1000))
        except Exception as exc:
            log.warning("tick not sent: %r", exc)


async def send_tick(c360: C360, now: int) -> None:
    sender = sender_of(c360)
    body = msgspec.json.encode([Tick(now)])
    headers = [("c360-src", b"ticker"), ("c360-seq", str(now).encode())]
    for spec in (topics.ROUTE, topics.PROFILE):
        name = spec.name(c360.settings)
        for partition in range(spec.partition_count(c360.settings)):
            await (await sender.send(name, partition, [(None, body, headers)])).last_offset()
