"""Prometheus metrics of a connector, served on ``/metrics`` by a small aiohttp server."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST


def connector_up(registry: CollectorRegistry) -> Gauge:
    """``c360_connector_up{connector}``: 1 while a connector runs and can produce to Kafka.

    Set to 1 when the connector starts and to 0 when it stops; in between its
    :class:`~connectors.producer.BatchProducer` (``up``) sets it to 0 when a delivery
    fails and back to 1 when one succeeds."""
    return Gauge(
        "c360_connector_up",
        "1 while the connector runs and can produce to Kafka (0 after a failed delivery, "
        "until one succeeds).",
        ["connector"],
        registry=registry,
    )


def metrics_handler(registry: CollectorRegistry):
    """An aiohttp handler serving ``registry`` in the Prometheus text format."""

    async def handle(request: web.Request) -> web.Response:
        return web.Response(
            body=generate_latest(registry), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    return handle


async def serve_metrics(registry: CollectorRegistry, host: str, port: int) -> web.AppRunner:
    """Start a server answering ``/metrics``; stop it with ``await runner.cleanup()``."""
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(registry))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
