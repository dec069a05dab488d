"""The ``c360`` commands against a broker that answers, but lacks or refuses what they
need: they say what is wrong, not that Kafka cannot be reached, and they say it soon."""

from __future__ import annotations

import asyncio
import time

import pytest

from stream import admin, topics
from stream.cli import main
from tests.support.kafka import read_all

pytestmark = pytest.mark.integration

NOW = "1790000000000"


def use(monkeypatch, settings, **more: str) -> None:
    """The commands read their settings from the environment: this test's."""
    monkeypatch.setenv("C360_KAFKA_BOOTSTRAP", settings.kafka_bootstrap)
    monkeypatch.setenv("C360_TOPIC_PREFIX", settings.topic_prefix)
    monkeypatch.setenv("C360_APP_ID", settings.app_id)
    monkeypatch.setenv("C360_PARTITIONS", str(settings.partitions))
    for name, value in more.items():
        monkeypatch.setenv(name, value)


def test_a_tick_to_a_deployment_without_its_topics_says_so_at_once(settings, monkeypatch, capsys):
    use(monkeypatch, settings)
    started = time.monotonic()
    assert main(["tick", "--now", NOW]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "cannot reach" not in err
    # it waited for the topic's metadata for the producer's request timeout (40 s)
    assert time.monotonic() - started < 15


def test_a_tick_to_topics_of_another_partition_count_sends_nothing(settings, monkeypatch, capsys):
    asyncio.run(admin.ensure_topics(settings))  # two partitions
    use(monkeypatch, settings, C360_PARTITIONS="4")
    assert main(["tick", "--now", NOW]) == 1
    err = capsys.readouterr().err
    assert "has 2 partitions, settings say 4" in err and "cannot reach" not in err
    # not a tick to some partitions and none to the others
    assert asyncio.run(read_all(settings.kafka_bootstrap, topics.ROUTE.name(settings))) == []


@pytest.mark.parametrize("argv", [["topics"], ["generate", "--produce", "--events", "10"]])
def test_topics_the_broker_refuses_to_create_say_why(argv, settings, monkeypatch, capsys):
    use(monkeypatch, settings, C360_REPLICATION="100")  # more copies than brokers
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert "replication factor of 100" in err and "cannot reach" not in err
