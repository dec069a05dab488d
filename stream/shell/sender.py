"""Sending records in bulk: aiokafka ``create_batch()`` / ``send_batch()`` per partition.

One ``send()`` per record costs a future, a queue hand-off and bookkeeping each;
a batch of records for one partition is one of each (measured: ~124k events/s
for a batch-committed stage with send_batch, ~44k with a send per key).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from aiokafka import AIOKafkaProducer

Record = tuple[bytes | None, bytes | None, list[tuple[str, bytes]] | None]
"""(key, value, headers)"""


class Sent:
    """The producer batches of one send: their futures and record counts."""

    __slots__ = ("batches",)

    def __init__(self) -> None:
        self.batches: list[tuple[Awaitable[Any], int]] = []

    def futures(self) -> list[Awaitable[Any]]:
        return [f for f, _ in self.batches]

    async def last_offset(self) -> int | None:
        """Wait for delivery; the offset of the last record (None if nothing was sent)."""
        if not self.batches:
            return None
        results = await asyncio.gather(*self.futures())
        return results[-1].offset + self.batches[-1][1] - 1


class BatchSender:
    """Sends the records of one partition as few producer batches as possible."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self.producer = producer

    async def send(self, topic: str, partition: int, records: list[Record]) -> Sent:
        """Queue ``records`` for ``topic``/``partition`` in as few batches as fit."""
        sent = Sent()
        batch = self.producer.create_batch()
        count = 0
        for key, value, headers in records:
            if batch.append(key=key, value=value, timestamp=None, headers=headers or []) is None:
                if count == 0:
                    raise ValueError(f"a record for {topic} is larger than a producer batch")
                sent.batches.append(
                    (await self.producer.send_batch(batch, topic, partition=partition), count)
                )
                batch = self.producer.create_batch()
                count = 0
                if (
                    batch.append(key=key, value=value, timestamp=None, headers=headers or [])
                    is None
                ):
                    raise ValueError(f"a record for {topic} is larger than a producer batch")
            count += 1
        if count:
            sent.batches.append(
                (await self.producer.send_batch(batch, topic, partition=partition), count)
            )
        return sent
