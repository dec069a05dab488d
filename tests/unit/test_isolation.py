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


def test_faust_says_no_stream_is_stalled_behind_an_open_transaction(tmp_path, caplog):
    # faust's livelock check (every 2.5 s) compares the consumer's position with the log's
    # end, not the last stable offset: behind a transaction left open, a partition that
    # had no record for stream_processing_timeout (300 s) was "stopped processing"
    # (an ERROR per partition every check) while nothing it could read was left
    from time import monotonic, time

    from stream.app import create_app

    app = create_app(Settings.from_env({}, data_dir=tmp_path)).app
    thread = app.consumer._thread
    now = monotonic()
    state = type("State", (), {"highwater": 12, "lso": 7, "position": 7})()
    state.timestamp = time() * 1000
    assignment = type("Assignment", (), {"active": True, "state_value": lambda s, tp: state})()
    kafka = type("Kafka", (), {})()
    kafka._fetcher = type("F", (), {})()
    kafka._fetcher._subscriptions = type("S", (), {})()
    kafka._fetcher._subscriptions.subscription = type("Sub", (), {"assignment": assignment})()
    kafka.last_stable_offset = lambda tp: state.lso
    kafka.highwater = lambda tp: state.highwater
    thread._consumer = kafka
    thread.time_started = now - 1000
    app.topics._acking_topics.add(TPS.topic)
    app.monitor.stream_inbound_time[TPS] = now - 1000

    caplog.set_level("ERROR")
    thread.verify_event_path(now, TPS)
    assert "Stream stopped processing" not in caplog.text  # all it can read was read
    state.position = 6  # a record before the open transaction not handed on: faust says so
    thread.verify_event_path(now, TPS)
    assert "Stream stopped processing" in caplog.text
