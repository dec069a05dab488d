"""The connector's checkpoint: where to resume, and the window needed to undo a reorg.

Written only after the producer's flush was acknowledged, atomically (a temporary
file in the same directory, fsync, rename), so a reader sees the old or the new
checkpoint, never half of one. A crash after the flush and before the rename
replays the blocks since the previous checkpoint: same block hashes, same event ids.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from connectors.chain.core import BlockWindow, WindowBlock
from stream.contract.inputs import ChainEvent

VERSION = 1


class CheckpointBlock(msgspec.Struct):
    number: int
    hash: str
    parent_hash: str
    events: list[ChainEvent] = []


class Redo(msgspec.Struct):
    """A batch being delivered: its events in order, and the window once they are acked."""

    events: list[ChainEvent]
    window: list[CheckpointBlock]


class Checkpoint(msgspec.Struct):
    """``number``/``hash``/``window``: the last block whose events Kafka acknowledged.

    ``redo`` is written before a batch is flushed and cleared after: a restart that
    finds it delivers its events again (duplicates keep their event_id) and then
    adopts its window. So a batch that reached Kafka before a crash is never lost
    from the window: if its blocks were orphaned meanwhile, they are retracted.
    """

    chain_id: int
    number: int | None  # None: nothing acknowledged yet
    hash: str | None
    window: list[CheckpointBlock] = []
    redo: Redo | None = None
    version: int = VERSION


class CheckpointError(RuntimeError):
    """The checkpoint file cannot be read, or belongs to another chain."""


_decoder = msgspec.json.Decoder(Checkpoint)
_encoder = msgspec.json.Encoder()


def load(path: Path) -> Checkpoint | None:
    """The checkpoint at ``path``, None when there is none."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:  # a directory in its place, no permission, ...
        raise CheckpointError(f"{path}: cannot read the checkpoint: {exc.strerror}") from None
    try:
        cp = _decoder.decode(raw)
    except msgspec.DecodeError as exc:
        raise CheckpointError(f"{path}: not a chain checkpoint: {exc}") from None
    if cp.version != VERSION:
        raise CheckpointError(f"{path}: checkpoint version {cp.version}, expected {VERSION}")
    return cp


def save(path: Path, cp: Checkpoint) -> None:
    """Write ``cp`` atomically (tmp + fsync + rename, then fsync the directory)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(_encoder.encode(cp))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def blocks_of(window: BlockWindow) -> list[CheckpointBlock]:
    return [CheckpointBlock(b.number, b.hash, b.parent_hash, b.events) for b in window.blocks()]


def of_window(chain_id: int, window: BlockWindow, redo: Redo | None = None) -> Checkpoint:
    newest = window.newest
    return Checkpoint(
        chain_id=chain_id,
        number=newest.number if newest else None,
        hash=newest.hash if newest else None,
        window=blocks_of(window),
        redo=redo,
    )


def to_window(blocks: list[CheckpointBlock], size: int) -> BlockWindow:
    return BlockWindow(
        size, [WindowBlock(b.number, b.hash, b.parent_hash, list(b.events)) for b in blocks]
    )
