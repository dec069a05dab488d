from stream import topics
from stream.settings import Settings


def test_every_topic_has_a_unique_name():
    names = [t.name(Settings.from_env({})) for t in topics.ALL]
    assert len(names) == len(set(names))


def test_global_feeds_have_one_partition_and_are_compacted():
    s = Settings.from_env({}, partitions=8)
    for t in (topics.PRICES, topics.LABELS):
        assert t.partition_count(s) == 1 and t.compacted
    assert topics.LINK.partition_count(s) == 1
    assert topics.PROFILE.partition_count(s) == 8


def test_identity_merges_are_kept_forever():
    assert topics.IDENTITY_MERGES.configs() == {
        "cleanup.policy": "compact",
        "retention.ms": "-1",
        "max.message.bytes": str(topics.MAX_RECORD_BYTES),  # a default broker allows 1 MB
    }


def test_no_module_but_topics_spells_a_topic_name():
    import pathlib
    import re

    root = pathlib.Path(__file__).parents[2]
    suffixes = [t.suffix for t in topics.ALL]
    offenders = []
    for path in list((root / "stream").rglob("*.py")) + list((root / "connectors").rglob("*.py")):
        if path.name == "topics.py":
            continue
        text = path.read_text()
        for suffix in suffixes:
            if re.search(r"[\"']c360\." + re.escape(suffix) + r"[\"']", text):
                offenders.append(f"{path.relative_to(root)}: {suffix}")
    assert not offenders
