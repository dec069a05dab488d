"""The Faust agents: a few lines each around the pure core."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import orjson

from stream import topics
from stream.shell.metrics import METRICS

if TYPE_CHECKING:
    from stream.app import C360

log = logging.getLogger(__name__)

INGESTED = tuple(t for t in topics.INPUTS if t.partitions != 1)


def register(c360: C360) -> None:
    app = c360.app
    by_name = {t.name(c360.settings): t for t in topics.ALL}
    source = app.topic(
        *(t.name(c360.settings) for t in INGESTED),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    route = c360.topic(topics.ROUTE)
    dead = c360.topic(topics.DEAD_LETTERS)

    @app.agent(source, name="ingest", concurrency=1)
    async def ingest(stream):
        async for event in stream.events():
            msg = event.message
            spec = by_name[msg.topic]
            try:
                value = orjson.loads(msg.value)
            except orjson.JSONDecodeError as exc:
                METRICS.dead_letters.labels(spec.suffix, "not_json").inc()
                await dead.send(
                    key=msg.topic.encode(),
                    value=orjson.dumps(
                        {
                            "source": {
                                "topic": msg.topic,
                                "partition": msg.partition,
                                "offset": msg.offset,
                            },
                            "reason": "not_json",
                            "message": str(exc),
                        }
                    ),
                )
                continue
            events = value if isinstance(value, list) else [value]
            METRICS.events_in.labels(spec.suffix, "any").inc(len(events))
            await route.send(key=msg.key, value=orjson.dumps(events), partition=msg.partition)
