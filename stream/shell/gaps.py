"""faust's record of the offsets its consumer skipped, kept without a rebuild per skip.

faust's commit bookkeeping keeps, per partition, an ``IntervalTree`` of the offsets its
fetcher passed over (``Consumer._gap``): a transactional producer's commit markers take
offsets that are never handed to a consumer, and faust counts them as acknowledged when
it commits (``Consumer._new_offset``). faust-streaming 0.15.3's ``Consumer._add_gap``
adds each skip and then rebuilds the whole tree (``merge_overlaps``), and the tree is cut
back only by a commit, up to the highest offset acknowledged: with a backlog the fetcher
runs ahead of the agents, and every marker rebuilt the intervals of all the markers
passed since (a cost quadratic in them). Measured (a backlog of 8,000
one-event transactions on 4 partitions): ~70 % of the worker's main thread went there,
and ingest took ~700 events/s against 3,900-5,400 for plain records (2,600-4,100
with :func:`install`).

:func:`install` gives a consumer an ``_add_gap`` that does the same, except that the tree
is rebuilt only when the new interval overlaps one it holds (the offsets were passed
over again, after a seek back), which is the only case where the rebuild changes it: the
intervals it holds stay the same, and ``_new_offset`` reads them as before.

faust records a skip only after a record whose offset is truthy (``gap > 1 and
r_offset``): after the record at offset 0, the offsets passed over up to the next one
were no gap. A single marker there is harmless (``_new_offset`` lets one offset past
the committed one be missing), but an aborted transaction's records and their marker
(read committed, stream/shell/isolation.py) left two or more, and faust committed
nothing of the partition again (until a seek back to the committed offset). So
:func:`install` also has the consumer's callback record that skip, as faust would.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from faust.types import TP

log = logging.getLogger(__name__)


def install(consumer: Any) -> None:
    """Give faust's ``consumer`` :func:`add_gap` for its ``_add_gap``; a consumer that
    keeps its gaps otherwise (another faust) keeps its own."""
    if not callable(getattr(consumer, "_add_gap", None)) or not hasattr(consumer, "_gap"):
        log.warning("faust's consumer keeps no gaps as 0.15.3 did: its own are kept")
        return

    async def _add_gap(tp: TP, offset_from: int, offset_to: int) -> None:
        await add_gap(consumer, tp, offset_from, offset_to)

    consumer._add_gap = _add_gap
    callback = getattr(consumer, "callback", None)
    if callable(callback):
        consumer.callback = after_zero(consumer, callback)


def after_zero(consumer: Any, callback: Any) -> Any:
    """``callback`` (faust's, called with each record its fetcher hands on, before faust
    sets its read offset), which first records the offsets passed over since a read
    offset of 0 (faust records none: see the module)."""

    async def on_message(message: Any) -> Any:
        offset, tp = message.offset, message.tp
        if (
            offset > 1
            and consumer._read_offset.get(tp) == 0
            and consumer.app.topics.acks_enabled_for(message.topic)
        ):
            await add_gap(consumer, tp, 1, offset)  # as faust's: r_offset + 1..offset
        return await callback(message)

    return on_message


async def add_gap(consumer: Any, tp: TP, offset_from: int, offset_to: int) -> None:
    """Record that ``consumer`` passed over ``tp``'s offsets ``offset_from..offset_to``
    (inclusive), as faust's ``Consumer._add_gap``: from past the committed offset on, as
    one more interval of the partition's tree, merged with those it overlaps."""
    committed = consumer._committed_offset[tp]
    gaps = consumer._gap[tp]
    if committed is not None:
        offset_from = max(offset_from, committed + 1)
    if offset_from > offset_to:
        return
    end = offset_to + 1  # intervals exclude their end
    overlapping = gaps.overlap(offset_from, end)  # O(log n) for a tree's new last interval
    gaps.addi(offset_from, end)
    if overlapping:
        gaps.merge_overlaps()  # intervals never overlap: _new_offset adds them up
    await asyncio.sleep(0)  # as faust's: other coroutines get some loop time
