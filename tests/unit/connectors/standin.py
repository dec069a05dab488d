"""A Kafka stand-in for the connectors' unit tests: the real :class:`BatchProducer` code
runs, only the network client is replaced, so no broker is needed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from connectors.producer import BatchProducer
from stream.settings import Settings


class FakeKafka:
    """What ``AIOKafkaProducer.send`` does, in memory: a future per record, acknowledged
    at once, failed with ``fail`` when it is set, or left pending (in ``pending``) while
    ``hang`` is set, as the idempotent producer does while the broker refuses."""

    def __init__(self) -> None:
        self.records: list[tuple[str, int, bytes]] = []
        self.fail: Exception | None = None
        self.hang = False
        self.pending: list[tuple[asyncio.Future, tuple[str, int, bytes]]] = []
        self.client = self  # AIOKafkaProducer.client: what the producer's probe asks
        self.unreachable = False

    async def fetch_all_metadata(self) -> dict:
        """What the probe asks: raises, as aiokafka does, when no broker answers."""
        if self.unreachable:
            raise ConnectionError("Unable to get cluster metadata over all known brokers")
        return {}

    def acknowledge(self) -> None:
        """Acknowledge the pending records."""
        for future, record in self.pending:
            self.records.append(record)
            future.set_result(None)
        self.pending.clear()

    async def send(self, topic: str, value: bytes, *, partition: int) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self.fail is not None:
            future.set_exception(self.fail)
        elif self.hang:
            self.pending.append((future, (topic, partition, value)))
        else:
            self.records.append((topic, partition, value))
            future.set_result(None)
        return future

    async def stop(self) -> None:
        return None

    def events(self) -> list[dict[str, Any]]:
        """Every event of every record, in order."""
        return [e for _, _, r in self.records for e in json.loads(r)]


class StandInProducer(BatchProducer):
    """A :class:`BatchProducer` whose Kafka client is a :class:`FakeKafka`."""

    def __init__(self, settings: Settings, **kw: Any) -> None:
        super().__init__(settings, **kw)
        self.kafka = FakeKafka()

    async def start(self) -> None:
        self._producer = self.kafka  # type: ignore[assignment]


@contextlib.asynccontextmanager
async def serving(
    make_app: Callable[[BatchProducer], web.Application], settings: Settings
) -> AsyncIterator[tuple[TestClient, FakeKafka]]:
    """Serve the app ``make_app`` builds around a stand-in producer, without a broker."""
    from stream import admin

    original = admin.ensure_topics

    async def no_topics(*args: Any, **kwargs: Any) -> None:
        return None

    admin.ensure_topics = no_topics  # type: ignore[assignment]
    producer = StandInProducer(settings)
    try:
        async with TestClient(TestServer(make_app(producer))) as client:
            yield client, producer.kafka
    finally:
        admin.ensure_topics = original  # type: ignore[assignment]


async def raw_post(client: TestClient, path: str, headers: bytes, body: bytes) -> tuple[int, bytes]:
    """POST with header bytes as given (a client library would refuse non-ASCII ones):
    the status and the body of the answer."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(
        b"POST %s HTTP/1.1\r\nHost: test\r\n%s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\nConnection: close\r\n\r\n%s"
        % (path.encode(), headers, len(body), body)
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    head, _, payload = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), payload


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait until ``condition()`` holds, checked at every turn of the loop; fail after
    ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0)
