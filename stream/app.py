"""The Faust application: configuration, topics, web endpoints and the agents.

This is the imperative shell. Every agent is a few lines around the pure core
(:mod:`stream.core`): read a record, call the core, write state, send messages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import faust
from faust.web import Request, Response, View, Web

from stream import topics
from stream.core import rules as rules_mod
from stream.settings import Settings
from stream.shell import gaps, isolation, store
from stream.shell.api import json_errors
from stream.shell.metrics import METRICS

log = logging.getLogger(__name__)


class App(faust.App):
    """faust's App, whose consumer reads committed records only (see
    :mod:`stream.shell.isolation`) and keeps the offsets it skipped without a rebuild
    per skip (see :mod:`stream.shell.gaps`)."""

    def _new_consumer(self) -> Any:
        consumer = super()._new_consumer()
        isolation.install(consumer)
        gaps.install(consumer)
        return consumer


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
    #: the live prices (the global table, read-only): for the channel revenue the API
    #: and the metrics show; the profile stage values at its own copy (aggregate.Stored)
    prices: Any = None
    rewind: Any = None

    @property
    def rocksdb_options(self) -> dict[str, Any]:
        """Per-partition RocksDB options (see :func:`stream.shell.store.rocksdb_options`)."""
        return store.rocksdb_options(self.settings)

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
        # faust refuses a session timeout over its request timeout (90 s by default) when
        # it builds the consumer: the worker crashed at start above 90 s
        # (aiokafka sends JoinGroup with the request timeout too: above the rebalance's)
        "broker_request_timeout": max(
            90.0, settings.session_timeout + 30.0, settings.rebalance_timeout + 30.0
        ),
        "broker_heartbeat_interval": settings.heartbeat_interval,
        "broker_rebalance_timeout": settings.rebalance_timeout,
        "stream_recovery_delay": 0.0,
        "broker_commit_interval": 1.0,
        "producer_acks": -1,
        "producer_linger": 0.002,
        # Batched records and bulk changelog batches are large.
        "producer_max_batch_size": 1024 * 1024,
        "producer_max_request_size": topics.MAX_RECORD_BYTES,
        "consumer_max_fetch_size": topics.MAX_RECORD_BYTES,
        # Exposure (DESIGN.md): loopback by default, no table/router debug endpoints.
        "web_host": settings.web_host,
        "web_bind": settings.web_host,
        "web_port": settings.web_port,
        "canonical_url": settings.advertised_url,
        "web_tables_enabled": False,
        "web_router_enabled": False,
        "web_stats_enabled": False,
        "web_graph_enabled": False,
        "web_metrics_enabled": False,
        "web_cors_options": None,
        # aiohttp's 404 and 405 answer JSON, like the API's own errors
        "web_application_options": {"middlewares": [json_errors]},
    }


def create_app(settings: Settings, rules: rules_mod.Rules | None = None) -> C360:
    """Build the Faust app with its topics, agents and web views.

    ``rules`` default to the settings' rules file (validated here: a bad file
    raises :class:`stream.core.rules.RulesError`).
    """
    if rules is None:
        rules = rules_mod.load(settings.rules_file)
    store.register()
    app = App(settings.app_id, **faust_options(settings))
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
    _register_web(c360)
    from stream.shell import agents, api, observe

    agents.register(c360)
    c360.lookups = api.register(c360)
    observe.install(c360)
    return c360


def _register_web(c360: C360) -> None:
    app = c360.app

    @app.page("/ready")
    class Ready(View):
        async def get(self, request: Request) -> Response:
            ok = c360.is_ready()
            return self.json({"ready": ok}, status=200 if ok else 503)

    @app.page("/metrics")
    class Metrics(View):
        async def get(self, request: Request) -> Response:
            body, content_type = METRICS.exposition()
            # aiohttp refuses a charset inside content_type=; pass the header as is.
            return self.bytes(body, headers={"Content-Type": content_type})

    del Ready, Metrics  # registered on the app


__all__ = ["C360", "Web", "create_app", "faust_options"]
