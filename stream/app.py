"""The Faust application: configuration, topics, the agents and the web server.

This is the imperative shell. Every agent is a few lines around the pure core
(:mod:`stream.core`): read a record, call the core, write state, send messages.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import faust
import mode
from aiohttp import web

from stream import topics
from stream.core import rules as rules_mod
from stream.settings import Settings
from stream.shell import store
from stream.shell.metrics import METRICS

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class C360:
    """A configured Faust app and its topics."""

    settings: Settings
    app: faust.App
    rules: rules_mod.Compiled
    topics: dict[str, faust.TopicT] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, Any] = field(default_factory=dict)
    lookups: Any = None
    aggregator: Any = None
    rewind: Any = None
    #: the worker's event loop (set when the app starts): faust's objects belong to it
    loop: asyncio.AbstractEventLoop | None = None

    async def on_loop(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the worker's event loop, awaited from any thread's loop (the
        web server's: :mod:`stream.shell.web`)."""
        loop = self.loop
        if loop is None or asyncio.get_running_loop() is loop:
            return await coro
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coro, loop))

    @property
    def rocksdb_options(self) -> dict[str, int]:
        """Per-partition RocksDB options, sized for a small machine (faust: 2 GiB cache each)."""
        s = self.settings
        return {
            "block_cache_size": s.rocksdb_block_cache_mb * 1024 * 1024,
            "block_cache_compressed_size": 0,
            "write_buffer_size": s.rocksdb_write_buffer_mb * 1024 * 1024,
            "max_write_buffer_number": s.rocksdb_max_write_buffers,
            "max_open_files": s.rocksdb_max_open_files,
            "target_file_size_base": 32 * 1024 * 1024,
        }

    def topic(self, spec: topics.TopicSpec) -> faust.TopicT:
        return self.topics[spec.suffix]

    def is_ready(self) -> bool:
        """Assigned, recovered and consuming."""
        app = self.app
        if not app.started or app.rebalancing:
            return False
        recovery = app.tables.recovery
        if not recovery.completed.is_set() or recovery.in_recovery:
            return False
        try:
            assigned = app.consumer.assignment()
        except Exception:  # consumer not started yet
            return False
        return bool(assigned)


def faust_options(settings: Settings) -> dict[str, Any]:
    """Faust settings derived from ours, tuned for a fast start on a small machine."""
    return {
        "broker": [f"kafka://{h.strip()}" for h in settings.kafka_bootstrap.split(",")],
        "store": "rocksdb://",
        "datadir": str(settings.data_dir),
        "autodiscover": False,
        "topic_partitions": settings.partitions,
        "topic_replication_factor": settings.replication,
        # Every topic, faust's own included, is created by `c360 worker` before faust
        # starts (stream.admin): faust declaring them again cost seconds of start time.
        "topic_allow_declare": False,
        "table_standby_replicas": settings.standby_replicas,
        "consumer_auto_offset_reset": "earliest",
        # Defaults take ~30 s to join a group on one worker; these take ~1-2 s.
        "broker_session_timeout": settings.session_timeout,
        "broker_heartbeat_interval": settings.heartbeat_interval,
        "broker_rebalance_timeout": settings.rebalance_timeout,
        "stream_recovery_delay": 0.0,
        "broker_commit_interval": 1.0,
        "producer_acks": -1,
        "producer_linger": 0.002,
        # Batched records and bulk changelog batches are large.
        "producer_max_batch_size": 1024 * 1024,
        "producer_max_request_size": 4 * 1024 * 1024,
        "consumer_max_fetch_size": 4 * 1024 * 1024,
        # Exposure (DESIGN.md): loopback by default, no table/router debug endpoints.
        # faust's web server is off: c360's runs in a thread (stream.shell.web) on
        # web_host:web_port, the canonical URL other workers' lookups are sent to.
        "web_enabled": False,
        "web_host": settings.web_host,
        "web_bind": settings.web_host,
        "web_port": settings.web_port,
        "canonical_url": settings.web_url,
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_metrics_enabled": False,
        "web_cors_options": None,
    }


def create_app(settings: Settings, rules: rules_mod.Rules | None = None) -> C360:
    """Build the Faust app with its topics, agents and web views.

    ``rules`` default to the settings' rules file (validated here: a bad file
    raises :class:`stream.core.rules.RulesError`).
    """
    if rules is None:
        rules = rules_mod.load(settings.rules_file)
    store.register()
    app = faust.App(settings.app_id, **faust_options(settings))
    c360 = C360(settings, app, rules_mod.Compiled(rules))
    for spec in topics.ALL:
        c360.topics[spec.suffix] = app.topic(
            spec.name(settings),
            partitions=spec.partition_count(settings),
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
            internal=False,
        )
    from stream.shell import agents, api, observe

    agents.register(c360)
    c360.lookups = api.Lookups(c360)
    _register_web(c360)
    observe.install(c360)
    return c360


def _register_web(c360: C360) -> None:
    """The web server starts and stops with the app (see stream.shell.web)."""
    from stream.shell import api
    from stream.shell.web import WebThread, on_loop

    async def ready(request: web.Request) -> web.Response:
        ok = c360.is_ready()
        return web.json_response({"ready": ok}, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        body, content_type = METRICS.exposition()
        # aiohttp refuses a charset inside content_type=; pass the header as is.
        return web.Response(body=body, headers={"Content-Type": content_type})

    @c360.app.service
    class WebServer(mode.Service):
        server: WebThread | None = None

        async def on_start(self) -> None:
            loop = c360.loop = asyncio.get_running_loop()
            routes = [
                ("/ready", on_loop(loop, ready)),
                ("/metrics", on_loop(loop, metrics)),
                *api.routes(c360, c360.lookups),
            ]
            settings = c360.settings
            self.server = WebThread(
                settings.web_host, settings.web_port, routes, cleanup=c360.lookups.close
            )
            await asyncio.to_thread(self.server.start)

        async def on_stop(self) -> None:
            if self.server is not None:
                await asyncio.to_thread(self.server.stop)


__all__ = ["C360", "create_app", "faust_options"]
