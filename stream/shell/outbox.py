"""The Outbox: what one input record makes a stage send, grouped for Kafka.

Internal topics get **one record per destination partition** (a JSON array of
messages; every key in it belongs to that partition, by the producer's own
partitioner). Output topics, which users consume, get one record per message,
keyed as their contract says.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from stream import topics
from stream.contract.outputs import DeadLetter, SourcePosition
from stream.core.ingest import Rejection
from stream.core.partitioner import partition_for
from stream.settings import Settings

SendFn = Callable[[str, bytes | None, bytes, int], Awaitable[Awaitable[Any]]]
"""send(topic, key, value, partition) -> delivery future (faust's producer.send)."""

_encode = msgspec.json.Encoder().encode
MAX_DEAD_LETTER_ORIGINAL = 256 * 1024  # keeps a dead letter under the broker's message limit


class Outbox:
    """Collects the messages of one input record, then sends them in as few records as possible."""

    __slots__ = ("_batches", "_records", "settings")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._batches: dict[tuple[str, int], list[Any]] = {}
        self._records: list[tuple[str, bytes | None, bytes, int]] = []

    def internal(self, spec: topics.TopicSpec, key: str, message: Any) -> None:
        """A message for an internal topic, batched with the others of its partition."""
        n = spec.partition_count(self.settings)
        partition = 0 if n == 1 else partition_for(key, n)
        group = (spec.name(self.settings), partition)
        batch = self._batches.get(group)
        if batch is None:
            self._batches[group] = [message]
        else:
            batch.append(message)

    def record(self, spec: topics.TopicSpec, key: str, payload: Any) -> None:
        """A record of an output topic, keyed by ``key``."""
        n = spec.partition_count(self.settings)
        self._records.append(
            (spec.name(self.settings), key.encode(), _encode(payload), partition_for(key, n))
        )

    def dead_letter(self, topic: str, partition: int, offset: int, rejection: Rejection) -> None:
        """An input that could not be applied, with its original bytes and reason."""
        self.record(topics.DEAD_LETTERS, topic, dead_letter(topic, partition, offset, rejection))

    def __len__(self) -> int:
        return len(self._batches) + len(self._records)

    async def send(self, send: SendFn) -> list[Awaitable[Any]]:
        """Hand everything to the producer; returns the delivery futures."""
        futures = []
        for (name, partition), messages in self._batches.items():
            futures.append(await send(name, None, _encode(messages), partition))
        for name, key, value, partition in self._records:
            futures.append(await send(name, key, value, partition))
        self._batches = {}
        self._records = []
        return futures


def dead_letter(topic: str, partition: int, offset: int, r: Rejection) -> DeadLetter:
    original = r.original
    truncated = r.truncated
    size = r.size or len(original)
    if len(original) > MAX_DEAD_LETTER_ORIGINAL:
        original = original[:MAX_DEAD_LETTER_ORIGINAL]
        truncated = True
    try:
        text, encoding = original.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        import base64

        text, encoding = base64.b64encode(original).decode(), "base64"
    return DeadLetter(
        source=SourcePosition(topic, partition, offset),
        reason=r.reason,
        message=r.message[:2000],
        original=text,
        original_encoding=encoding,  # type: ignore[arg-type]
        original_size=size,
        at=int(time.time() * 1000),
        index=r.index,
        truncated=truncated,
    )


async def gather(futures: list[Awaitable[Any]]) -> None:
    """Wait until every future is delivered (raises the first delivery error)."""
    if futures:
        await asyncio.gather(*futures)
