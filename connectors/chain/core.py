"""The connector's pure core: the reorg window and the adaptive eth_getLogs range.

No I/O: the loop (``connectors/chain/connector.py``) asks the node and feeds the
answers in; these classes decide.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

from connectors.chain.decode import retraction
from stream.contract.inputs import ChainEvent


class DeepReorg(RuntimeError):
    """A reorg reaches below the oldest block the window remembers: it cannot be undone."""


@dataclass(slots=True)
class WindowBlock:
    number: int
    hash: str
    parent_hash: str
    events: list[ChainEvent] = field(default_factory=list)


class BlockWindow:
    """The last ``size`` processed blocks: number → hash, parent hash and the events emitted.

    A new block must extend the newest one (its parent hash equals the newest hash);
    otherwise the chain reorganized. The walk back compares the node's canonical hash at
    each height with the remembered one; the first match is the common ancestor, and
    everything above it is orphaned: :meth:`rollback` drops it and returns the
    retractions, newest first.
    """

    def __init__(self, size: int, blocks: list[WindowBlock] | None = None) -> None:
        if size < 2:
            raise ValueError("the window needs at least 2 blocks")
        self.size = size
        self._blocks: OrderedDict[int, WindowBlock] = OrderedDict()
        for b in blocks or ():
            self.push(b)

    def copy(self) -> BlockWindow:
        """A copy to work on (the blocks themselves are never mutated)."""
        return BlockWindow(self.size, list(self._blocks.values()))

    def __len__(self) -> int:
        return len(self._blocks)

    @property
    def newest(self) -> WindowBlock | None:
        return next(reversed(self._blocks.values())) if self._blocks else None

    @property
    def oldest(self) -> WindowBlock | None:
        return next(iter(self._blocks.values())) if self._blocks else None

    def blocks(self) -> list[WindowBlock]:
        return list(self._blocks.values())

    def hash_at(self, number: int) -> str | None:
        b = self._blocks.get(number)
        return b.hash if b else None

    def extends(self, number: int, parent_hash: str) -> bool:
        """Whether a block at ``number`` with ``parent_hash`` extends the newest block."""
        newest = self.newest
        if newest is None:
            return True
        return number == newest.number + 1 and parent_hash == newest.hash

    def push(self, block: WindowBlock) -> None:
        """Append the next block (it must extend the newest); forget the oldest beyond size."""
        newest = self.newest
        if newest is not None and block.number != newest.number + 1:
            raise ValueError(f"block {block.number} does not follow {newest.number}")
        self._blocks[block.number] = block
        while len(self._blocks) > self.size:
            self._blocks.popitem(last=False)

    def is_ancestor(self, number: int, canonical_hash: str) -> bool:
        """Whether the remembered block at ``number`` is the node's canonical one.

        Raises :class:`DeepReorg` when ``number`` is below the window: the common
        ancestor is out of reach.
        """
        oldest = self.oldest
        if oldest is None or number < oldest.number:
            low = "nothing" if oldest is None else f"blocks {oldest.number}.."
            raise DeepReorg(
                f"reorg deeper than the window of {self.size} blocks: no common ancestor "
                f"at or above block {number + 1} (the window holds {low}), so the orphaned "
                "blocks' events cannot be retracted. To go on: move the checkpoint file "
                f"aside and restart with C360_CHAIN_START_BLOCK at most {number + 1} (blocks "
                "read again keep their event ids; retract the orphaned ones downstream by "
                "hand), and consider a larger C360_CHAIN_WINDOW or C360_CHAIN_CONFIRMATIONS"
            )
        return self._blocks[number].hash == canonical_hash

    def rollback(self, ancestor: int) -> list[ChainEvent]:
        """Drop the blocks above ``ancestor``; their retractions, newest event first."""
        out: list[ChainEvent] = []
        for number in sorted((n for n in self._blocks if n > ancestor), reverse=True):
            block = self._blocks.pop(number)
            for event in reversed(block.events):
                out.append(retraction(event))
        return out


class AdaptiveRange:
    """The eth_getLogs block range: halve on a provider's range error, grow after successes.

    A provider hint (``[from, to]`` in its error) sets the size at once. Grows x1.5
    after each success, up to ``maximum`` but below the smallest size that failed
    (for ``probe_after`` successes, then it probes larger ranges again: a provider's
    limit may be on results, which vary along the chain). At size 1 a range error is
    fatal (the caller raises it).
    """

    def __init__(self, initial: int = 2000, maximum: int = 10_000, minimum: int = 1) -> None:
        if not 1 <= minimum <= initial <= maximum:
            raise ValueError("need 1 <= minimum <= initial <= maximum")
        self.size = initial
        self.minimum = minimum
        self.maximum = maximum
        self.ceiling = maximum  # below the smallest size that failed lately
        self._since_failure = 0

    def next_range(self, start: int, last: int) -> tuple[int, int]:
        """The next range from ``start``, never beyond ``last``."""
        return start, min(last, start + self.size - 1)

    probe_after = 50  # successes after which sizes above the ceiling are tried again

    def success(self) -> None:
        self._since_failure += 1
        if self._since_failure >= self.probe_after:
            self.ceiling = self.maximum
        limit = min(self.maximum, self.ceiling)
        self.size = max(self.size, min(limit, max(self.size + 1, int(self.size * 1.5))))

    def too_large(self, tried: int, suggested: tuple[int, int] | None = None) -> bool:
        """Shrink after a failed range of ``tried`` blocks; False when it cannot shrink."""
        if tried <= self.minimum:
            return False
        self._since_failure = 0
        self.ceiling = max(self.minimum, min(self.ceiling, tried - 1))
        if suggested is not None:
            hinted = suggested[1] - suggested[0] + 1
            if self.minimum <= hinted < tried:
                self.size = hinted
                return True
        self.size = max(self.minimum, tried // 2)
        return True
