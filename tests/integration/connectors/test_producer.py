import asyncio

import orjson
import pytest

from connectors.producer import BatchProducer
from stream import admin, topics
from tests.support.kafka import read_until

pytestmark = pytest.mark.integration


def test_flush_delivers_batched_records(settings):
    async def go():
        await admin.ensure_topics(settings, (topics.WEB_EVENTS,))
        p = BatchProducer(settings.replace(batch_max_events=10))
        await p.start()
        for i in range(25):
            p.add(topics.WEB_EVENTS, f"d-{i % 3}", {"i": i})
        assert await p.flush() == 25
        await p.stop()
        return p.sent_records

    records_sent = asyncio.run(go())
    records = asyncio.run(
        read_until(
            settings.kafka_bootstrap,
            topics.WEB_EVENTS.name(settings),
            lambda rs: sum(len(orjson.loads(r.value)) for r in rs) >= 25,
        )
    )
    assert len(records) == records_sent
    assert sorted(e["i"] for r in records for e in orjson.loads(r.value)) == list(range(25))
