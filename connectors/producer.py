"""Batched production for connectors: many events per Kafka record.

Faust pays ~75 µs to dispatch each record whatever it holds, so connectors group
the events of one flush by destination partition (the producer's own murmur2
partitioner over each event's key) and send one record per partition: a JSON
array of up to ``settings.batch_max_events`` events, under the record size limit.
``flush()`` returns only when the broker has acknowledged everything (acks=all,
idempotent producer), so a connector may advance its checkpoint after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import Any

import msgspec
from aiokafka import AIOKafkaProducer
from prometheus_client import Gauge

from stream import topics
from stream.core.partitioner import partition_for
from stream.settings import Settings

log = logging.getLogger(__name__)
_encode = msgspec.json.Encoder().encode

ARRAY_OVERHEAD = 2
"""Bytes a record adds around its events (``[`` and ``]``): an event fits a record of
``record_max_bytes`` only when it is at most ``record_max_bytes - ARRAY_OVERHEAD`` bytes."""


class RecordTooLarge(ValueError):
    """An event that cannot fit a record of ``C360_RECORD_MAX_BYTES`` even alone: the
    worker would dead-letter it as ``too_large``, so it is never sent."""


PROBE_INTERVAL = 15.0
"""Seconds between the producer's checks that Kafka answers (:meth:`BatchProducer.probe`)."""
PROBE_TIMEOUT = 10.0
"""Seconds a check waits for Kafka's metadata before it counts as no answer."""


class BatchProducer:
    """Buffers events per (topic, partition) and sends them as batched records."""

    def __init__(
        self, settings: Settings, *, client_id: str = "c360-connector", up: Gauge | None = None
    ) -> None:
        self.settings = settings
        self.client_id = client_id
        # the connector's c360_connector_up (labelled): 0 when a delivery fails, 1 when
        # one succeeds, so that the gauge says whether the connector can produce; an
        # idle connector learns it from a periodic probe (see probe)
        self.up = up
        self._failed = False  # the last delivery failed: only a delivery clears it
        self._watch: asyncio.Task | None = None
        self._producer: AIOKafkaProducer | None = None
        self._pending: dict[tuple[str, int], list[bytes]] = {}
        self.sent_events = 0
        self.sent_records = 0

    async def start(self) -> None:
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            client_id=self.client_id,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            max_request_size=topics.MAX_RECORD_BYTES,  # C360_RECORD_MAX_BYTES and more
        )
        await self._producer.start()
        self._watch = asyncio.create_task(self._probing(PROBE_INTERVAL))

    async def _probing(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            await self.probe()

    async def probe(self, timeout: float = PROBE_TIMEOUT) -> bool:
        """Whether Kafka answers a metadata request within ``timeout`` seconds.

        Moves ``up``: to 0 when Kafka does not answer (an idle connector would otherwise
        say 1 until its next delivery failed), back to 1 when it answers again, unless
        the last delivery failed (a broker that answers metadata may still refuse
        records: only a delivery that succeeds clears that)."""
        if self._producer is None:
            return False
        try:
            await asyncio.wait_for(self._producer.client.fetch_all_metadata(), timeout)
        except Exception as exc:
            if self.up is not None and self.up._value.get() != 0:
                log.warning("Kafka does not answer (%s): c360_connector_up is 0", exc)
            if self.up is not None:
                self.up.set(0)
            return False
        if self.up is not None and not self._failed:
            self.up.set(1)
        return True

    def mark_failed(self) -> None:
        """A delivery did not complete in time: ``up`` is 0 until one succeeds (a probe
        alone does not set it back: a broker may answer metadata and hold records)."""
        self._failed = True
        if self.up is not None:
            self.up.set(0)

    async def stop(self) -> None:
        """Flush what is buffered, then close."""
        if self._watch is not None:
            self._watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watch
            self._watch = None
        if self._producer is None:
            return
        try:
            await self.flush()
        finally:
            await self._producer.stop()
            self._producer = None

    def _group(
        self,
        groups: dict[tuple[str, int], list[bytes]],
        spec: topics.TopicSpec,
        key: str,
        event: Any,
    ) -> None:
        n = spec.partition_count(self.settings)
        group = (spec.name(self.settings), 0 if n == 1 else partition_for(key, n))
        groups.setdefault(group, []).append(event if isinstance(event, bytes) else _encode(event))

    def add(self, spec: topics.TopicSpec, key: str, event: Any) -> None:
        """Buffer one event (a struct or a JSON-able value) for the partition of ``key``."""
        self._group(self._pending, spec, key, event)

    def extend(self, spec: topics.TopicSpec, keyed: Iterable[tuple[str, Any]]) -> None:
        for key, event in keyed:
            self.add(spec, key, event)

    @property
    def buffered(self) -> int:
        return sum(len(v) for v in self._pending.values())

    async def flush(self) -> int:
        """Send every buffered event and wait for the broker's acknowledgements.

        Returns the number of events sent. Raises if any record was not delivered
        (the caller must not advance its checkpoint then).
        """
        pending, self._pending = self._pending, {}
        return await self._send(pending)

    async def deliver(self, spec: topics.TopicSpec, keyed: Iterable[tuple[str, Any]]) -> int:
        """Send these events now, batched per partition, and wait for their acknowledgements.

        Independent of the buffer of :meth:`add`/:meth:`flush`: concurrent callers (the
        requests of an HTTP connector) each send and await only their own records, while
        the Kafka client still groups records of concurrent callers into its requests.
        Returns the number of events; raises if any record was not delivered.
        """
        groups: dict[tuple[str, int], list[bytes]] = {}
        for key, event in keyed:
            self._group(groups, spec, key, event)
        return await self._send(groups)

    def _check_sizes(self, groups: dict[tuple[str, int], list[bytes]]) -> None:
        """Raise :class:`RecordTooLarge` before anything is sent when one event cannot fit
        a record on its own."""
        limit = self.settings.record_max_bytes - ARRAY_OVERHEAD
        for (topic, _), items in groups.items():
            for item in items:
                if len(item) > limit:
                    raise RecordTooLarge(
                        f"an event of {len(item)} bytes for {topic} cannot fit a record: "
                        f"C360_RECORD_MAX_BYTES={self.settings.record_max_bytes} leaves "
                        f"{limit} bytes per event"
                    )

    async def _send(self, groups: dict[tuple[str, int], list[bytes]]) -> int:
        if self._producer is None:
            raise RuntimeError("the producer is not started")
        self._check_sizes(groups)
        futures = []
        events = 0
        try:
            for (topic, partition), items in groups.items():
                for record in self._records(items):
                    futures.append(await self._producer.send(topic, record, partition=partition))
                    self.sent_records += 1
                events += len(items)
            if futures:
                await asyncio.gather(*futures)
        except Exception:
            self.mark_failed()
            raise
        if futures:
            self._failed = False
            if self.up is not None:
                self.up.set(1)
        self.sent_events += events
        return events

    def _records(self, items: list[bytes]) -> Iterable[bytes]:
        """Split items into JSON arrays within the count and size limits."""
        limit_n = self.settings.batch_max_events
        limit_bytes = self.settings.record_max_bytes - ARRAY_OVERHEAD
        batch: list[bytes] = []
        size = 0
        for item in items:
            if batch and (len(batch) >= limit_n or size + len(item) + 1 > limit_bytes):
                yield b"[" + b",".join(batch) + b"]"
                batch, size = [], 0
            batch.append(item)
            size += len(item) + 1
        if batch:
            yield b"[" + b",".join(batch) + b"]"
