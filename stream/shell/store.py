"""The batch state layer: a faust Store whose writes are committed a batch at a time.

faust writes a table key by key: a RocksDB put and a changelog send (with its
future and log record) per write, ~130 µs each. Here a stage works on a
:class:`Txn` (the core's ``State``) over one partition database, and its commit
(:meth:`BatchStore.prepare`, then :meth:`BatchStore.apply_local`, driven by
:class:`~stream.shell.stage.StageRunner`) applies the whole batch at once:

1. every changed key becomes one changelog record, plus a **marker** record that
   carries the input offset; all are appended to one aiokafka ``BatchBuilder``
   and sent with ``send_batch`` to the table's changelog partition;
2. once the broker acknowledged them (acks=all), one rocksdict ``WriteBatch``
   writes the changes, the input offset and the changelog offset — state, input
   position and changelog position move together, atomically.

Recovery, standby replicas and table routing stay faust's: the store is a
subclass of faust's RocksDB store, registered as ``c360://``. Replaying a
changelog applies whole groups only (the records of one commit end with their
marker), so a commit interrupted half-sent is never half-applied; the redo of
that batch rewrites the same keys.

The local database is written without RocksDB's write-ahead log: the changelog is
the log. A crash loses the memtable, and with it the newest groups, but the
changelog offset of the last group sits in the same WriteBatch as that group's
changes and input offset, so what survives is a consistent earlier point and
recovery replays the changelog from there (faust flushes the memtable when it
closes a database on a graceful stop).

A stage's Txn reads the database and keeps what it decoded for as long as it is open
(one commit interval, see stream.shell.stage), so a row read group after group inside
that interval is decoded once. Readers outside the stage (the API) use
:meth:`BatchStore.reader`, which reads the database only, so they never see a group's
uncommitted work.

Replay applies everything read up to a marker, not a counted group: changelogs are
compacted, which keeps only the newest marker and the newest value of each key, so
old groups dissolve, and "everything up to the last marker" is what stays right.
The records an interrupted commit sent before its crash (no marker of their own)
are therefore applied with the next marker. The redo rewrites every key the same
way once it has processed the same inputs again; a rebuild from the changelog
between the redo of a part of those inputs and the rest (a second failure in that
window) could apply part of their effect twice. Closing that window needs
transactional changelog writes (the exactly-once work that builds on this layer).
"""

from __future__ import annotations

import bisect
import heapq
import itertools
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

import msgspec
import rocksdict
from faust.stores import rocksdb as faust_rocksdb
from faust.types import TP, EventT

from stream.core.state import prefix_end
from stream.settings import Settings
from stream.shell.metrics import METRICS

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode

MARKER = b"__c360\x00marker__"
"""The key of the record that ends a commit; its value holds the input offset."""
INPUT_OFFSET = b"__c360\x00input__"
"""Where the local database keeps the last input offset it committed (JSON)."""


def input_key(topic: str, partition: int) -> str:
    """The key of an input partition in the committed input positions (``INPUT_OFFSET``)."""
    return f"{topic}:{partition}"


_DELETED = object()
_MISSING = object()
_NO_WAL = rocksdict.WriteOptions()
_NO_WAL.disable_wal = True


class Txn:
    """A stage's view of one partition for one transaction (the groups of a commit
    interval): reads see its own writes, and each value is decoded once."""

    __slots__ = ("_cache", "_written", "db", "writes")

    def __init__(self, db: rocksdict.Rdict) -> None:
        self.db = db
        self.writes: dict[str, Any] = {}
        self._cache: dict[str, Any] = {}  # what it read from the database, decoded
        self._written: list[str] = []  # the keys of ``writes``, sorted, as of the last scan

    def get(self, key: str) -> Any | None:
        value = self.writes.get(key, self)
        if value is not self:
            return None if value is _DELETED else value
        value = self._cache.get(key, self)
        if value is not self:
            return value
        raw = self.db.get(key.encode())
        value = None if raw is None else _decode(raw)
        self._cache[key] = value
        return value

    def put(self, key: str, value: Any) -> None:
        self.writes[key] = value

    def delete(self, key: str) -> None:
        self.writes[key] = _DELETED

    def scan(self, start: str, stop: str, limit: int | None = None) -> Iterator[tuple[str, Any]]:
        """Keys in [start, stop), in order, merging this batch's writes over the database;
        the first ``limit`` of them (the database is read only as far as needed)."""
        items = self._scan(start, stop)
        return items if limit is None else itertools.islice(items, limit)

    def _scan(self, start: str, stop: str) -> Iterator[tuple[str, Any]]:
        writes = self.writes
        pending = ((k, None) for k in self._written_in(start, stop))
        last = None
        for key, raw in heapq.merge(_stored(self.db, start, stop), pending, key=_first):
            if key == last:
                continue  # stored and written: the write wins
            last = key
            value = writes.get(key, _MISSING)
            if value is _MISSING:
                yield key, _decode(raw)
            elif value is not _DELETED:
                yield key, value

    def _written_in(self, start: str, stop: str) -> list[str]:
        """The written keys in [start, stop), in order. The sorted keys are brought up to
        date at a scan, not at every put: a key is never removed from ``writes`` (a
        delete writes a mark), so the keys added since are the dict's last ones, and
        sorting them onto the sorted rest is a merge. Filtering every write at each scan
        cost a transaction open for thousands of writes a Python loop over all of them
        per scan (the profile stage scans a person's fragments at every merge)."""
        written = self._written
        if len(written) != len(self.writes):
            written += itertools.islice(self.writes, len(written), None)
            written.sort()
        return written[bisect.bisect_left(written, start) : bisect.bisect_left(written, stop)]

    def changes(self) -> list[tuple[bytes, bytes | None]]:
        """The batch's changes, encoded: (key, value or None for a delete)."""
        return list(self.encoded())

    def encoded(self) -> Iterator[tuple[bytes, bytes | None]]:
        """The batch's changes, encoded one at a time (a caller may pause between)."""
        for k, v in self.writes.items():
            yield k.encode(), None if v is _DELETED else _encode(v)

    def commit(self) -> None:
        """Write the changes to the database alone, as the worker does but with no
        changelog and no offsets (benchmarks, tests)."""
        self.db.write(write_batch(self.changes()), _NO_WAL)


def _stored(db: rocksdict.Rdict, start: str, stop: str) -> Iterator[tuple[str, bytes]]:
    """The database's items in [start, stop), in key order, read lazily (not the
    layer's own keys: input offset, commit marker, faust's changelog offset)."""
    it = db.iter()
    it.seek(start.encode())
    stop_b = stop.encode()
    while it.valid():
        key = it.key()
        if key >= stop_b:
            return
        if not key.startswith(b"__c360\x00") and not key.startswith(b"__faust"):
            yield key.decode(), it.value()
        it.next()


def _first(item: tuple[str, Any]) -> str:
    return item[0]


def write_batch(changes: Iterable[tuple[bytes, bytes | None]]) -> rocksdict.WriteBatch:
    """One WriteBatch of encoded changes (a None value deletes its key)."""
    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, value in changes:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    return batch


def rocksdb_options(settings: Settings) -> dict[str, Any]:
    """The options of every partition database of a worker's tables (faust's
    ``RocksDBOptions`` keywords, plus ``memtable_bloom``: see :class:`RocksOptions`),
    sized for a small machine: faust's defaults give each one a 2 GiB block cache."""
    return {
        "block_cache_size": settings.rocksdb_block_cache_mb * 1024 * 1024,
        "block_cache_compressed_size": 0,
        "write_buffer_size": settings.rocksdb_write_buffer_mb * 1024 * 1024,
        "max_write_buffer_number": settings.rocksdb_max_write_buffers,
        "max_open_files": settings.rocksdb_max_open_files,
        "target_file_size_base": 32 * 1024 * 1024,
        "bloom_filter_size": settings.rocksdb_bloom_bits,
        "memtable_bloom": settings.rocksdb_memtable_bloom,
    }


class RocksOptions(faust_rocksdb.RocksDBOptions):
    """faust's RocksDB options, plus a bloom filter on each memtable (``memtable_bloom``:
    its size as a fraction of the memtable's; 0: none).

    Most lookups of the stages are of keys that are not there: the route stage's
    duplicate check of every new event id, the link and profile stages' first look
    at a new identifier or person. Without a memtable filter each one searches the
    memtable's skip list, which costs more the fuller it is: 0.85 to 1.0 µs with 300,000
    event ids in an 8 MiB memtable, 0.32 to 0.34 µs with the filter (docs/design.md,
    "Sign-ins cost more once the state has grown")."""

    def as_options(self) -> rocksdict.Options:
        options = super().as_options()
        ratio = float(self.extra_options.get("memtable_bloom", 0.0))
        if ratio > 0:
            options.set_memtable_whole_key_filtering(True)
            options.set_memtable_prefix_bloom_ratio(ratio)
        return options


def open_db(path: str, settings: Settings | None = None) -> rocksdict.Rdict:
    """A raw-mode RocksDB database with a worker's options, for Txns outside a worker."""
    tuned = RocksOptions(**rocksdb_options(settings or Settings()), use_rocksdict=True)
    options = tuned.as_options()
    options.create_if_missing(True)
    return rocksdict.Rdict(path, options)


class _Tuned(faust_rocksdb.Store):
    """faust's RocksDB store opening its partition databases with :class:`RocksOptions`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.rocksdb_options = RocksOptions(**self.options, use_rocksdict=self.use_rocksdict)


class Commit(NamedTuple):
    """One partition's commit: what the local WriteBatch writes (``changes``, the
    ``marker`` value: the input positions) and what the changelog gets (``records``:
    the changes, then the marker record that closes the group for replay)."""

    changes: list[tuple[bytes, bytes | None]]
    marker: bytes
    records: list[tuple[bytes, bytes | None, None]]


class BatchStore(_Tuned):
    """faust's RocksDB store, plus batch transactions and group-wise changelog replay."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._pending: dict[int, list[tuple[bytes, bytes | None]]] = {}

    # --- live processing ---------------------------------------------------------
    def db(self, partition: int) -> rocksdict.Rdict:
        return self._db_for_partition(partition)

    def txn(self, partition: int) -> Txn:
        """The stage's transaction over one partition."""
        return Txn(self._db_for_partition(partition))

    def reader(self, partition: int) -> Txn:
        """A read-only view of what is committed (the API, metrics)."""
        return Txn(self._db_for_partition(partition))

    def input_offset(self, partition: int) -> dict[str, int]:
        """Input positions committed with the state: {"topic:partition": offset}."""
        raw = self._db_for_partition(partition).get(INPUT_OFFSET)
        return {} if raw is None else _decode(raw)

    @staticmethod
    def prepare(changes: list[tuple[bytes, bytes | None]], positions: dict[str, int]) -> Commit:
        """A commit of a transaction's encoded ``changes`` (``Txn.encoded``) at these
        input positions."""
        marker = _encode(positions)
        records = [(key, value, None) for key, value in changes]
        records.append((MARKER, marker, None))
        return Commit(changes, marker, records)

    def apply_local(
        self,
        partition: int,
        changes: list[tuple[bytes, bytes | None]],
        marker: bytes,
        changelog_offset: int | None,
    ) -> None:
        """Write a committed batch (a stage's, or one replayed from the changelog) to the
        local database in one WriteBatch."""
        batch = write_batch(changes)
        batch.put(INPUT_OFFSET, marker)
        if changelog_offset is not None:
            batch.put(self.offset_key, str(changelog_offset).encode())
        self._db_for_partition(partition).write(batch, _NO_WAL)

    # --- recovery and standbys ------------------------------------------------------
    def apply_changelog_batch(
        self,
        batch: Iterable[EventT],
        to_key: Callable[[Any], Any],
        to_value: Callable[[Any], Any],
    ) -> None:
        """Apply changelog records group by group: a group is applied when its marker arrives."""
        n = 0
        for event in batch:
            n += 1
            msg = event.message
            if msg.key == MARKER:
                changes = self._pending.pop(msg.partition, [])
                self.apply_local(msg.partition, changes, msg.value, msg.offset)
            else:
                self._pending.setdefault(msg.partition, []).append((msg.key, msg.value))
        if n:
            METRICS.recovery_records.labels(self.table_name).inc(n)

    async def on_recovery_completed(self, active_tps: set[TP], standby_tps: set[TP]) -> None:
        """An incomplete trailing group of an active partition is a commit that
        never finished (its batch will be redone): forget it."""
        for tp in active_tps:
            self._pending.pop(tp.partition, None)


class VersionedStore(_Tuned):
    """faust's RocksDB store, counting its changes: a reader may cache what it read
    until :attr:`version` moves (the small global tables, read on every publish)."""

    version = 0

    def read(self, key: Any) -> Any:
        """The decoded value of ``key``, or None: one store lookup, without the table's
        mapping layers (a miss through ``table.get`` tests membership, then reads)."""
        raw = self._get(self._encode_key(key))
        return None if raw is None else self._decode_value(raw)

    def _changed(self) -> None:
        self.version += 1

    def _set(self, key: bytes, value: bytes | None) -> None:
        super()._set(key, value)
        self._changed()

    def _del(self, key: bytes) -> None:
        super()._del(key)
        self._changed()

    def _clear(self) -> None:
        super()._clear()
        self._changed()

    def apply_changelog_batch(self, batch: Iterable[EventT], to_key: Any, to_value: Any) -> None:
        super().apply_changelog_batch(batch, to_key, to_value)
        self._changed()

    def reset_state(self) -> None:
        super().reset_state()
        self._changed()

    async def assign_partitions(self, *args: Any, **kwargs: Any) -> None:
        await super().assign_partitions(*args, **kwargs)
        self._changed()

    def revoke_partitions(self, *args: Any, **kwargs: Any) -> None:
        super().revoke_partitions(*args, **kwargs)
        self._changed()


def register() -> None:
    """Make ``c360://`` resolve to :class:`BatchStore` and ``c360v://`` to
    :class:`VersionedStore` for faust tables."""
    from faust.stores import STORES

    STORES.aliases["c360"] = "stream.shell.store:BatchStore"
    STORES.aliases["c360v"] = "stream.shell.store:VersionedStore"


def scan_prefix(txn: Txn, prefix: str) -> Iterator[tuple[str, Any]]:
    return txn.scan(prefix, prefix_end(prefix))
