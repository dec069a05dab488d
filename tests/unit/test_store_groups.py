"""Changelog replay applies whole commit groups, never an interrupted attempt's leftovers."""

from __future__ import annotations

import rocksdict

from stream.shell.store import GROUP_SIZE, MARKER, Txn, completed_group


def commit_records(tmp_path, writes: dict[str, int], offset: int):
    db = rocksdict.Rdict(str(tmp_path / f"db{offset}"))
    txn = Txn(db)
    for key, value in writes.items():
        txn.put(key, value)
    changes = txn.changes()
    from stream.shell.store import _encode

    marker = _encode({"in:0": offset, GROUP_SIZE: len(changes) + 1})
    db.close()
    return [*changes, (MARKER, marker)], marker


def test_a_group_is_applied_whole(tmp_path):
    records, marker = commit_records(tmp_path, {"a": 1, "b": 2}, 7)
    assert completed_group(records, marker) == records


def test_the_leftovers_of_an_interrupted_commit_are_not_applied(tmp_path):
    # attempt 1 covered inputs up to 9 and got only two of its records out before a crash
    attempt, _ = commit_records(tmp_path, {"a": 10, "b": 20, "c": 30}, 9)
    # the redo covered inputs up to 5 only: its group is smaller and must win alone
    redo, marker = commit_records(tmp_path, {"a": 5}, 5)
    pending = [*attempt[:2], *redo]
    assert completed_group(pending, marker) == redo
    assert (b"b", b"20") not in completed_group(pending, marker)
