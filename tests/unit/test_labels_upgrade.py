"""The upgrade to labels carried by the link stage (docs/design.md): the labels agent
tags what it sends with its record's offset (source ``labels:{partition}``), and the
link stage drops every segment at or below the highest offset it applied
(``h:labels:{partition}``). So resetting the labels topic's offsets brings the link
stage nothing: the labels must be produced again, as new records."""

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


def test_labels_reach_the_link_stage_again_when_produced_again_not_when_reset():
    settings = Settings.from_env({})
    decode = DECODERS["link"].decode
    runner = StageRunner("link", settings, SimpleNamespace(data=None), None, decode, None)
    state, outbox = MemoryState(), Outbox(settings)
    # before the upgrade: the link stage applied the labels topic's records 0..2
    for offset in range(3):
        assert runner._fresh(state, label_record(settings, offset), outbox)
    # offsets reset to the earliest: the same records come again and are dropped
    again = [m for o in range(3) for m in runner._fresh(state, label_record(settings, o), outbox)]
    assert again == []
    # produced again: new offsets, applied (link.label sends the profile a Refresh)
    again = [m for o in (3, 4, 5) for m in runner._fresh(state, label_record(settings, o), outbox)]
    assert len(again) == 3
