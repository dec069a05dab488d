"""``c360 resend``: a reference topic's current records, produced to it again.

What the topic holds now is the last record of every key (compacted or not yet); those
records come again, in their order, with new offsets (so the stages, which drop what
they applied by offset, apply them), a deletion (empty value) included."""

from __future__ import annotations

import asyncio

import pytest

from stream import admin, topics
from stream.cli import main
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
    assert "does not exist" in capsys.readouterr().err


def test_resend_of_an_empty_topic_sends_nothing(settings, monkeypatch, capsys):
    asyncio.run(admin.ensure_topics(settings))
    use(monkeypatch, settings)
    assert main(["resend", "prices"]) == 0
    assert "0 prices records produced again" in capsys.readouterr().out
    assert asyncio.run(read_all(settings.kafka_bootstrap, topics.PRICES.name(settings))) == []
