"""The Faust agents: a few lines each around the pure core."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from stream import topics
from stream.core.ingest import Ingest
from stream.shell.metrics import METRICS
from stream.shell.outbox import Outbox, SendFn

if TYPE_CHECKING:
    from stream.app import C360

log = logging.getLogger(__name__)

# Input topics that ingest reads (prices and labels feed global state instead).
INGESTED = tuple(t for t in topics.INPUTS if t not in (topics.PRICES, topics.LABELS))


def producer_send(c360: C360) -> SendFn:
    """send(topic, key, value, partition) through the app's producer."""
    producer = c360.app.producer

    def send(topic: str, key: bytes | None, value: bytes, partition: int):
        return producer.send(topic, key, value, partition, None, None)

    return send


def register(c360: C360) -> None:
    register_ingest(c360)


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
    events_in = {
        s: {k: METRICS.events_in.labels(s, k) for k in ("rejected",)} for s in suffix_of.values()
    }

    @app.agent(source, name="ingest", concurrency=1)
    async def ingest_agent(stream):
        send = producer_send(c360)
        async for event in stream.events():
            msg = event.message
            suffix = suffix_of[msg.topic]
            out = ingest.record(suffix, msg.value)
            outbox = Outbox(settings)
            for fact in out.facts:
                outbox.internal(topics.ROUTE, fact.ident, fact)
            counters = events_in[suffix]
            for kind, n in out.accepted_by_type.items():
                counter = counters.get(kind)
                if counter is None:
                    counter = counters[kind] = METRICS.events_in.labels(suffix, kind)
                counter.inc(n)
            for rejection in out.rejections:
                METRICS.dead_letters.labels(suffix, rejection.reason).inc()
                outbox.dead_letter(msg.topic, msg.partition, msg.offset, rejection)
            await outbox.send(send)
