"""Groups of a faust stream's events: up to ``max_`` (and ``max_bytes``), lingering
``within`` seconds after the first.

faust's ``Stream.take_events(max_, within)`` wakes every ``within`` seconds whether or
not anything arrived, and every wake-up goes through mode's ``wait_first`` (new tasks
and futures each time): with five agents at ``within=5 ms`` an idle worker spent
15-20 % of a core waking up, and a busy one paid it too. Here an agent sleeps until
its first event arrives, then waits at most ``within`` for the group to fill — the
producer's ``linger.ms`` — so no time passes in timers while nothing comes.

A group also ends once its records hold ``max_bytes`` (the record that crosses it is the
last): records are batches of very different sizes, and a group's size is its memory
(decoded state, outgoing records) and the time before its first output leaves.

An agent that keeps work open between groups (a stage's uncommitted state) passes
``idle``: the seconds until that work is due (None: none). When that much time passes
with nothing arriving, it gets an empty group, so it can finish the work.

Everything else is faust's take_events: a passive processor fills the buffer, acks
are manual and only after the group was handled, the buffer never holds more than
``max_`` events, and the generator restores the stream when it ends. One difference:
take_events acks a group even when the agent was cancelled while handling it (its
``finally``), so a worker stopping gracefully, or giving partitions away, committed
offsets past records whose outputs were never sent — lost for a stateless agent
(ingest). Here a group is acked only once the agent asks for the next one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

from mode.utils.futures import notify


def take_groups(
    stream: Any,
    max_: int,
    within: float,
    max_bytes: int | None = None,
    idle: Callable[[], float | None] | None = None,
) -> AsyncIterator[list[Any]]:
    """Lists of events: each as soon as ``max_`` are buffered (or their values hold
    ``max_bytes``), or ``within`` seconds after the first of them arrived; an empty list
    when ``idle()`` seconds passed with nothing arriving (see the module doc).
    Registered with the stream, which closes it on stop."""
    groups = _take_groups(stream, max_, within, max_bytes, idle)
    stream._active_agens.add(groups)
    return groups


async def _take_groups(
    stream: Any,
    max_: int,
    within: float,
    max_bytes: int | None,
    idle: Callable[[], float | None] | None,
) -> AsyncIterator[list[Any]]:
    buffer: list[Any] = []
    size = 0  # bytes of the buffered values
    arrived = asyncio.Event()  # the buffer holds something
    full = asyncio.Event()
    consumed = asyncio.Event()
    consuming: asyncio.Future | None = None
    channel_it = aiter(stream.channel)

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming, size
        if consuming is not None:  # a group is being handled: wait for it
            try:
                await consuming
            finally:
                consuming = None
        event = stream.current_event
        if event is None:
            raise RuntimeError("take_groups: the stream has no current event")
        buffer.append(event)
        size += len(event.message.value or b"")
        arrived.set()
        if len(buffer) >= max_ or (max_bytes is not None and size >= max_bytes):
            full.set()
            consumed.clear()
            await stream.wait(consumed)  # never more than max_ in the buffer
        return value

    acks = stream.enable_acks
    stream.enable_acks = False  # events are acked after their group was handled
    stream.add_processor(add_to_buffer)
    stream._enable_passive(channel_it)
    try:
        while not stream.should_stop:
            due = idle() if idle is not None else None
            await stream.wait_for_stopped(arrived, timeout=due)
            if not arrived.is_set():
                if due is not None and not stream.should_stop:
                    yield []  # nothing came: the agent's open work is due
                continue
            if not full.is_set():
                await stream.wait_for_stopped(full, timeout=within)
            if not buffer:
                continue
            consuming = stream.loop.create_future()
            group = list(buffer)
            handled = False
            try:
                yield group
                handled = True  # the agent asked for the next group: this one is done
            finally:
                buffer.clear()
                size = 0
                arrived.clear()
                full.clear()
                if handled:
                    # never ack a group whose handling was cut short (the agent was
                    # cancelled at a stop or a rebalance): faust would commit past it
                    for event in group:
                        await stream.ack(event)
                notify(consuming)
                consumed.set()
    finally:
        stream.enable_acks = acks
        stream._processors.remove(add_to_buffer)
