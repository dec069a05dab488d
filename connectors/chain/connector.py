"""The chain connector's loop: a thin shell around the core.

One :meth:`ChainConnector.step` plans a batch in a worker thread (RPC calls,
decoding, reorg walk-back on a copy of the window), then writes the batch to the
checkpoint's redo section, hands it to the producer, awaits the acknowledgements
and only then commits the checkpoint (atomically). Below
``head - confirmations - window`` it backfills with eth_getLogs over adaptive
ranges; above it follows the chain block by block, keeping every block in the
window so a reorg can be undone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from connectors.chain import checkpoint as cpmod
from connectors.chain.config import MAX_CHAIN_ID, SOURCE_PREFIX, ChainConfig
from connectors.chain.core import AdaptiveRange, BlockWindow, DeepReorg, WindowBlock
from connectors.chain.decode import Scope, block_events, fit, key_of, may_have_logs, topic0
from connectors.chain.metrics import ChainMetrics
from connectors.chain.rpc import (
    Block,
    BlockMissing,
    ChainRpc,
    RangeTooLarge,
    RpcError,
    holding_failure,
)
from stream import topics
from stream.contract.inputs import ChainEvent, HoldingSnapshot

log = logging.getLogger(__name__)


class Sink(Protocol):
    """Where events go: :class:`connectors.producer.BatchProducer` in production."""

    def add(self, spec: topics.TopicSpec, key: str, event: Any) -> None: ...

    async def flush(self) -> int: ...


class ChainIdMismatch(RuntimeError):
    """The node, the configuration or the checkpoint name different chains."""


@dataclass(slots=True)
class Batch:
    """What one step produces, and the window once it is acknowledged."""

    window: BlockWindow
    events: list[ChainEvent] = field(default_factory=list)
    holdings: list[HoldingSnapshot] = field(default_factory=list)
    reorg_depth: int = 0
    more: bool = False  # more work is available right away


class ChainConnector:
    """Reads a chain into ``chain.events`` (and ``chain.holdings``) with reorg retractions."""

    follow_batch = 64  # blocks per flush while following
    # Blocks per backfill batch when every block's transactions are scanned (wallets or
    # treasuries set): a few hundred block fetches, so the processed block moves about
    # every minute and C360ChainStalled (15 minutes) never fires on a healthy backfill.
    scan_batch = 200
    state_depth = 128  # blocks below the head whose state a pruned node keeps (geth: 128)
    empty_confirmations = 3  # answers of "no log" a logsBloom contradicts before believing one

    def __init__(
        self,
        config: ChainConfig,
        rpc: ChainRpc,
        sink: Sink,
        *,
        metrics: ChainMetrics | None = None,
        checkpoint_path: Path | None = None,
    ) -> None:
        self.config = config
        self.rpc = rpc
        self.sink = sink
        self.metrics = metrics or ChainMetrics()
        self.path = Path(checkpoint_path or config.checkpoint_file)
        self.ranges = AdaptiveRange(config.range_initial, config.range_max)
        self.topic0s = [topic0(s) for s in config.event_signatures]
        self.window = BlockWindow(config.window)
        self.next_block = config.start_block
        self.chain_id = 0
        self.scope: Scope | None = None
        self._started = False
        self._holding_failures_logged: set[str] = set()
        self._doubted: tuple[str, int] = ("", 0)  # block hash, empty answers the bloom doubts

    # --- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        """Check the chain id, load the checkpoint, redeliver an interrupted batch."""
        chain_id = await asyncio.to_thread(self.rpc.chain_id)
        if not 1 <= chain_id <= MAX_CHAIN_ID:
            raise ChainIdMismatch(
                f"the RPC serves chain {chain_id}: events carry chain ids 1..2**53 only"
            )
        if self.config.chain_id and chain_id != self.config.chain_id:
            raise ChainIdMismatch(
                f"the RPC serves chain {chain_id}, C360_CHAIN_CHAIN_ID says {self.config.chain_id}"
            )
        self.chain_id = chain_id
        name = self.config.name or str(chain_id)
        self.scope = Scope(
            chain_id=chain_id,
            contracts=frozenset(self.config.contracts),
            wallets=frozenset(self.config.wallets),
            treasuries=frozenset(self.config.treasuries),
            source=f"{SOURCE_PREFIX}{name}",
        )
        cp = cpmod.load(self.path)
        if cp is not None:
            if cp.chain_id != chain_id:
                raise ChainIdMismatch(
                    f"the checkpoint {self.path} is of chain {cp.chain_id}, "
                    f"the RPC serves {chain_id}"
                )
            self.window = cpmod.to_window(cp.window, self.config.window)
            if cp.number is not None:
                self.next_block = cp.number + 1
            if cp.redo is not None:
                log.warning("redelivering %d events of an interrupted batch", len(cp.redo.events))
                redo_window = cpmod.to_window(cp.redo.window, self.config.window)
                await self._deliver(Batch(window=redo_window, events=list(cp.redo.events)))
        self.metrics.processed_block.set(self.next_block - 1)
        self._started = True

    async def run(self, stop: asyncio.Event) -> None:
        """Step until ``stop`` is set; wait ``poll_interval`` when caught up.

        Transient RPC failures (after the RPC's own retries) are logged and retried
        at the next poll; a deep reorg, a chain id mismatch or a Kafka failure stops it.
        """
        if not self._started:
            await self.start()
        self.metrics.up.labels("chain").set(1)
        try:
            while not stop.is_set():
                try:
                    busy = await self.step()
                except DeepReorg:
                    raise
                except RangeTooLarge:
                    raise
                except RpcError as exc:
                    log.warning("RPC: %s; retrying in %.1fs", exc, self.config.poll_interval)
                    busy = False
                if not busy:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.config.poll_interval)
        finally:
            self.metrics.up.labels("chain").set(0)

    # --- one step -------------------------------------------------------------------
    async def step(self) -> bool:
        """Plan, deliver and commit one batch; True when more work is available now."""
        if not self._started:
            await self.start()
        batch = await asyncio.to_thread(self._plan, self.window.copy(), self.next_block)
        if batch is None:
            return False
        await self._deliver(batch)
        if batch.reorg_depth:
            self.metrics.reorgs.inc()
            self.metrics.reorg_depth.set(batch.reorg_depth)
        return batch.more

    async def _deliver(self, batch: Batch) -> None:
        """Redo record, produce, await the acks, then commit the checkpoint."""
        if batch.events:
            redo = cpmod.Redo(events=batch.events, window=cpmod.blocks_of(batch.window))
            cpmod.save(self.path, cpmod.of_window(self.chain_id, self.window, redo))
        for event in batch.events:
            self.sink.add(topics.CHAIN_EVENTS, key_of(event), event)
        for snap in batch.holdings:
            self.sink.add(topics.HOLDINGS, snap.wallet, snap)
        await self.sink.flush()  # raises when Kafka did not acknowledge: nothing is committed
        self.commit(batch)

    def commit(self, batch: Batch) -> None:
        """Adopt the batch's window and write the checkpoint (after the acks)."""
        cpmod.save(self.path, cpmod.of_window(self.chain_id, batch.window))
        self.window = batch.window
        newest = batch.window.newest
        if newest is not None:
            self.next_block = newest.number + 1
            self.metrics.processed_block.set(newest.number)
        for event in batch.events:
            self.metrics.events.labels("retract" if event.op == "retract" else event.kind).inc()
        if batch.holdings:
            self.metrics.events.labels("holding").inc(len(batch.holdings))

    # --- planning (runs in a thread: blocking RPC calls) -----------------------------
    def _plan(self, window: BlockWindow, start: int) -> Batch | None:
        head = self.rpc.head()
        self.metrics.head_block.set(head)
        target = head - self.config.confirmations
        if start > target:
            # Caught up. A reorg to a branch no longer than ours shows only here.
            try:
                return self._undo_if_orphaned(window)
            except BlockMissing:
                return None  # a backend behind the head we were given: ask again later
        if not len(window) and start > 0:
            # A fresh start: anchor the window with the parent of the first block read
            # (no events), so a reorg of that block finds its common ancestor.
            parent = self.rpc.block(start - 1)
            window.push(WindowBlock(parent.number, parent.hash, parent.parent_hash))
        backfill_to = target - window.size
        if start <= backfill_to:
            # A resume far behind (after a stop or an RPC outage longer than the window)
            # backfills, and the backfill never compares parent hashes: first check that
            # the chain still has the newest block we delivered, else undo the reorg.
            return self._undo_if_orphaned(window) or self._backfill(window, start, backfill_to)
        return self._follow(window, start, target)

    def _undo_if_orphaned(self, window: BlockWindow) -> Batch | None:
        """The reorg's batch when the node's block at the window's newest height differs.

        Heights the node lacks are no evidence: it may be a shorter branch, or a backend
        behind the others. Below them, the node's highest block of the window decides:
        another hash is a reorg; ours means a backend behind (BlockMissing: ask again
        later). Raises BlockMissing too when the node has none of the window's blocks.
        """
        newest, oldest = window.newest, window.oldest
        if newest is None or oldest is None:
            return None
        number = newest.number
        while True:
            try:
                canonical = self.rpc.block(number).hash
                break
            except BlockMissing:
                if number <= oldest.number:
                    raise
                number -= 1
        if window.hash_at(number) == canonical:
            if number == newest.number:
                return None
            raise BlockMissing(
                f"the node lacks blocks {number + 1}..{newest.number} but has block {number} "
                "as we do: a backend behind the others; asked again later"
            )
        batch = Batch(window=window)
        self._reorg(batch, number)
        batch.more = True
        return batch

    def _reorg(self, batch: Batch, top: int | None = None) -> None:
        """Walk back from ``top`` (default: the newest block) to the common ancestor;
        retract everything above it, newest first.

        Only a different hash at a height is a reorg: BlockMissing (a backend behind)
        stops the walk before anything is rolled back, to be tried again later.
        """
        window = batch.window
        newest = window.newest
        assert newest is not None
        number = newest.number if top is None else top
        while not window.is_ancestor(number, self.rpc.block(number).hash):
            number -= 1
        depth = newest.number - number
        if depth == 0:  # the node has our newest block, yet served a child of another one
            raise BlockMissing(
                f"the node has block {number} as we do but served a block {number + 1} "
                "whose parent is another one (backends out of step): asked again later"
            )
        log.warning(
            "reorg: blocks %d..%d orphaned (common ancestor %d)", number + 1, newest.number, number
        )
        batch.events.extend(window.rollback(number))
        batch.reorg_depth = max(batch.reorg_depth, depth)

    def _block_batch(self, block: Block, logs: list) -> list[ChainEvent]:
        assert self.scope is not None
        receipts = {
            tx.hash: self.rpc.receipt(tx.hash)
            for tx in block.transactions
            if self.scope.wants_tx(tx)
        }
        for r in receipts.values():
            if r.block_hash != block.hash:
                raise BlockMissing(f"receipt {r.tx_hash} is of another version of {block.number}")
        try:
            events = block_events(self.scope, block, logs, receipts)
        except ValueError as exc:
            raise BlockMissing(str(exc)) from None
        return [e for e in map(self._fit, events) if e is not None]

    def _fit(self, event: ChainEvent) -> ChainEvent | None:
        """The event as the contract accepts it (an event in the window that breaks it would
        make the checkpoint unreadable); an altered or refused one is counted and logged."""
        fitted, reason, error = fit(event)
        if reason is not None:
            self.metrics.unfit_events.labels(reason).inc()
            outcome = "emitted without its data" if fitted is not None else "NOT emitted"
            log.warning(
                "event %s breaks the event contract (%s): %s", event.event_id, error, outcome
            )
        return fitted

    def _logs(self, start: int, end: int) -> list:
        if not self.config.contracts:
            return []
        return self.rpc.logs(start, end, self.config.contracts, self.topic0s)

    def _block_logs(self, block: Block) -> list:
        """The watched logs of ``block``; BlockMissing when the node says none but the
        block's logsBloom says maybe (a load-balanced backend that lacks the block
        answers ``[]``), until the node said so ``empty_confirmations`` times."""
        if not self.config.contracts:
            return []
        try:
            logs = self.rpc.block_logs(block, self.config.contracts, self.topic0s)
        except RangeTooLarge as exc:
            # One block cannot be split: a passing refusal (the step is tried again at
            # the next poll), not the backfill's fatal one.
            raise RpcError(f"eth_getLogs of block {block.number} refused: {exc}", "range") from exc
        if (
            logs
            or block.logs_bloom is None
            or not may_have_logs(block.logs_bloom, self.config.contracts, self.topic0s)
        ):
            return logs
        doubted, tries = self._doubted
        tries = tries + 1 if doubted == block.hash else 1
        self._doubted = (block.hash, tries)
        if tries < self.empty_confirmations:
            raise BlockMissing(
                f"block {block.number}: no log returned, but its logsBloom may hold one "
                f"(attempt {tries} of {self.empty_confirmations})"
            )
        log.warning(
            "block %d: no log returned %d times though its logsBloom may hold one: "
            "taken as none (a bloom false positive)",
            block.number,
            tries,
        )
        return logs

    def _follow(self, window: BlockWindow, start: int, target: int) -> Batch:
        batch = Batch(window=window)
        number = start
        last = min(target, start + self.follow_batch - 1)
        while number <= last:
            try:
                block = self.rpc.block(number)
                if not window.extends(number, block.parent_hash):
                    self._reorg(batch)
                    newest = window.newest
                    number = newest.number + 1 if newest else number
                    continue
                logs = self._block_logs(block)
                events = self._block_batch(block, logs)
                holdings = self._holdings(block, target + self.config.confirmations)
            except BlockMissing as exc:
                if not batch.events and number == start:
                    raise
                log.info("stopping the batch at block %d: %s", number, exc)
                return batch  # deliver what is complete; the next step retries
            window.push(WindowBlock(block.number, block.hash, block.parent_hash, events))
            batch.events.extend(events)
            batch.holdings.extend(holdings)
            number += 1
        batch.more = last < target
        return batch

    def _backfill(self, window: BlockWindow, start: int, backfill_to: int) -> Batch:
        assert self.scope is not None
        lo, hi = self.ranges.next_range(start, backfill_to)
        # every block when transactions are scanned; else those with logs, and the last one
        scan_txs = bool(self.scope.wallets or self.scope.treasuries)
        if scan_txs:  # fetching every block: keep batches short, the checkpoint moving
            hi = min(hi, lo + self.scan_batch - 1)
        try:
            logs = self._logs(lo, hi)
        except RpcError as exc:  # counted in rpc_errors by the RetryingRpc
            # Providers word "range too large" in many ways (and some answer HTTP 413):
            # any error that retrying cannot fix halves the range; only a one-block
            # range that still fails stops the connector.
            if exc.transient:
                raise
            if not self.ranges.too_large(hi - lo + 1, getattr(exc, "suggested", None)):
                raise RangeTooLarge(
                    f"eth_getLogs fails even for the single block {lo} "
                    f"(contracts and events as configured): {exc}"
                ) from exc
            self.metrics.logs_range.set(self.ranges.size)
            log.info("eth_getLogs range %d..%d refused (%s); now %d", lo, hi, exc, self.ranges.size)
            return Batch(window=window, more=True)
        self.ranges.success()
        self.metrics.logs_range.set(self.ranges.size)
        by_block: dict[int, list] = {}
        for entry in logs:
            by_block.setdefault(entry.block_number, []).append(entry)
        numbers = range(lo, hi + 1) if scan_txs else sorted({*by_block, hi})
        batch = Batch(window=window)
        block = None
        for number in numbers:
            block = self.rpc.block(number)
            batch.events.extend(self._block_batch(block, by_block.get(number, [])))
        assert block is not None
        # Below the window: only the last block's hash is kept, to check the next one.
        batch.window = BlockWindow(window.size, [WindowBlock(hi, block.hash, block.parent_hash)])
        batch.more = True
        return batch

    def _holdings(self, block: Block, head: int) -> list[HoldingSnapshot]:
        """The wallets' snapshots at ``block``, best effort: a balance that cannot be read
        skips that snapshot (counted, logged once per reason), never the block's events."""
        every = self.config.holdings_every
        if not every or block.number % every or not self.config.wallets:
            return []
        if block.number <= head - self.state_depth:
            return []  # a pruned node no longer has its state; a later snapshot supersedes it
        observed = datetime.fromtimestamp(block.timestamp, UTC)
        out = []
        for wallet in self.config.wallets:
            for token in ("native", *self.config.holdings_tokens):
                try:
                    if token == "native":
                        balance = self.rpc.balance(wallet, block.number)
                    else:
                        balance = self.rpc.token_balance(token, wallet, block.number)
                except Exception as exc:  # best effort: any failure skips this snapshot
                    self._holding_failed(token, block.number, exc)
                    continue
                out.append(
                    HoldingSnapshot(
                        wallet=wallet,
                        chain_id=self.chain_id,
                        token=token,
                        balance=str(balance),
                        block_number=block.number,
                        observed_at=observed,
                    )
                )
        return out

    def _holding_failed(self, token: str, number: int, exc: Exception) -> None:
        reason = holding_failure(exc)
        self.metrics.holdings_failed.labels(reason).inc()
        if reason not in self._holding_failures_logged:
            self._holding_failures_logged.add(reason)
            log.warning(
                "holdings: skipping snapshots whose balance read fails (%s; first: %s at "
                "block %d: %s); counted in c360_chain_holdings_failed_total, logged once",
                reason,
                token,
                number,
                exc,
            )
