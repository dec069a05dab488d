"""The lookup API's views (stream/shell/api.py) served over the simulator's state.

Each "worker" is a plain aiohttp server holding the views :func:`register` declares,
mounted as faust's aiohttp driver mounts them, and owning the partitions ``p`` with
``p % count == index``; faust's router is stood in for by the same key partitioner.
The stages' state is the simulator's (the real core stages), so a test can step the
pipeline one internal delivery at a time and ask the API at each step. No Kafka.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer, unused_port
from yarl import URL

from stream.app import faust_options
from stream.core.partitioner import partition_for
from stream.settings import Settings
from stream.shell.api import register
from stream.sim import Simulator

API_KEY = "test-key"


class _Table:
    def __init__(self, sim: Simulator, stage: str, partitions: int) -> None:
        self.partitions = partitions
        self.data = SimpleNamespace(reader=lambda p: sim.state(stage, p))
        self.changelog_topic = SimpleNamespace(get_topic_name=lambda: f"{stage}-changelog")


class _Producer:
    async def partitions_for(self, topic: str) -> set[int]:
        return set()


class Worker:
    """One worker's app: what :func:`register` needs of faust, and the views it adds."""

    def __init__(self, sim: Simulator, own: str, owner_of: Any, api_key: str) -> None:
        tables = {
            "route": _Table(sim, "route", sim.partitions),
            "profile": _Table(sim, "profile", sim.partitions),
            "channel": _Table(sim, "channel", sim.partitions),
        }
        self.in_recovery = False
        self.conf = SimpleNamespace(canonical_url=own)
        self.producer = SimpleNamespace(_ensure_producer=_Producer)
        self.router = SimpleNamespace(
            key_store=lambda table, key: URL(
                owner_of(partition_for(key.decode(), tables[table].partitions))
            )
        )
        self.views: list[tuple[str, Any]] = []
        c360 = SimpleNamespace(
            app=self,
            tables=tables,
            settings=SimpleNamespace(api_key=api_key),
            aggregator=sim.aggregator,
            prices=sim.prices,
            stages={},
        )
        self.lookups = register(c360)  # type: ignore[arg-type]

    def page(self, pattern: str):
        def add(view: Any) -> Any:
            self.views.append((pattern, view))
            return view

        return add

    def web_app(self) -> web.Application:
        app = web.Application(**faust_options(Settings())["web_application_options"])
        for pattern, view in self.views:

            async def handler(request: web.Request, view: Any = view) -> web.StreamResponse:
                return await view.get(None, request, **request.match_info)

            app.router.add_route("GET", pattern, handler)
        return app


@asynccontextmanager
async def workers(
    sim: Simulator, count: int = 2, api_key: str = API_KEY, owners: dict[int, str] | None = None
) -> AsyncIterator[list[TestClient]]:
    """``count`` workers over ``sim``'s state, as test clients (index = worker).
    ``owners`` overrides the owner URL of some partitions (e.g. a worker that is down)."""
    ports = [unused_port() for _ in range(count)]
    urls = [f"http://127.0.0.1:{port}" for port in ports]

    def owner_of(partition: int) -> str:
        return (owners or {}).get(partition) or urls[partition % count]

    clients = []
    try:
        for index in range(count):
            worker = Worker(sim, urls[index], owner_of, api_key)
            server = TestServer(worker.web_app(), host="127.0.0.1", port=ports[index])
            client = TestClient(server)
            await client.start_server()
            client.worker = worker  # type: ignore[attr-defined]
            clients.append(client)
        yield clients
    finally:
        for client in clients:
            if client.worker.lookups._session is not None:  # type: ignore[attr-defined]
                await client.worker.lookups._session.close()  # type: ignore[attr-defined]
            await client.close()


async def get(client: TestClient, path: str, api_key: str = API_KEY) -> tuple[int, Any]:
    """(status, JSON body) of an authorized GET."""
    response = await client.get(path, headers={"X-API-Key": api_key})
    return response.status, await response.json()
