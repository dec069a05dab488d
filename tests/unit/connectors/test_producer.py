import json

from connectors.producer import BatchProducer
from stream.settings import Settings


def test_records_respect_the_count_and_size_limits():
    p = BatchProducer(Settings.from_env({}, batch_max_events=3, record_max_bytes=1024))
    items = [json.dumps({"i": i, "pad": "x" * 100}).encode() for i in range(10)]
    records = list(p._records(items))
    decoded = [json.loads(r) for r in records]
    assert [e["i"] for batch in decoded for e in batch] == list(range(10))
    assert all(len(batch) <= 3 for batch in decoded)
    assert all(len(r) <= 1024 for r in records)


def test_events_are_grouped_by_the_partition_of_their_key():
    from stream import topics
    from stream.core.partitioner import partition_for

    s = Settings.from_env({}, partitions=4)
    p = BatchProducer(s)
    keys = [f"device-{i}" for i in range(20)]
    for k in keys:
        p.add(topics.WEB_EVENTS, k, {"k": k})
    for (name, partition), items in p._pending.items():
        assert name == "c360.web.events"
        assert {partition_for(json.loads(i)["k"], 4) for i in items} == {partition}
    assert p.buffered == 20
