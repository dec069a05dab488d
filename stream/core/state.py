"""The state a stage sees: a key-value view of its partition, and where its messages go.

A stage is pure: ``process(state, messages, emit)``. It reads and writes
``state`` (a transaction over its partition: every write is a change the shell
commits atomically with the input offset) and sends through ``emit``. Values are
plain data (dicts, lists, str, int, bool, None), stored serialized; the objects a
stage reads are shared (the worker keeps them decoded between groups), so a stage
must ``put`` what it changed and must not change a value it read without putting
it (:class:`MemoryState` checks this).

:class:`MemoryState` is the in-memory implementation used by unit tests, the
simulator and ``c360 replay``; the worker's RocksDB state implements the same
protocol.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Iterator
from typing import Any, Protocol

import msgspec

from stream import topics

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class State(Protocol):
    """A stage's key-value state for one partition."""

    def get(self, key: str) -> Any | None: ...

    def put(self, key: str, value: Any) -> None: ...

    def delete(self, key: str) -> None: ...

    def scan(self, start: str, stop: str, limit: int | None = None) -> Iterator[tuple[str, Any]]:
        """Items with ``start <= key < stop``, in key order (the first ``limit`` of them)."""
        ...


class Emit(Protocol):
    """Where a stage's messages go (the shell's Outbox, or the simulator's bus)."""

    def internal(self, spec: topics.TopicSpec, key: str, message: Any) -> None: ...

    def internal_at(self, spec: topics.TopicSpec, partition: int, message: Any) -> None:
        """A message for one partition of an internal topic (a stage to its own partition)."""
        ...

    def record(self, spec: topics.TopicSpec, key: str, payload: Any) -> None: ...


def prefix_end(prefix: str) -> str:
    """The smallest string greater than every string that starts with ``prefix``."""
    return prefix + "\uffff"


class StateMisuse(AssertionError):
    """A stage changed a value it read without putting it back."""


_DELETED = object()


class MemoryState:
    """An in-memory State whose values round-trip through JSON, like the real one.

    Like the worker's transaction, which stays open across the stage calls of one
    commit interval, it hands out the same object for a key until that key is put
    again — across stage calls too — and encodes what was put at :meth:`commit` (the
    end of a stage call). The commit also checks the rule that sharing relies on:
    every value read in the call and not put back must still encode to what is stored
    (else :class:`StateMisuse`: changed in place, directly or through an object it
    shares with another value, without a put)."""

    __slots__ = ("_data", "_keys", "_objects", "_read", "_writes")

    def __init__(self) -> None:
        self._data: dict[str, bytes] = {}
        self._keys: list[str] | None = []
        self._objects: dict[str, Any] = {}  # the values handed out, as last committed
        self._read: set[str] = set()
        self._writes: dict[str, Any] = {}

    def get(self, key: str) -> Any | None:
        value = self._writes.get(key, self)
        if value is not self:
            return None if value is _DELETED else value
        raw = self._data.get(key)
        if raw is None:
            return None
        self._read.add(key)
        value = self._objects.get(key, self)
        if value is self:
            value = self._objects[key] = _decode(raw)
        return value

    def put(self, key: str, value: Any) -> None:
        self._writes[key] = value

    def delete(self, key: str) -> None:
        self._writes[key] = _DELETED

    def commit(self) -> None:
        """End of a stage call: check what was read, store what was written."""
        for key in self._read:
            if key not in self._writes and _encode(self._objects[key]) != self._data[key]:
                raise StateMisuse(f"{key!r} was changed in place but not put")
        for key, value in self._writes.items():
            if value is _DELETED:
                self._objects.pop(key, None)
                if self._data.pop(key, None) is not None:
                    self._keys = None
            else:
                if key not in self._data:
                    self._keys = None
                self._data[key] = _encode(value)
                self._objects[key] = value
        self._read.clear()
        self._writes.clear()

    def scan(self, start: str, stop: str, limit: int | None = None) -> Iterator[tuple[str, Any]]:
        items = self._scan(start, stop)
        return items if limit is None else itertools.islice(items, limit)

    def _scan(self, start: str, stop: str) -> Iterator[tuple[str, Any]]:
        if self._keys is None:
            self._keys = sorted(self._data)
        keys = self._keys
        i = bisect.bisect_left(keys, start)
        selected = []
        while i < len(keys) and keys[i] < stop:
            selected.append(keys[i])
            i += 1
        pending = [k for k in self._writes if start <= k < stop and k not in self._data]
        for key in sorted([*selected, *pending]):
            value = self._writes.get(key, self)
            if value is self:
                raw = self._data.get(key)
                if raw is not None:
                    yield key, _decode(raw)
            elif value is not _DELETED:
                yield key, value

    def __len__(self) -> int:
        self.commit()
        return len(self._data)

    def items(self) -> Iterator[tuple[str, Any]]:
        self.commit()
        for key in sorted(self._data):
            yield key, _decode(self._data[key])


class Collected:
    """An Emit that keeps everything in lists (tests, the simulator's stage calls)."""

    def __init__(self) -> None:
        self.internal_messages: list[tuple[topics.TopicSpec, str, Any]] = []
        self.records: list[tuple[topics.TopicSpec, str, Any]] = []

    def internal(self, spec: topics.TopicSpec, key: str, message: Any) -> None:
        self.internal_messages.append((spec, key, message))

    def internal_at(self, spec: topics.TopicSpec, partition: int, message: Any) -> None:
        self.internal_messages.append((spec, f"#{partition}", message))

    def record(self, spec: topics.TopicSpec, key: str, payload: Any) -> None:
        self.records.append((spec, key, payload))

    def of(self, spec: topics.TopicSpec) -> list[Any]:
        """Messages and records sent to one topic, in order."""
        return [m for s, _, m in self.internal_messages + self.records if s is spec]
