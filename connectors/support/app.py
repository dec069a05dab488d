"""The support webhook receiver: verify, map, validate as the pipeline will, produce, answer.

A 200 means the ticket event is on Kafka (acks=all) or the notification was
deliberately ignored (the body says so). A bad signature gets 401 and nothing is
produced; a payload that cannot become a valid ticket event gets 422 with its
reason; a Kafka failure gets 503 so that the help desk retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

import msgspec
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter

from connectors.metrics import connector_up, metrics_handler
from connectors.producer import ARRAY_OVERHEAD, BatchProducer
from connectors.support import mapping
from connectors.support.config import SupportConfig
from connectors.support.signatures import intercom_valid, zendesk_valid
from stream import admin, topics
from stream.contract.inputs import SupportTicketEvent
from stream.core.ingest import MAX_BODY_DEPTH, Ingest, too_deep
from stream.core.rules import Compiled, Rules
from stream.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
RECEIVER: web.AppKey[Receiver] = web.AppKey("receiver")
_encode = msgspec.json.Encoder().encode


class SupportMetrics:
    """The receiver's metrics in their own registry (bounded labels)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "c360_webhook_requests",
            "Webhook requests by help desk and result (accepted, ignored, bad_signature, "
            "unmappable, too_large, kafka_unavailable, not_configured).",
            ["system", "result"],
            registry=self.registry,
        )
        for system in mapping.MAPPERS:  # at 0 from the start: increase() sees the first 503
            self.requests.labels(system, "kafka_unavailable")
        self.up = connector_up(self.registry)


def error(status: int, reason: str, message: str) -> web.Response:
    return web.json_response(
        {"success": False, "reason": reason, "message": message}, status=status
    )


class Receiver:
    """The receiver's state: secrets, validation, the producer and the metrics."""

    def __init__(
        self,
        config: SupportConfig,
        settings: Settings,
        *,
        rules: Rules | None = None,
        producer: BatchProducer | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.settings = settings
        self.clock = clock
        # a ticket is sent as a record "[ticket]": it must fit with the brackets
        self.ingest = Ingest(
            Compiled(rules or Rules()), record_max=settings.record_max_bytes - ARRAY_OVERHEAD
        )
        self.metrics = SupportMetrics()
        self.producer = producer or BatchProducer(settings, client_id="c360-support")
        self.producer.up = self.metrics.up.labels("support")  # deliveries keep it current
        self.topic = topics.SUPPORT

    async def start(self, app: web.Application) -> None:
        await admin.ensure_topics(self.settings, (self.topic,))
        await self.producer.start()
        self.metrics.up.labels("support").set(1)

    async def stop(self, app: web.Application) -> None:
        self.metrics.up.labels("support").set(0)
        await self.producer.stop()

    def _zendesk_fresh(self, timestamp: str) -> bool:
        """Is the signature timestamp within the replay window?"""
        if self.config.zendesk_max_age <= 0:
            return True
        try:
            signed = datetime.fromisoformat(timestamp.strip().replace("z", "Z"))
        except ValueError:
            return False
        if signed.tzinfo is None:
            return False
        return abs(self.clock() - signed.timestamp()) <= self.config.zendesk_max_age

    async def webhook(self, request: web.Request) -> web.Response:
        """``POST /v1/webhooks/{zendesk,intercom}``."""
        system = request.match_info["system"]
        count = self.metrics.requests.labels
        secret = self.config.zendesk_secret if system == "zendesk" else self.config.intercom_secret
        if not secret:
            count(system, "not_configured").inc()
            return error(404, "not_configured", f"the {system} webhook is not configured")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            count(system, "too_large").inc()
            return error(413, "too_large", f"the body is over {self.config.max_body_bytes} bytes")
        headers = request.headers
        if system == "zendesk":
            timestamp = headers.get("X-Zendesk-Webhook-Signature-Timestamp")
            valid = zendesk_valid(
                secret, timestamp, body, headers.get("X-Zendesk-Webhook-Signature")
            ) and self._zendesk_fresh(timestamp or "")
        else:
            valid = intercom_valid(secret, body, headers.get("X-Hub-Signature"))
        if not valid:
            count(system, "bad_signature").inc()
            return error(401, "bad_signature", "the webhook signature is missing or invalid")
        if too_deep(body, MAX_BODY_DEPTH):  # before the decoder recurses through it
            count(system, "unmappable").inc()
            return error(422, "too_deep", f"the body nests deeper than {MAX_BODY_DEPTH} levels")
        try:
            payload = msgspec.json.decode(body)
            result = mapping.MAPPERS[system](payload)
        except msgspec.DecodeError as exc:
            count(system, "unmappable").inc()
            return error(422, "not_json", f"the body is not JSON: {exc}")
        except UnicodeDecodeError as exc:  # in a string: msgspec checks its bytes there
            count(system, "unmappable").inc()
            return error(422, "not_utf8", f"the body is not UTF-8: {exc.reason}")
        except mapping.Unmappable as exc:
            count(system, "unmappable").inc()
            return error(422, exc.reason, exc.message)
        except (TypeError, ValueError, OverflowError, OSError) as exc:  # defensive: never a 500
            count(system, "unmappable").inc()
            return error(422, "invalid_field", f"{type(exc).__name__}: {exc}")
        if isinstance(result, mapping.Ignored):
            count(system, "ignored").inc()
            return web.json_response({"success": True, "ignored": result.reason})
        return await self._produce(system, result)

    async def _produce(self, system: str, ticket: SupportTicketEvent) -> web.Response:
        count = self.metrics.requests.labels
        data = _encode(ticket)
        checked = self.ingest.record("support", data)
        if checked.rejections:
            r = checked.rejections[0]
            count(system, "unmappable").inc()
            return error(422, r.reason, r.message)
        key = f"{ticket.system}:{ticket.external_id}"
        try:
            await self.producer.deliver(self.topic, [(key, data)])
        except Exception as exc:
            log.warning("delivery to Kafka failed: %s", exc)
            count(system, "kafka_unavailable").inc()
            return error(503, "kafka_unavailable", "the event could not be delivered; retry")
        count(system, "accepted").inc()
        return web.json_response({"success": True, "event_id": ticket.event_id})

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "connector": "support"})

    @web.middleware
    async def json_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """HTTP errors (404, 405) as JSON bodies."""
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)


def create_app(
    config: SupportConfig,
    settings: Settings,
    *,
    rules: Rules | None = None,
    producer: BatchProducer | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The receiver's aiohttp application (its producer starts and stops with the app)."""
    receiver = Receiver(config, settings, rules=rules, producer=producer, clock=clock)
    app = web.Application(middlewares=[receiver.json_errors], client_max_size=config.max_body_bytes)
    app[RECEIVER] = receiver
    app.router.add_post("/v1/webhooks/{system:zendesk|intercom}", receiver.webhook)
    app.router.add_get("/health", receiver.health)
    app.router.add_get("/metrics", metrics_handler(receiver.metrics.registry))
    app.on_startup.append(receiver.start)
    app.on_cleanup.append(receiver.stop)
    return app
