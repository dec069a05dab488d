"""The worker's consumer reads committed records only, without faust's exactly-once
(stream/shell/isolation.py): the aiokafka consumer faust builds asks for
``read_committed``, and the end of a partition is its last stable offset."""

from __future__ import annotations

import asyncio

from faust.types import TP

from stream.settings import Settings
from stream.shell import isolation

TPS = TP("in", 0)


def test_the_workers_aiokafka_consumer_reads_committed_records(tmp_path):
    # faust asks for read_committed only with its own exactly-once: an aborted
    # transaction's records were handed over, and ingested
    from stream.app import create_app

    app = create_app(Settings.from_env({}, data_dir=tmp_path)).app
    thread = app.consumer._thread

    async def build():  # aiokafka builds its consumer in a running loop
        return thread._create_worker_consumer(app.transport)

    assert asyncio.run(build())._isolation_level == "read_committed"


class Kafka:
    """An aiokafka consumer's ends of a partition, as its fetches left them."""

    def __init__(self, stable, high) -> None:
        self.stable, self.high = stable, high

    def last_stable_offset(self, tp):
        return self.stable

    def highwater(self, tp):
        return self.high


class Thread:
    def __init__(self, kafka: Kafka) -> None:
        self.kafka = kafka

    def _create_worker_consumer(self, transport):
        return type("Built", (), {"_isolation_level": "read_uncommitted"})()

    def _ensure_consumer(self):
        return self.kafka

    def highwater(self, tp):
        return self.kafka.highwater(tp)


def test_the_end_of_a_partition_is_its_last_stable_offset_once_known():
    # an open transaction from offset 7: records up to 12 are in the log, but the
    # consumer reads none past 7 until it ends (unstick compared with 12 and sought)
    consumer = type("Consumer", (), {})()
    consumer._thread = Thread(Kafka(stable=7, high=12))
    isolation.install(consumer)
    assert consumer._thread.highwater(TPS) == 7
    assert consumer._thread._create_worker_consumer(None)._isolation_level == "read_committed"
    for unknown in (None, -1):  # before its first fetch answered; a broker without it
        consumer._thread.kafka = Kafka(stable=unknown, high=12)
        assert consumer._thread.highwater(TPS) == 12


def test_a_consumer_built_otherwise_is_left_as_it_is(caplog):
    consumer = type("Consumer", (), {"_thread": object()})()
    isolation.install(consumer)
    assert "uncommitted" in caplog.text
