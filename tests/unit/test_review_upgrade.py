"""Review of 36e49e8: docs/design.md's upgrade step (reset the consumer group to the
earliest offsets of the prices and labels topics) must bring every current label to the
profile partitions, through the link stage. The labels agent tags what it sends with
its record's offset (source ``labels:{partition}``), and the link stage drops every
segment at or below the highest offset it applied (``h:labels:{partition}``)."""

from __future__ import annotations

from types import SimpleNamespace

from stream import topics
from stream.core.messages import DECODERS, Label
from stream.core.state import MemoryState
from stream.settings import Settings
from stream.shell.outbox import Outbox
from stream.shell.stage import StageRunner

WALLET = "wallet:0x" + "51ce" * 10


def label_record(settings: Settings, offset: int) -> SimpleNamespace:
    """A label as the labels agent sends it on (stream/shell/agents.py)."""
    outbox = Outbox(settings)
    outbox.begin("labels:0", offset)
    outbox.internal(topics.LINK, WALLET, Label(WALLET, 1, ["fund"]))
    [(_, [value])] = list(outbox.internal_records())
    return SimpleNamespace(value=value, topic="link", partition=0, offset=offset)


def test_labels_read_again_from_the_earliest_offset_reach_the_link_stage():
    settings = Settings.from_env({})
    runner = StageRunner(
        "link", settings, SimpleNamespace(data=None), None, DECODERS["link"].decode, None
    )
    state, outbox = MemoryState(), Outbox(settings)
    # before the upgrade: the link stage applied the labels topic's records 0..2
    for offset in range(3):
        assert runner._fresh(state, label_record(settings, offset), outbox)
    # the upgrade: offsets reset to the earliest, the same records come again
    again = [m for o in range(3) for m in runner._fresh(state, label_record(settings, o), outbox)]
    assert len(again) == 3  # each must reach link.label, which sends the profile a Refresh
