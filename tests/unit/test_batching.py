"""take_groups acks a group only once its agent handled it (stream/shell/batching.py).

The stream is a stand-in with the few members take_groups uses (its stop and crash
events are mode's, as a faust stream's are); events are delivered as faust's passive
drainer does (set the current event, run the processors)."""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace

import pytest
from mode.utils.locks import Event

from stream.shell.batching import take_groups


class Stream:
    def __init__(self) -> None:
        self.channel = self
        self.current_event = None
        self.enable_acks = True
        self._stopped = Event()
        self._crashed = Event()
        self.loop = asyncio.get_running_loop()
        self.acked: list[int] = []
        self._processors: list = []
        self._active_agens: set = set()

    def __aiter__(self):
        return self

    async def __anext__(self):  # the passive drainer reads the channel, not take_groups
        raise StopAsyncIteration

    def add_processor(self, processor) -> None:
        self._processors.append(processor)

    def _enable_passive(self, channel_it) -> None:
        pass

    @property
    def should_stop(self) -> bool:  # as mode's Service has it
        return self._stopped.is_set() or self._crashed.is_set()

    async def ack(self, event) -> None:
        self.acked.append(event.value)

    async def deliver(self, value: int) -> None:
        self.current_event = SimpleNamespace(value=value, message=SimpleNamespace(value=b"x"))
        for processor in self._processors:
            await processor(value)


async def _until(condition, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.001)


async def _started(stream: Stream, agent) -> asyncio.Task:
    """The agent running, its take_groups registered with the stream."""
    task = asyncio.ensure_future(agent)
    await _until(lambda: stream._processors)
    return task


async def _cancelled(task: asyncio.Task) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def test_a_group_is_acked_once_the_agent_asks_for_the_next_one():
    async def scenario():
        stream = Stream()
        handled: list[list[int]] = []
        done = asyncio.Event()

        async def agent():
            async for group in take_groups(stream, 10, 0.01):
                assert stream.acked == [v for g in handled for v in g]  # not this one yet
                handled.append([e.value for e in group])
                if len(handled) == 2:
                    done.set()

        task = await _started(stream, agent())
        for value in (1, 2):
            await stream.deliver(value)
        await _until(lambda: len(handled) == 1)
        await stream.deliver(3)
        await asyncio.wait_for(done.wait(), 5)
        await _until(lambda: stream.acked == [1, 2, 3])
        task.cancel()
        return handled

    assert asyncio.run(scenario()) == [[1, 2], [3]]


def test_a_group_whose_handling_was_cut_short_is_never_acked():
    async def scenario():
        stream = Stream()
        handling = asyncio.Event()

        async def agent():
            groups = take_groups(stream, 10, 0.01)
            try:
                async for group in groups:
                    if group[0].value == 3:
                        handling.set()
                        await asyncio.sleep(60)  # a stop or a rebalance cancels it here
            finally:
                await groups.aclose()  # as faust closes the stream's generators

        task = await _started(stream, agent())
        for value in (1, 2):
            await stream.deliver(value)
        await _until(lambda: stream.acked == [1, 2])  # handled, then acked
        await stream.deliver(3)
        await asyncio.wait_for(handling.wait(), 5)
        await _cancelled(task)
        return stream.acked

    assert asyncio.run(scenario()) == [1, 2]


def test_an_agent_with_work_due_gets_an_empty_group_when_nothing_comes():
    async def scenario():
        stream = Stream()
        due: list[float | None] = [None]  # what the agent's idle() answers
        groups_seen: list[list[int]] = []

        async def agent():
            async for group in take_groups(stream, 10, 0.01, idle=lambda: due[0]):
                groups_seen.append([e.value for e in group])
                due[0] = 0.02 if group else None  # open work after a group, none after []

        task = await _started(stream, agent())
        await asyncio.sleep(0.05)
        assert groups_seen == []  # nothing due: it waits for records only
        await stream.deliver(1)
        await _until(lambda: groups_seen == [[1], []])  # the group, then [] once due
        await stream.deliver(2)  # records still come in groups of their own
        await _until(lambda: groups_seen == [[1], [], [2], []])
        await _until(lambda: stream.acked == [1, 2])  # [] acks nothing
        await asyncio.sleep(0.05)  # and once the work is done, no more of them
        await _cancelled(task)
        return groups_seen

    assert asyncio.run(scenario()) == [[1], [], [2], []]


@pytest.mark.parametrize("signal", ["_stopped", "_crashed"])
def test_a_stop_or_a_crash_ends_a_waiting_generator(signal):
    async def scenario():
        stream = Stream()
        groups_seen: list[list[int]] = []

        async def agent():
            async for group in take_groups(stream, 10, 60.0):  # a linger it never sees out
                groups_seen.append([e.value for e in group])

        task = await _started(stream, agent())
        await stream.deliver(1)
        await asyncio.sleep(0.02)
        assert groups_seen == []  # lingering for more
        getattr(stream, signal).set()  # it hands over what it holds, then ends
        await asyncio.wait_for(task, 5)
        assert not stream._stopped._waiters and not stream._crashed._waiters
        return groups_seen

    assert asyncio.run(scenario()) == [[1]]


def test_a_full_buffer_ends_the_linger_and_holds_the_next_record_back():
    async def scenario():
        stream = Stream()
        groups_seen: list[list[int]] = []
        release = asyncio.Event()

        async def agent():
            async for group in take_groups(stream, 2, 60.0):
                groups_seen.append([e.value for e in group])
                await release.wait()

        task = await _started(stream, agent())
        await stream.deliver(1)
        full = asyncio.ensure_future(stream.deliver(2))  # the second fills the buffer
        await _until(lambda: groups_seen == [[1, 2]])
        assert not full.done()  # held until its group was handled
        third = asyncio.ensure_future(stream.deliver(3))
        await asyncio.sleep(0.02)
        assert stream.acked == []
        release.set()
        await asyncio.wait_for(asyncio.gather(full, third), 5)
        await _until(lambda: stream.acked == [1, 2])
        await _cancelled(task)
        return groups_seen

    assert asyncio.run(scenario()) == [[1, 2]]
