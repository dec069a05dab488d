"""The Outbox: what one input record makes a stage send, grouped for Kafka.

Internal topics get **one record per destination partition** (a JSON array of
messages; every key in it belongs to that partition, by the producer's own
partitioner). Output topics, which users consume, get one record per message,
keyed as their contract says. Every record carries the headers ``c360-src``
(the sending stage and partition) and ``c360-seq`` (the input offset it came
from): a receiving stage drops a record it has already applied (a replay after a
crash), which makes the internal hops exactly-once.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import msgspec

from stream import topics
from stream.contract.outputs import DeadLetter, SourcePosition
from stream.core.ingest import Rejection
from stream.core.partitioner import partition_for
from stream.settings import Settings
from stream.shell.sender import BatchSender, Sent

_encode = msgspec.json.Encoder().encode
MAX_DEAD_LETTER_ORIGINAL = 256 * 1024  # keeps a dead letter under the broker's message limit


class Outbox:
    """Collects the messages of one input record, then sends them in as few records as possible."""

    __slots__ = ("_batches", "_records", "headers", "settings")

    def __init__(self, settings: Settings, source: str = "", seq: int = 0) -> None:
        self.settings = settings
        self.headers = [("c360-src", source.encode()), ("c360-seq", str(seq).encode())]
        self._batches: dict[tuple[str, int], list[Any]] = {}
        self._records: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}

    def internal(self, spec: topics.TopicSpec, key: str, message: Any) -> None:
        """A message for an internal topic, batched with the others of its partition."""
        n = spec.partition_count(self.settings)
        group = (spec.name(self.settings), 0 if n == 1 else partition_for(key, n))
        batch = self._batches.get(group)
        if batch is None:
            self._batches[group] = [message]
        else:
            batch.append(message)

    def record(self, spec: topics.TopicSpec, key: str, payload: Any) -> None:
        """A record of an output topic, keyed by ``key``."""
        n = spec.partition_count(self.settings)
        group = (spec.name(self.settings), partition_for(key, n))
        self._records.setdefault(group, []).append((key.encode(), _encode(payload)))

    def dead_letter(self, topic: str, partition: int, offset: int, rejection: Rejection) -> None:
        """An input that could not be applied, with its original bytes and reason."""
        self.record(topics.DEAD_LETTERS, topic, dead_letter(topic, partition, offset, rejection))

    def __len__(self) -> int:
        return len(self._batches) + sum(len(r) for r in self._records.values())

    def counts(self) -> dict[str, int]:
        """Messages and records per topic name (for metrics)."""
        out: dict[str, int] = {}
        for (name, _), messages in self._batches.items():
            out[name] = out.get(name, 0) + len(messages)
        for (name, _), records in self._records.items():
            out[name] = out.get(name, 0) + len(records)
        return out

    async def send(self, sender: BatchSender) -> list[Sent]:
        """Hand everything to the producer (one producer batch per partition)."""
        sent = []
        headers = self.headers
        for (name, partition), messages in self._batches.items():
            sent.append(await sender.send(name, partition, [(None, _encode(messages), headers)]))
        for (name, partition), records in self._records.items():
            sent.append(await sender.send(name, partition, [(k, v, headers) for k, v in records]))
        self._batches = {}
        self._records = {}
        return sent


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


def source_of(headers: Any) -> tuple[str | None, int]:
    """The (c360-src, c360-seq) headers of a received record, if any."""
    src = None
    seq = -1
    for name, value in headers or ():
        if name == "c360-src":
            src = value.decode()
        elif name == "c360-seq":
            seq = int(value)
    return src, seq
