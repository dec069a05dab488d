"""Messages between the pipeline's stages (internal topics), and person ids.

An internal record is a JSON array of **segments** ``[source, seq, [messages]]``:
the messages that one input record of one sender (``source``, e.g. ``route:3``,
at input offset ``seq``) produced for this partition. A stage sends one record
per destination partition per group of input records it handled, and a receiver
applies each segment once: it remembers the highest ``seq`` per source, so a
sender's replay after a crash is dropped segment by segment.

Messages are tagged structs (array-like: compact and fast to decode). The route
topic carries facts and assignments, the link topic facts and labels, the profile
topic events, merges, splits, member lists and ticks, the channel topic revenue
deltas.
"""

from __future__ import annotations

from hashlib import blake2b
from typing import Any

import msgspec

from stream.core.facts import Fact

# --- person ids ---


def person_of(identifier: str) -> str:
    """f(i): the person id of a person first seen through identifier ``i``.

    Deterministic, so the route stage and the link stage never invent two
    different persons for one identifier.
    """
    return "p" + blake2b(identifier.encode(), digest_size=10).hexdigest()


def split_person(identifier: str, seq: int) -> str:
    """The id of a person split off at link sequence ``seq``; never used before."""
    return "p" + blake2b(f"{identifier}\x00split\x00{seq}".encode(), digest_size=10).hexdigest()


# --- route topic (keyed by identifier) ---
class Assign(msgspec.Struct, array_like=True, tag="a"):
    """The link stage's word on an identifier: its person (as of ``seq``), and the
    identifiers it is known to be linked with or refused from (a cache that lets
    the route stage skip the link stage for pairs it already knows)."""

    ident: str
    person: str
    seq: int
    known: list[str] = []
    refused: list[str] = []


# --- link topic (one partition) ---
class Label(msgspec.Struct, array_like=True, tag="l"):
    """Labels of a wallet on one chain (from the labels topic); empty categories delete."""

    wallet: str
    chain: int
    categories: list[str] = []


# --- profile topic (keyed by person) ---
class Event(msgspec.Struct, array_like=True, tag="e"):
    """A fact for ``person`` (as the sender knew it at assignment ``seq``)."""

    person: str
    seq: int
    fact: Fact


class Absorb(msgspec.Struct, array_like=True, tag="b"):
    """The link stage merged ``absorbed`` into ``survivor`` at ``seq``."""

    absorbed: str
    survivor: str
    seq: int


class MergeIn(msgspec.Struct, array_like=True, tag="m"):
    """An absorbed person's fragments, sent by its partition to the survivor's."""

    source: str
    target: str
    seq: int
    fragments: dict[str, Any]
    absorbed: list[str] = []


class Split(msgspec.Struct, array_like=True, tag="s"):
    """The link stage split identifiers away from ``person``: ``moves`` ident -> new person."""

    person: str
    seq: int
    moves: dict[str, str]


class SplitIn(msgspec.Struct, array_like=True, tag="i"):
    """Fragments moved by a split (or forwarded after one), to their new person."""

    source: str
    target: str
    seq: int
    fragments: dict[str, Any]


class Members(msgspec.Struct, array_like=True, tag="n"):
    """The identifiers of ``person`` according to the link stage, as of ``seq``."""

    person: str
    seq: int
    members: list[str]


class Refresh(msgspec.Struct, array_like=True, tag="r"):
    """Something the profile reads about ``ident`` changed elsewhere (its wallet labels)."""

    person: str
    seq: int
    ident: str


class Tick(msgspec.Struct, array_like=True, tag="t"):
    """Time: ``now`` (epoch ms) reaches every profile partition as an ordinary message."""

    now: int


# --- channel topic (keyed by channel) --------------------------------------------------------
class ChannelDelta(msgspec.Struct, array_like=True, tag="c"):
    """A change of a channel's totals: persons acquired and raw revenue per token."""

    channel: str
    persons: int
    revenue: dict[str, int] = {}


RouteMessage = Fact | Assign | Tick
LinkMessage = Fact | Label
ProfileMessage = Event | Absorb | MergeIn | Split | SplitIn | Members | Refresh | Tick

Segment = tuple[str, int, list[Any]]

DECODERS = {
    "route": msgspec.json.Decoder(list[tuple[str, int, list[RouteMessage]]]),
    "link": msgspec.json.Decoder(list[tuple[str, int, list[LinkMessage]]]),
    "profile": msgspec.json.Decoder(list[tuple[str, int, list[ProfileMessage]]]),
    "channel": msgspec.json.Decoder(list[tuple[str, int, list[ChannelDelta]]]),
}
"""Decoders of internal records (lists of segments), by stage."""

_encode = msgspec.json.Encoder().encode


def encode_record(segments: list[Segment]) -> bytes:
    return _encode(segments)
