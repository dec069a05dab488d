"""The state a stage sees: MemoryState's checks, and the worker's Txn over RocksDB."""

from __future__ import annotations

import pytest

from stream.core.state import MemoryState, StateMisuse
from stream.settings import Settings
from stream.shell.store import Txn, open_db
from tests.support.rocks import options_file


def test_a_value_changed_in_place_but_not_put_is_refused_at_commit():
    state = MemoryState()
    state.put("p:1", {"n": 1})
    state.commit()
    row = state.get("p:1")
    row["n"] = 2  # a stage that forgot to put
    with pytest.raises(StateMisuse, match="p:1"):
        state.commit()


def test_a_value_changed_and_put_is_stored_and_reads_share_one_object_until_commit():
    state = MemoryState()
    state.put("p:1", {"n": 1})
    state.commit()
    row = state.get("p:1")
    assert state.get("p:1") is row  # as the worker's transaction hands it out
    row["n"] = 2
    state.put("p:1", row)
    row["seen"] = True  # a change after put is part of what is stored, as on the worker
    state.commit()
    again = state.get("p:1")
    assert again == {"n": 2, "seen": True}
    assert again is row  # handed out again, as the worker's open transaction does


def test_a_value_changed_through_an_object_it_shares_with_another_is_refused():
    state = MemoryState()
    shared = {"items": [1]}
    state.put("a", {"s": shared})
    state.put("b", {"s": shared})  # both values hold one object until they are read back
    state.commit()
    a = state.get("a")
    a["s"]["items"].append(2)  # changes b's object too
    state.put("a", a)
    state.commit()
    state.get("b")  # b's object no longer encodes to what is stored for b
    with pytest.raises(StateMisuse, match="'b'"):
        state.commit()


def test_pending_writes_and_deletes_are_seen_by_get_and_scan_before_commit():
    state = MemoryState()
    state.put("a:1", 1)
    state.put("a:2", 2)
    state.commit()
    state.delete("a:1")
    state.put("a:3", 3)
    assert state.get("a:1") is None
    assert list(state.scan("a:", "a;")) == [("a:2", 2), ("a:3", 3)]
    assert len(state) == 2


@pytest.fixture
def db(tmp_path):
    db = open_db(str(tmp_path / "db"))
    yield db
    db.close()


def test_a_transaction_decodes_a_value_once_and_a_new_one_reads_the_database(db):
    writer = Txn(db)
    writer.put("p:1", {"n": 1})
    writer.commit()
    txn = Txn(db)
    first = txn.get("p:1")
    db.delete(b"p:1")  # behind the open transaction's back
    assert txn.get("p:1") is first  # decoded once, for as long as the transaction is open
    assert Txn(db).get("p:1") is None  # a new transaction (and a reader) reads the database


@pytest.mark.parametrize("seed", range(20))
def test_a_limited_scan_is_the_first_items_of_the_whole_scan_on_both_states(db, seed):
    import random

    rng = random.Random(seed)
    keys = [f"d:{rng.randrange(60):03d}" for _ in range(40)] + ["__c360\x00input__"]
    memory = MemoryState()
    for key in keys[:-1]:
        memory.put(key, rng.randrange(9))
    txn = Txn(db)
    for key, value in memory.scan("", "\uffff"):
        txn.put(key, value)
    txn.commit()
    memory.commit()
    # this group's pending writes and deletes over what is stored
    txn = Txn(db)
    for _ in range(15):
        key = f"d:{rng.randrange(70):03d}"
        if rng.random() < 0.5:
            txn.delete(key)
            memory.delete(key)
        else:
            txn.put(key, rng.randrange(9))
            memory.put(key, txn.get(key))
    start, stop = f"d:{rng.randrange(20):03d}", f"d:{rng.randrange(30, 70):03d}"
    whole = list(txn.scan(start, stop))
    assert whole == list(memory.scan(start, stop))
    for limit in (0, 1, 5, len(whole), len(whole) + 3):
        assert list(txn.scan(start, stop, limit)) == whole[:limit]
        assert list(memory.scan(start, stop, limit)) == whole[:limit]


@pytest.mark.parametrize("seed", range(10))
def test_scans_between_writes_see_every_write_made_before_them(db, seed):
    """The transaction sorts its written keys at a scan, not at a put: a scan after more
    writes (new keys, rewritten keys, deletes) must see all of them."""
    import random

    rng = random.Random(seed)
    txn, memory = Txn(db), MemoryState()
    for _ in range(200):
        key = f"f:{rng.randrange(8)}:{rng.randrange(30):02d}"
        if rng.random() < 0.3:
            txn.delete(key)
            memory.delete(key)
        else:
            value = rng.randrange(9)
            txn.put(key, value)
            memory.put(key, value)
        if rng.random() < 0.2:
            prefix = f"f:{rng.randrange(8)}:"
            assert list(txn.scan(prefix, prefix + "\uffff")) == list(
                memory.scan(prefix, prefix + "\uffff")
            )


@pytest.mark.parametrize(
    ("bloom", "filtering"), [(0.2, "true"), (0.0, "false")], ids=["memtable-bloom", "none"]
)
def test_a_database_opens_with_the_settings_rocksdb_options(tmp_path, bloom, filtering):
    settings = Settings(rocksdb_memtable_bloom=bloom, rocksdb_write_buffer_mb=4)
    open_db(str(tmp_path / "db"), settings).close()
    written = options_file(tmp_path / "db")
    assert written["memtable_whole_key_filtering"] == filtering
    assert float(written["memtable_prefix_bloom_size_ratio"]) == bloom
    assert written["write_buffer_size"] == str(4 * 1024 * 1024)
    assert written["filter_policy"] == "bloomfilter"
