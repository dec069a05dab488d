"""Internal records stay under the size limit: a large group's messages are split into
parts, and a receiver applies every part once, however often the sender redoes it."""

from __future__ import annotations

from types import SimpleNamespace

import msgspec

from stream import topics
from stream.core.facts import Fact
from stream.core.messages import DECODERS, PART_BITS, Event, encode_records
from stream.core.state import MemoryState
from stream.settings import Settings
from stream.shell.outbox import Outbox
from stream.shell.stage import StageRunner

decode = DECODERS["profile"].decode


def event(n: int) -> Event:
    fact = Fact(f"e{n}", f"anon:device-{n}", "page", 1_790_000_000_000 + n, "web.events")
    return Event(f"p{n % 7}", 0, fact)


def messages_of(records: list[bytes]) -> list:
    return [m for record in records for _, _, items in decode(record) for m in items]


def test_a_group_that_fits_is_one_record_with_the_offset_as_seq():
    segments = [("route:1", 41, [event(1)]), ("route:1", 42, [event(2)])]
    [record] = encode_records(segments)
    assert [(src, seq) for src, seq, _ in decode(record)] == [
        ("route:1", 41 << PART_BITS),
        ("route:1", 42 << PART_BITS),
    ]
    # built from the segments encoded one by one: the bytes of the whole group at once
    assert record == msgspec.json.encode([(s, o << PART_BITS, ms) for s, o, ms in segments])


def test_records_are_the_json_msgspec_gives_for_their_segments():
    segments = [(f"route:{n % 3}", n, [event(n), event(n + 1)]) for n in range(400)]
    records = encode_records(segments, limit=8_000)  # many segments, several records
    assert len(records) > 3 and all(len(r) <= 8_000 for r in records)
    rebuilt = [(src, seq, list(items)) for r in records for src, seq, items in decode(r)]
    assert rebuilt == [(src, off << PART_BITS, ms) for src, off, ms in segments]
    for record in records:  # byte for byte what encoding the decoded segments gives
        assert msgspec.json.encode(decode(record)) == record


def test_a_large_group_is_split_under_the_limit_in_order_with_increasing_parts():
    segments = [("route:1", 7, [event(n) for n in range(3000)]), ("route:1", 8, [event(-1)])]
    records = encode_records(segments, limit=20_000)
    assert len(records) > 5
    assert all(len(r) <= 20_000 for r in records)
    assert messages_of(records) == [m for _, _, ms in segments for m in ms]
    seqs = [seq for r in records for _, seq, _ in decode(r)]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert {seq >> PART_BITS for seq in seqs} == {7, 8}
    assert encode_records(segments, limit=20_000) == records  # a redo sends the same parts


def test_an_outbox_splits_its_records_and_a_receiver_applies_each_part_once():
    settings = Settings.from_env({})
    outbox = Outbox(settings)
    for offset in (10, 11):
        outbox.begin("route:2", offset)
        for n in range(2000):
            outbox.internal(topics.PROFILE, "p0", event(offset * 10_000 + n))
    [segments] = outbox._segments.values()
    values = encode_records(segments, limit=30_000)
    assert len(values) > 2

    runner = StageRunner("profile", settings, SimpleNamespace(data=None), None, decode, None)
    state = MemoryState()
    delivered = [
        SimpleNamespace(value=v, topic="profile", partition=0, offset=i)
        for i, v in enumerate(values)
    ]
    applied = [m for msg in delivered for m in runner._fresh(state, msg, outbox)]
    assert len(applied) == 4000
    # the sender redoes its group after a crash: every part comes again, none is applied
    assert [m for msg in delivered for m in runner._fresh(state, msg, outbox)] == []


def test_a_record_on_an_internal_topic_that_is_not_ours_is_dead_lettered_not_fatal():
    # only another producer could write these; the stage keeps the evidence and goes on
    settings = Settings.from_env({})
    outbox = Outbox(settings)
    runner = StageRunner("profile", settings, SimpleNamespace(data=None), None, decode, None)
    for value in (None, b'[["route:0", 1, [{"x": "\xff"}]]]', b"not json"):
        record = SimpleNamespace(value=value, topic="profile", partition=0, offset=7)
        assert runner._fresh(MemoryState(), record, outbox) == []
    letters = [
        msgspec.json.decode(value)
        for (name, _), records in outbox._records.items()
        if name.endswith("deadletter")
        for _, value in records
    ]
    assert [(d["reason"], d["source"]["offset"]) for d in letters] == [("internal_decode", 7)] * 3


def test_a_dead_letter_of_control_characters_is_base64_not_six_times_its_size():
    from stream.core.ingest import Rejection
    from stream.shell.outbox import MAX_DEAD_LETTER_ORIGINAL, dead_letter

    original = b"\x01" * 999_999  # valid UTF-8, and JSON writes each byte as \u0001
    letter = dead_letter("web.events", 0, 1, Rejection("not_json", "x", original))
    assert letter.original_encoding == "base64" and letter.truncated
    assert len(msgspec.json.encode(letter)) < MAX_DEAD_LETTER_ORIGINAL * 4 // 3 + 4096
    text = dead_letter("web.events", 0, 1, Rejection("not_json", "x", b'{"a": 1'))
    assert (text.original_encoding, text.original) == ("utf-8", '{"a": 1')
