"""The worker reads committed records only (``read_committed``), without faust's
exactly-once.

A producer with exactly-once (Kafka Connect, Kafka Streams, Flink, Debezium) writes
in transactions, and one it aborts (a task restarted, a write that failed) stays in
the log. A consumer that reads uncommitted records is handed them: c360 ingested an
aborted transaction's events as if they had happened. faust asks for
``read_committed`` only with its own exactly-once processing (``processing_guarantee``,
which commits through a transactional producer), and builds its aiokafka consumer in
its consumer thread: :func:`install` has that consumer built with
``read_committed``, and has the thread's ``highwater`` answer the last stable offset
(the end of what the consumer can read: the first offset of a transaction still
open) instead of the log's end, as faust's does under exactly-once. c360's
consumer-lag metric and ``Rewind.unstick`` (which compares the next offset to apply
with it) read it. faust's livelock check (``verify_event_path``, every 2.5 s) reads the
log's end from aiokafka's state itself, even under exactly-once: behind a transaction
left open it took a partition whose stream had no record for
``stream_processing_timeout`` for a stream that stopped (an ERROR per partition at each
check), so a partition read up to its last stable offset gets only its fetch checks.

The records of an aborted transaction and the markers take offsets that the
consumer skips: the stages and ingest see a hole there, which ``Rewind``'s probe
(also ``read_committed``) finds holds no record, and gives up at once
(stream/shell/rewind.py). A transaction left open holds back what comes after it in
its partition until it ends or the broker aborts it
(``transaction.max.timeout.ms``), as for every ``read_committed`` consumer.

Topics written without transactions (c360's own, its connectors') read the same
either way: their last stable offset is their end.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka.structs import TopicPartition
from faust.types import TP

log = logging.getLogger(__name__)

ISOLATION = "read_committed"


def install(consumer: Any) -> None:
    """Have faust's ``consumer`` (0.15's aiokafka driver) read committed records only;
    a consumer built otherwise (another faust) is left as it is, with a warning."""
    thread = getattr(consumer, "_thread", None)
    create = getattr(thread, "_create_worker_consumer", None)
    ensure = getattr(thread, "_ensure_consumer", None)
    if not callable(create) or not callable(ensure):
        log.warning("faust's consumer is not built as 0.15.3's: it reads uncommitted records")
        return

    def _create_worker_consumer(transport: Any) -> Any:
        kafka = create(transport)
        if getattr(kafka, "_isolation_level", None) is None:
            log.warning("aiokafka's consumer keeps no isolation level: uncommitted records")
            return kafka
        kafka._isolation_level = ISOLATION  # read by its fetcher, built at start()
        return kafka

    def highwater(tp: TP) -> int:
        kafka = ensure()
        stable = kafka.last_stable_offset(tp)
        # None before the first fetch of tp answered, -1 from a broker without it
        return stable if isinstance(stable, int) and stable >= 0 else kafka.highwater(tp)

    verify = getattr(thread, "verify_event_path", None)
    fetching = getattr(thread, "_verify_aiokafka_event_path", None)

    def verify_event_path(now: float, tp: TP) -> None:
        try:
            assignment = ensure()._fetcher._subscriptions.subscription.assignment
            state = assignment.state_value(TopicPartition(tp.topic, tp.partition))
            stable, position = state.lso, state.position
        except Exception:  # not as 0.14's aiokafka keeps it: faust's own check
            stable = position = None
        # read all it can: what is past (a transaction still open) is not to process yet
        if isinstance(stable, int) and isinstance(position, int) and position >= stable >= 0:
            fetching(now, tp)
            return None
        return verify(now, tp)

    thread._create_worker_consumer = _create_worker_consumer
    thread.highwater = highwater
    if callable(verify) and callable(fetching):
        thread.verify_event_path = verify_event_path
