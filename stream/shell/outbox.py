"""The Outbox: what a group of input records makes a stage send, grouped for Kafka.

Internal topics get **one record per destination partition** per group (more when
it would exceed ``RECORD_MAX_BYTES``): a list of segments ``[source, seq,
[messages]]``, one per input record that produced messages for that partition (see
:mod:`stream.core.messages`); every key in it
belongs to that partition, by the producer's own partitioner. Output topics,
which users consume, get one record per message, keyed as their contract says.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Iterator
from typing import Any

import msgspec

from stream import topics
from stream.contract.outputs import DeadLetter, SourcePosition
from stream.core.ingest import Rejection
from stream.core.messages import encode_records
from stream.core.partitioner import partition_for
from stream.settings import Settings
from stream.shell.sender import BatchSender, Sent

_encode = msgspec.json.Encoder().encode
MAX_DEAD_LETTER_ORIGINAL = 256 * 1024  # keeps a dead letter under the broker's message limit


class Outbox:
    """Collects the messages of a group of input records, then sends them in few records."""

    __slots__ = ("_records", "_segments", "seq", "settings", "source")

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.source = ""
        self.seq = 0
        self._segments: dict[tuple[str, int], list[list[Any]]] = {}
        self._records: dict[tuple[str, int], list[tuple[bytes, bytes]]] = {}

    def begin(self, source: str, seq: int) -> None:
        """Messages from now on come from input record ``seq`` of ``source``."""
        self.source, self.seq = source, seq

    def internal(self, spec: topics.TopicSpec, key: str, message: Any) -> None:
        """A message for an internal topic, batched with the others of its partition."""
        n = spec.partition_count(self.settings)
        self.internal_at(spec, 0 if n == 1 else partition_for(key, n), message)

    def internal_at(self, spec: topics.TopicSpec, partition: int, message: Any) -> None:
        """A message for one partition of an internal topic."""
        group = (spec.name(self.settings), partition)
        segments = self._segments.get(group)
        if segments is None:
            self._segments[group] = [[self.source, self.seq, [message]]]
            return
        last = segments[-1]
        if last[1] == self.seq and last[0] == self.source:
            last[2].append(message)
        else:
            segments.append([self.source, self.seq, [message]])

    def record(self, spec: topics.TopicSpec, key: str, payload: Any) -> None:
        """A record of an output topic, keyed by ``key``."""
        n = spec.partition_count(self.settings)
        group = (spec.name(self.settings), partition_for(key, n))
        self._records.setdefault(group, []).append((key.encode(), _encode(payload)))

    def dead_letter(self, topic: str, partition: int, offset: int, rejection: Rejection) -> None:
        """An input that could not be applied, with its original bytes and reason."""
        self.record(topics.DEAD_LETTERS, topic, dead_letter(topic, partition, offset, rejection))

    def __len__(self) -> int:
        return len(self._segments) + sum(len(r) for r in self._records.values())

    def internal_records(self) -> Iterator[tuple[tuple[str, int], list[bytes]]]:
        """Per internal (topic, partition): its segments, encoded as records."""
        for destination, segments in self._segments.items():
            yield destination, encode_records(segments)

    async def send(self, sender: BatchSender) -> list[Sent]:
        """Hand everything to the producer (one producer batch per partition)."""
        sent = []
        for (name, partition), values in self.internal_records():
            records = [(None, value, None) for value in values]
            sent.append(await sender.send(name, partition, records))
        for (name, partition), records in self._records.items():
            sent.append(await sender.send(name, partition, [(k, v, None) for k, v in records]))
        self._segments = {}
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
        # JSON writes a control character in six: base64, at 4/3, is then smaller (a
        # megabyte of them was a 1.5 MiB dead letter, over a default broker's limit)
        if len(_encode(text)) > len(original) * 4 // 3 + 64:
            text, encoding = base64.b64encode(original).decode(), "base64"
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
