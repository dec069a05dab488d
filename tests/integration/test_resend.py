"""``c360 resend``: a reference topic's current records, produced to it again.

What the topic holds now is the last record of every key (compacted or not yet); those
records come again, in their order, with new offsets (so the stages, which drop what
they applied by offset, apply them), a deletion (empty value) included."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from stream import admin, topics
from stream import resend as resend_module
from stream.cli import main
from stream.resend import current_records
from tests.support.kafka import produce, read_all

pytestmark = pytest.mark.integration


def use(monkeypatch, settings) -> None:
    """The command reads its settings from the environment: this test's."""
    monkeypatch.setenv("C360_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("C360_TOPIC_PREFIX", settings.topic_prefix)


def test_resend_produces_the_last_record_of_every_key_again(settings, monkeypatch, capsys):
    asyncio.run(admin.ensure_topics(settings))
    name = topics.LABELS.name(settings)
    sent = [
        (b"1:0xaa", b'{"v": 1}'),
        (b"1:0xbb", b'{"v": 2}'),
        (b"1:0xaa", b'{"v": 3}'),  # replaces the first
        (b"1:0xcc", None),  # a deletion
    ]
    asyncio.run(produce(settings.kafka_bootstrap, name, sent))
    use(monkeypatch, settings)

    assert main(["resend", "labels"]) == 0
    assert "3 labels records produced again" in capsys.readouterr().out

    records = asyncio.run(read_all(settings.kafka_bootstrap, name))
    assert [(r.offset, r.key, r.value) for r in records[len(sent) :]] == [
        (4, b"1:0xbb", b'{"v": 2}'),
        (5, b"1:0xaa", b'{"v": 3}'),
        (6, b"1:0xcc", None),
    ]


def test_resend_of_a_missing_topic_fails_clearly(settings, monkeypatch, capsys):
    use(monkeypatch, settings)
    assert main(["resend", "prices"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "cannot reach" not in err


def test_resend_of_an_empty_topic_sends_nothing(settings, monkeypatch, capsys):
    asyncio.run(admin.ensure_topics(settings))
    use(monkeypatch, settings)
    assert main(["resend", "prices"]) == 0
    assert "0 prices records produced again" in capsys.readouterr().out
    assert asyncio.run(read_all(settings.kafka_bootstrap, topics.PRICES.name(settings))) == []


def test_resend_reads_a_transactional_topic_to_its_end(settings, monkeypatch, capsys):
    """A transaction's commit marker takes the last offset: the read still ends."""
    asyncio.run(admin.ensure_topics(settings))
    name = topics.LABELS.name(settings)

    async def transactional() -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=settings.kafka_bootstrap, transactional_id=f"{name}-tx"
        )
        await producer.start()
        try:
            async with producer.transaction():
                await producer.send(name, b'{"v": 1}', key=b"1:0xaa", partition=0)
        finally:
            await producer.stop()

    asyncio.run(transactional())
    records = asyncio.run(asyncio.wait_for(current_records(settings, topics.LABELS), 20))
    assert records == [(0, b"1:0xaa", b'{"v": 1}')]


def test_resend_keeps_a_record_produced_while_it_runs(settings, monkeypatch):
    """A record the topic's producers write after the read (a newer value of a key)
    stays the key's last record: the older one produced again does not replace it."""
    asyncio.run(admin.ensure_topics(settings))
    name = topics.LABELS.name(settings)
    asyncio.run(produce(settings.kafka_bootstrap, name, [(b"1:0xaa", b'{"v": 1}')]))
    read = resend_module.current_records

    async def read_then_a_newer_record(settings_, spec):
        records = await read(settings_, spec)
        await produce(settings.kafka_bootstrap, name, [(b"1:0xaa", b'{"v": 2}')])
        return records

    monkeypatch.setattr(resend_module, "current_records", read_then_a_newer_record)
    asyncio.run(resend_module.resend(settings, topics.LABELS))

    records = asyncio.run(read_all(settings.kafka_bootstrap, name))
    last = {r.key: r.value for r in records}
    assert last[b"1:0xaa"] == b'{"v": 2}'
