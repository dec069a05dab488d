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

Waiting costs no task. mode's ``Service.wait`` (what take_events waits with) makes
three tasks and an ``asyncio.wait`` per call, twice per group: after a 300k drain, paced
at 4,000 events/s, a worker spent 191 µs of CPU per event with it and 169-172 without
(two alternated pairs); 20 single-event records a second cost 4.2-4.8 ms of event-loop
CPU per record with it, 3.5-4.0 without. Here the generator sleeps on one future that
the first record, a full buffer, a timer, or the stream's stop or crash resolves.

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
    full = False
    want_full = False  # the generator waits for a full buffer, not for a first record
    waiting: asyncio.Future | None = None  # what the generator sleeps on
    consuming: asyncio.Future | None = None  # a group is being handled
    consumed: asyncio.Future | None = None  # a full buffer waits for its group's end
    loop = stream.loop
    channel_it = aiter(stream.channel)

    async def add_to_buffer(value: Any) -> Any:
        nonlocal consuming, consumed, size, full
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
        if len(buffer) >= max_ or (max_bytes is not None and size >= max_bytes):
            full = True
            _resolve(waiting)
            consumed = loop.create_future()
            await _sleep(stream, consumed, None)  # never more than max_ in the buffer
        elif not want_full:
            _resolve(waiting)  # the first record of a group
        return value

    async def until(timeout: float | None) -> None:
        nonlocal waiting
        waiting = loop.create_future()
        try:
            await _sleep(stream, waiting, timeout)
        finally:
            waiting = None

    acks = stream.enable_acks
    stream.enable_acks = False  # events are acked after their group was handled
    stream.add_processor(add_to_buffer)
    stream._enable_passive(channel_it)
    try:
        while not stream.should_stop:  # mode's: stopped or crashed
            due = idle() if idle is not None else None
            if not buffer:
                await until(due)
            if not buffer:
                if due is not None and not stream.should_stop:
                    yield []  # nothing came: the agent's open work is due
                continue
            if not full:
                want_full = True
                try:
                    await until(within)
                finally:
                    want_full = False
            consuming = loop.create_future()
            group = list(buffer)
            handled = False
            try:
                yield group
                handled = True  # the agent asked for the next group: this one is done
            finally:
                buffer.clear()
                size = 0
                full = False
                if handled:
                    # never ack a group whose handling was cut short (the agent was
                    # cancelled at a stop or a rebalance): faust would commit past it
                    for event in group:
                        await stream.ack(event)
                notify(consuming)
                _resolve(consumed)
    finally:
        stream.enable_acks = acks
        stream._processors.remove(add_to_buffer)


def _resolve(future: asyncio.Future | None) -> None:
    if future is not None and not future.done():
        future.set_result(None)


async def _sleep(stream: Any, future: asyncio.Future, timeout: float | None) -> None:
    """Wait for ``future``, at most ``timeout`` seconds, or until the stream stops or
    crashes. mode's ``Service.wait`` makes three tasks and an ``asyncio.wait`` for
    every call, twice per group; here the future is added to the waiters of the
    stream's stop and crash events (mode's ``Event`` resolves every future there when
    it is set) and a timer resolves it."""
    timer = None if timeout is None else stream.loop.call_later(timeout, _resolve, future)
    signals = (stream._stopped, stream._crashed)
    for signal in signals:
        if signal.is_set():
            _resolve(future)
        signal._waiters.append(future)
    try:
        await future
    finally:
        if timer is not None:
            timer.cancel()
        for signal in signals:
            signal._waiters.remove(future)
