"""Messages between the pipeline's stages (internal topics), and person ids.

An internal record is a JSON array of **segments** ``[source, seq, [messages]]``:
the messages that one input record of one sender (``source``, e.g. ``route:3``)
produced for this partition; ``seq`` is its input offset ``<< PART_BITS``, plus the
part number when those messages did not fit one record (:func:`encode_records`). A
stage sends one record per destination partition per group of input records it
handled (more if it would exceed ``RECORD_MAX_BYTES``), and a receiver
applies each segment once: it remembers the highest ``seq`` per source, so a
sender's replay after a crash is dropped segment by segment.

Messages are tagged structs (array-like: compact and fast to decode), plain data that
the cycle collector does not track (``gc=False``, as :class:`~stream.core.facts.Fact`:
never put a message inside itself). The route
topic carries facts and assignments, the link topic facts and labels, the profile
topic events, merges, splits, member lists, labels, prices and ticks, the channel topic revenue
deltas.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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


def founder(person: str, identifiers: Iterable[str]) -> str | None:
    """The identifier among ``identifiers`` that ``person`` was first seen through
    (``person_of`` of it is ``person``), if there: none for a person a split created."""
    return next((i for i in identifiers if person_of(i) == person), None)


def split_person(identifier: str, seq: int) -> str:
    """The id of a person split off at link sequence ``seq``; never used before."""
    return "p" + blake2b(f"{identifier}\x00split\x00{seq}".encode(), digest_size=10).hexdigest()


class InternalMessage(msgspec.Struct, array_like=True, gc=False):
    """What every message between stages is: array-like, and plain data the cycle
    collector does not track (see the module doc)."""


# --- route topic (keyed by identifier) ---
class Assign(InternalMessage, tag="a"):
    """The link stage's word on an identifier: its person (as of ``seq``), and the
    identifiers it is known to be linked with or refused from (a cache that lets
    the route stage skip the link stage for pairs it already knows), or that the
    cache must forget (the pairs of an identifier just blocked, or refused while a
    label blocked it and unblocked since): their next link is decided again."""

    ident: str
    person: str
    seq: int
    known: list[str] = []
    refused: list[str] = []
    forget: list[str] = []


# --- link topic (one partition) ---
class Label(InternalMessage, tag="l"):
    """Labels of a wallet on one chain (from the labels topic); empty categories delete.
    ``at``: the record's ``updated_at`` (ms; 0: undated, as a deletion by an empty value)."""

    wallet: str
    chain: int
    categories: list[str] = []
    at: int = 0


# --- profile topic (keyed by person) ---
class Event(InternalMessage, tag="e"):
    """A fact for ``person`` (as the sender knew it at assignment ``seq``)."""

    person: str
    seq: int
    fact: Fact


class Absorb(InternalMessage, tag="b"):
    """The link stage merged ``absorbed`` into ``survivor`` at ``seq``."""

    absorbed: str
    survivor: str
    seq: int


class MergeIn(InternalMessage, tag="m"):
    """An absorbed person's fragments, sent by its partition to the survivor's."""

    source: str
    target: str
    seq: int
    fragments: dict[str, Any]
    absorbed: list[str] = []
    tier: str | None = None  # the VIP tier the source's profile showed (alerts: see vt)
    alerted: dict[str, int] | None = None  # the source's VIP alerts (cooldown: see va)


class Split(InternalMessage, tag="s"):
    """The link stage split identifiers away from ``person``: ``moves`` ident -> new person."""

    person: str
    seq: int
    moves: dict[str, str]


class SplitIn(InternalMessage, tag="i"):
    """Fragments moved by a split (or forwarded after one), to their new person."""

    source: str
    target: str
    seq: int
    fragments: dict[str, Any]
    tier: str | None = None  # the VIP tier the source's profile showed (alerts: see vt)
    alerted: dict[str, int] | None = None  # the source's VIP alerts (cooldown: see va)


class Members(InternalMessage, tag="n"):
    """The identifiers of ``person`` according to the link stage, as of ``seq``, and
    the labels ``{chain: [categories]}`` of those of them that are labelled wallets
    (None: not said, a sender from before labels came this way)."""

    person: str
    seq: int
    members: list[str]
    labels: dict[str, dict[str, list[str]]] | None = None


class Refresh(InternalMessage, tag="r"):
    """The labels of wallet ``ident`` changed: ``labels`` ``{chain: [categories]}`` as
    the link stage now holds them (empty: none; None: not said, a sender from before
    labels came this way)."""

    person: str
    seq: int
    ident: str
    labels: dict[str, list[str]] | None = None


class Price(InternalMessage, tag="v"):
    """A token's price changed (``[price_usd, decimals, symbol]``; None: deleted), sent to
    every profile partition: the stage values tokens only at the prices its own input
    brought, so a batch redone after a crash computes what it computed the first time."""

    token: str
    value: list[Any] | None = None


class Tick(InternalMessage, tag="t"):
    """Time: ``now`` (epoch ms) reaches every route and profile partition as an ordinary
    message. ``partition`` is the one it was sent to (-1: not said), so that a stage can
    go on with work it left for later in a Tick to its own partition; ``cursor`` says
    where that work goes on (the last state key done; "": from the start)."""

    now: int
    partition: int = -1
    cursor: str = ""

    def onward(self, cursor: str) -> Tick:
        """This tick again, to go on after ``cursor`` (sent to its own partition)."""
        return Tick(self.now, self.partition, cursor)


# --- channel topic (keyed by channel) --------------------------------------------------------
class ChannelDelta(InternalMessage, tag="c"):
    """A change of a channel's totals: persons acquired and raw revenue per token."""

    channel: str
    persons: int
    revenue: dict[str, int] = {}


RouteMessage = Fact | Assign | Tick
LinkMessage = Fact | Label
ProfileMessage = Event | Absorb | MergeIn | Split | SplitIn | Members | Refresh | Price | Tick

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
    | part.

    Each segment's messages are encoded once, and records are packed greedily, in
    order, from the encoded segments (the bytes msgspec gives for the whole list: a
    group that fits is one record, the common case); a segment too large for a record
    of its own is split between its messages (each then encoded on its own) into parts.
    Encoding the whole group first, to see whether it fits, encoded a draining
    worker's groups (mostly over the limit) twice. Deterministic: a sender that redoes
    the same input after a crash sends the same parts, which the receiver drops."""
    return _pack(_segments(segments, limit), limit)


def _segments(segments: list[Segment], limit: int) -> Iterator[bytes]:
    """Each segment encoded, in parts when its messages exceed a record of its own."""
    for src, offset, messages in segments:
        head = b"[" + _encode(src) + b","
        body = _encode(messages)
        room = limit - len(head) - _SEQ_AND_CLOSE
        bodies = [body] if len(body) <= room else _pack(map(_encode, messages), room)
        for part, body in enumerate(bodies):
            yield head + str((offset << PART_BITS) | part).encode() + b"," + body + b"]"


_SEQ_AND_CLOSE = 24
"""Bytes a segment adds besides its source and messages: the seq (at most 20 digits), a
comma, its closing bracket, and the comma that separates it from the next."""


def _pack(items: Iterable[bytes], limit: int) -> list[bytes]:
    """Encoded JSON values as JSON arrays of consecutive items, in order, each at most
    ``limit`` bytes (an item larger than that alone)."""
    out: list[bytes] = []
    chunk: list[bytes] = []
    size = 2  # the brackets
    for item in items:
        if chunk and size + 1 + len(item) > limit:
            out.append(b"[" + b",".join(chunk) + b"]")
            chunk, size = [], 2
        chunk.append(item)
        size += len(item) + 1
    if chunk:
        out.append(b"[" + b",".join(chunk) + b"]")
    return out
