"""Messages between the pipeline's stages (internal topics), and person ids.

An internal record is a JSON array of **segments** ``[source, seq, [messages]]``:
the messages that one input record of one sender (``source``, e.g. ``route:3``)
produced for this partition; ``seq`` is its input offset ``<< PART_BITS``, plus the
part number when those messages did not fit one record (:func:`encode_records`). A
stage sends one record per destination partition per group of input records it
handled (more if it would exceed ``RECORD_MAX_BYTES``), and a receiver
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

PART_BITS = 20
"""A sender's segment seq is ``input offset << PART_BITS | part``: the messages one input
record produced for one partition may be split over several records (parts), and the
receiver's "highest seq per source" rule must still apply each part once."""
RECORD_MAX_BYTES = 512 * 1024
"""The size above which an internal record is split (the broker accepts 4 MiB)."""


def encode_record(segments: list[Segment]) -> bytes:
    return _encode(segments)


def encode_records(segments: list[Segment], limit: int = RECORD_MAX_BYTES) -> list[bytes]:
    """Segments ``(source, input offset, messages)`` as records of at most ``limit``
    bytes (a single message larger than that goes alone), with seq = offset << PART_BITS
    | part. A record that fits is one record; otherwise segments, then a segment's
    messages, are halved until the parts fit. Deterministic: a sender that redoes the
    same input after a crash sends the same parts, which the receiver drops."""
    whole = _encode([(src, offset << PART_BITS, messages) for src, offset, messages in segments])
    if len(whole) <= limit:
        return [whole]  # the common case: encoded once
    chunks = _fit([(src, offset, list(messages)) for src, offset, messages in segments], limit)
    parts: dict[tuple[str, int], int] = {}
    records = []
    for chunk in chunks:
        out = []
        for src, offset, messages in chunk:
            part = parts.get((src, offset), 0)
            parts[(src, offset)] = part + 1
            out.append((src, (offset << PART_BITS) | part, messages))
        records.append(_encode(out))
    return records


def _fit(units: list[Segment], limit: int) -> list[list[Segment]]:
    """Split ``units`` into consecutive chunks whose encoding fits ``limit``."""
    if len(_encode(units)) <= limit:
        return [units]
    if len(units) > 1:
        half = len(units) // 2
        return _fit(units[:half], limit) + _fit(units[half:], limit)
    src, offset, messages = units[0]
    if len(messages) <= 1:
        return [units]
    half = len(messages) // 2
    return _fit([(src, offset, messages[:half])], limit) + _fit(
        [(src, offset, messages[half:])], limit
    )
