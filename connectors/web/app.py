"""The collector's HTTP application: Segment's tracking API, SIWE, health and metrics.

Each request is answered only after its valid events are on Kafka (acks=all):
a 200 means delivered. A request waits for its own records only (see
:meth:`BatchProducer.deliver`). Nothing is produced for a request without a
valid write key, from a disallowed browser origin, or over the size limit.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from aiohttp import web
from msgspec import Meta, Raw, Struct

from connectors.metrics import metrics_handler
from connectors.producer import ARRAY_OVERHEAD, BatchProducer
from connectors.web.auth import KeyKind, WriteKeys, basic_username
from connectors.web.config import CollectorConfig
from connectors.web.events import SIWE_EVENT, EventPreparer, Prepared, iso
from connectors.web.metrics import CollectorMetrics
from connectors.web.siwe import (
    MAX_MESSAGE_CHARS,
    NonceStore,
    SiweError,
    SiweVerifier,
    parse_message,
)
from stream import admin, topics
from stream.core.ingest import MAX_BODY_DEPTH, Ingest, too_deep
from stream.core.rules import Compiled, Rules
from stream.settings import Settings

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

# path -> (route label, Segment type); the one-letter paths are analytics.js's short forms.
SEGMENT_ROUTES: dict[str, tuple[str, str | None]] = {
    "/v1/track": ("track", "track"),
    "/v1/page": ("page", "page"),
    "/v1/screen": ("screen", "screen"),
    "/v1/identify": ("identify", "identify"),
    "/v1/alias": ("alias", "alias"),
    "/v1/group": ("group", "group"),
    "/v1/batch": ("batch", None),
    "/v1/import": ("batch", None),
    "/v1/t": ("track", "track"),
    "/v1/p": ("page", "page"),
    "/v1/s": ("screen", "screen"),
    "/v1/i": ("identify", "identify"),
    "/v1/a": ("alias", "alias"),
    "/v1/g": ("group", "group"),
    "/v1/b": ("batch", None),
}
ROUTE_LABELS: dict[str, str] = {
    **{path: label for path, (label, _) in SEGMENT_ROUTES.items()},
    "/v1/siwe/nonce": "siwe_nonce",
    "/v1/siwe/verify": "siwe_verify",
    "/health": "health",
    "/metrics": "metrics",
}
MAX_LISTED_ERRORS = 100
"""Most event errors a 400 answer lists; it counts the others (``unlisted``)."""
MAX_DEVICE_ID = 512
"""The longest anonymousId a nonce may be bound to (``GET /v1/siwe/nonce?anonymousId=``)."""
SIWE_STATUS = {"bad_message": 400, "bad_signature": 400, "siwe_busy": 503}  # others: 401
UNAUTHORIZED = "a valid write key is required (HTTP Basic: the key as username, empty password)"

COLLECTOR: web.AppKey[Collector] = web.AppKey("collector")


class DeliveryTimeout(Exception):
    """Kafka did not acknowledge a request's events within ``delivery_timeout``."""


def _settled(delivery: asyncio.Future) -> None:
    """Log how a delivery the request stopped waiting for ended (and retrieve its error)."""
    if not delivery.cancelled() and delivery.exception() is not None:
        log.warning("a delivery answered 503 on timeout failed: %s", delivery.exception())


class _KeyOnly(Struct, rename="camel"):
    write_key: Any = None


class _BatchBody(Struct, rename="camel"):
    batch: list[Raw]
    context: Any = None
    sent_at: Any = None
    write_key: Any = None


_BAD_BODY = (msgspec.DecodeError, msgspec.ValidationError, UnicodeDecodeError)
"""What decoding an untrusted body raises (bytes in a string that are not UTF-8 raise
``UnicodeDecodeError``; too deep a body, ``DecodeError`` from :func:`_decode_body`)."""


def _decode_body(decoder: msgspec.json.Decoder, body: bytes) -> Any:
    """``body`` decoded, after checking how deep it nests: this process's recursion limit
    is raised (``eth_account`` imports ``py_ecc``, which sets 100,000), and msgspec
    would recurse through a deep body until the C stack overflows."""
    if too_deep(body, MAX_BODY_DEPTH):
        raise msgspec.DecodeError(f"the body nests deeper than {MAX_BODY_DEPTH} levels")
    return decoder.decode(body)


class _VerifyBody(Struct, rename="camel"):
    message: Annotated[str, Meta(min_length=1, max_length=MAX_MESSAGE_CHARS)]
    signature: Annotated[str, Meta(min_length=1, max_length=200)]
    anonymous_id: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    user_id: Annotated[str, Meta(min_length=1, max_length=256)] | None = None
    context: dict[str, Any] | None = None
    write_key: Any = None


_key_only = msgspec.json.Decoder(_KeyOnly)
_batch_body = msgspec.json.Decoder(_BatchBody)
_verify_body = msgspec.json.Decoder(_VerifyBody)


def route_label(request: web.Request) -> str:
    """The bounded route label of a request (``unmatched`` for unknown paths)."""
    resource = request.match_info.route.resource
    if resource is None:
        return "unmatched"
    return ROUTE_LABELS.get(resource.canonical, "unmatched")


def error(status: int, reason: str, message: str, **extra: Any) -> web.Response:
    """A JSON error answer."""
    body = {"success": False, "reason": reason, "message": message, **extra}
    return web.json_response(body, status=status)


class Collector:
    """The collector's state: keys, validation, SIWE, the producer and the metrics."""

    def __init__(
        self,
        config: CollectorConfig,
        settings: Settings,
        *,
        rules: Rules | None = None,
        producer: BatchProducer | None = None,
        metrics: CollectorMetrics | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        config.check_record_limit(settings.record_max_bytes)
        self.config = config
        self.settings = settings
        self.clock = clock
        self.keys = WriteKeys(config.browser_keys, config.server_keys)
        self.ingest = Ingest(
            Compiled(rules or Rules()),
            batch_max=settings.batch_max_events,
            # an event is sent as a record "[event]": it must fit with the brackets
            record_max=settings.record_max_bytes - ARRAY_OVERHEAD,
        )
        self.preparer = EventPreparer(self.ingest, config.max_event_bytes)
        self.metrics = metrics or CollectorMetrics()
        self.producer = producer or BatchProducer(settings, client_id="c360-collector")
        self.producer.up = self.metrics.up.labels("web")  # deliveries keep it current
        self.nonces = NonceStore(config.siwe_nonce_ttl, config.siwe_max_nonces, clock)
        self.verifier = SiweVerifier(
            config.siwe_domain,
            config.siwe_chain_ids,
            self.nonces,
            clock=clock,
            skew=config.siwe_clock_skew,
        )
        self.origins = frozenset(config.allowed_origins)
        self.topic = topics.WEB_EVENTS

    # --- lifecycle ------------------------------------------------------------
    async def start(self, app: web.Application) -> None:
        await admin.ensure_topics(self.settings, (self.topic,))
        await self.producer.start()
        self.metrics.up.labels("web").set(1)
        log.info("collector producing to %s", self.topic.name(self.settings))

    async def stop(self, app: web.Application) -> None:
        """Flush and close the producer (in-flight requests have finished by now)."""
        self.metrics.up.labels("web").set(0)
        await self.producer.stop()

    # --- helpers --------------------------------------------------------------
    def origin_allowed(self, origin: str) -> bool:
        return "*" in self.origins or origin in self.origins

    def _reject(self, reason: str, n: int = 1) -> None:
        self.metrics.rejections.labels(reason).inc(n)

    def authenticate(self, request: web.Request, body_key: Any = None) -> KeyKind | None:
        """The key kind of the request: Basic header first, else a ``writeKey`` in the body."""
        header = request.headers.get("Authorization")
        if header:
            return self.keys.kind(basic_username(header))
        return self.keys.kind(body_key) if isinstance(body_key, str) else None

    def unauthorized(self) -> web.Response:
        self._reject("unauthorized")
        response = error(401, "unauthorized", UNAUTHORIZED)
        response.headers["WWW-Authenticate"] = 'Basic realm="c360"'
        return response

    def _bad_body(self, has_header: bool, message: str) -> web.Response:
        """A body that cannot be read: 401 without a key in the header (the key may be in
        the body), else 400 with why."""
        if not has_header:
            return self.unauthorized()
        self._reject("bad_request")
        return error(400, "bad_request", message)

    async def produce(self, prepared: Prepared) -> int:
        """Deliver the accepted events (acks=all); count them by type and outcome."""
        m = self.metrics
        for e in prepared.errors:
            m.events.labels(e.type, "rejected").inc()
            self._reject(e.reason)
        if not prepared.accepted:
            return 0
        try:
            await self._deliver([(k, d) for k, d, _ in prepared.accepted])
        except Exception:
            for _, _, kind in prepared.accepted:
                m.events.labels(kind, "failed").inc()
            raise
        for _, _, kind in prepared.accepted:
            m.events.labels(kind, "accepted").inc()
        return len(prepared.accepted)

    async def _deliver(self, keyed: list[tuple[str, bytes]]) -> None:
        """Deliver, or raise :class:`DeliveryTimeout` after ``delivery_timeout`` seconds.

        The idempotent producer retries a batch until the broker takes it, however long
        that is: the request is answered 503 in time, while the delivery goes on (the
        client's retry carries the same ``messageId``, which counts once downstream)."""
        delivery = asyncio.ensure_future(self.producer.deliver(self.topic, keyed))
        try:
            await asyncio.wait_for(asyncio.shield(delivery), self.config.delivery_timeout)
        except TimeoutError:
            delivery.add_done_callback(_settled)
            self.producer.mark_failed()  # up 0 until a delivery succeeds, whatever a probe says
            raise DeliveryTimeout(
                f"Kafka did not acknowledge within {self.config.delivery_timeout:g} s"
            ) from None

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # --- Segment endpoints ----------------------------------------------------
    async def segment(self, request: web.Request) -> web.Response:
        """``/v1/track`` … ``/v1/batch``: validate, produce, answer."""
        _, route_type = SEGMENT_ROUTES[request.match_info.route.resource.canonical]
        has_header = bool(request.headers.get("Authorization"))
        if has_header and self.authenticate(request) is None:
            return self.unauthorized()
        body = await request.read()
        received_at = self.now()
        try:
            if route_type is None:
                parsed = _decode_body(_batch_body, body)
                raws = [bytes(r) for r in parsed.batch]
                body_key, context, sent_at = parsed.write_key, parsed.context, parsed.sent_at
            else:
                body_key = _decode_body(_key_only, body).write_key
                raws, context, sent_at = [body], None, None
        except _BAD_BODY as exc:
            return self._bad_body(has_header, f"the body is not a Segment call: {exc}")
        kind = self.authenticate(request, body_key)
        if kind is None:
            return self.unauthorized()
        if len(raws) > self.config.max_batch_events:
            self._reject("too_many_events")
            return error(
                413,
                "too_many_events",
                f"the batch holds {len(raws)} events; the limit is "
                f"{self.config.max_batch_events}: send it in smaller batches",
            )
        if route_type is not None and len(body) > self.config.max_event_bytes:
            self._reject("too_large")
            return error(
                413,
                "too_large",
                f"the event is {len(body)} bytes; the limit is {self.config.max_event_bytes}",
            )
        prepared = self.preparer.prepare(
            raws,
            auth=kind,
            received_at=received_at,
            route_type=route_type,
            batch_context=context,
            sent_at=sent_at,
        )
        try:
            accepted = await self.produce(prepared)
        except Exception as exc:
            log.warning("delivery to Kafka failed: %s", exc)
            self._reject("kafka_unavailable", len(prepared.accepted))
            return error(503, "kafka_unavailable", "the events could not be delivered; retry")
        if prepared.errors:
            listed = prepared.errors[:MAX_LISTED_ERRORS]
            answer: dict[str, Any] = {
                "success": False,
                "accepted": accepted,
                "rejected": len(prepared.errors),
                "errors": [e.to_json() for e in listed],
            }
            if len(prepared.errors) > len(listed):
                answer["unlisted"] = len(prepared.errors) - len(listed)
            return web.json_response(answer, status=400)
        return web.json_response({"success": True, "accepted": accepted})

    # --- Sign-In With Ethereum ----------------------------------------------
    async def siwe_nonce(self, request: web.Request) -> web.Response:
        """``GET /v1/siwe/nonce``: a fresh single-use nonce."""
        if not self.config.siwe_domain:
            return error(404, "siwe_disabled", "SIWE is not configured on this collector")
        if self.authenticate(request) is None:
            return self.unauthorized()
        device = request.query.get("anonymousId") or None
        if device is not None and len(device) > MAX_DEVICE_ID:
            return error(400, "bad_request", f"anonymousId: over {MAX_DEVICE_ID} characters")
        nonce, expires = self.nonces.issue(device)
        return web.json_response(
            {
                "nonce": nonce,
                "expiresAt": iso(datetime.fromtimestamp(expires, UTC)),
                "domain": self.config.siwe_domain,
                "chainIds": list(self.config.siwe_chain_ids),
            },
            headers={"Cache-Control": "no-store"},
        )

    async def siwe_verify(self, request: web.Request) -> web.Response:
        """``POST /v1/siwe/verify``: verify, emit a verified "SIWE Sign In", answer the address."""
        if not self.config.siwe_domain:
            return error(404, "siwe_disabled", "SIWE is not configured on this collector")
        has_header = bool(request.headers.get("Authorization"))
        if has_header and self.authenticate(request) is None:
            return self.unauthorized()
        body = await request.read()
        received_at = self.now()
        try:
            req = _decode_body(_verify_body, body)
        except _BAD_BODY as exc:
            return self._bad_body(has_header, f"invalid verify request: {exc}")
        kind = self.authenticate(request, req.write_key)
        if kind is None:
            return self.unauthorized()
        if req.anonymous_id is None and req.user_id is None:
            self._reject("missing_field")
            return error(400, "missing_field", "anonymousId or userId is required")
        if kind == "browser" and req.anonymous_id is None:
            # the signature proves the wallet, not a userId the page asserts: a browser's
            # sign-in binds the wallet to the device signing in (docs/connectors/web.md)
            self._reject("missing_field")
            return error(
                400,
                "missing_field",
                "with a browser key, a sign-in needs the anonymousId of the device signing in",
            )
        try:
            msg = parse_message(req.message)
        except SiweError as exc:
            return self._siwe_refused(exc)
        # The event is built and validated before the nonce is consumed: an event ingest
        # refuses (a bad context, anonymousId, …) must not spend a good signature's nonce.
        signature = "0x" + req.signature.removeprefix("0x").removeprefix("0X").lower()
        event: dict[str, Any] = {
            "type": "track",
            "event": SIWE_EVENT,
            "messageId": f"siwe-{msg.nonce}",
            "properties": {
                "address": msg.address,
                "message": req.message,
                "signature": signature,
                "chainId": msg.chain_id,
            },
        }
        if req.anonymous_id is not None:
            event["anonymousId"] = req.anonymous_id
        if req.user_id is not None:
            event["userId"] = req.user_id
        if req.context is not None:
            event["context"] = req.context
        verdict = {"verified": True, "address": msg.address, "chain_id": msg.chain_id}
        prepared = self.preparer.prepare(
            [msgspec.json.encode(event)], auth=kind, received_at=received_at, siwe=verdict
        )
        if prepared.errors:
            await self.produce(prepared)  # counts the rejection; nothing to deliver
            e = prepared.errors[0]
            return error(400, e.reason, e.message)
        try:
            self.verifier.check(msg, req.message, req.signature, req.anonymous_id)
        except SiweError as exc:
            return self._siwe_refused(exc)
        self.metrics.siwe.labels("verified").inc()
        try:
            await self.produce(prepared)
        except Exception as exc:
            log.warning("delivery to Kafka failed: %s", exc)
            self._reject("kafka_unavailable")
            self.nonces.give_back(msg.nonce)  # the retry sends the same signed message
            return error(503, "kafka_unavailable", "the sign-in could not be recorded; retry")
        return web.json_response(
            {
                "success": True,
                "address": msg.address,
                "chainId": msg.chain_id,
                "messageId": event["messageId"],
            }
        )

    def _siwe_refused(self, exc: SiweError) -> web.Response:
        """Count a refused sign-in and answer it (400, 503 or 401 by reason)."""
        self.metrics.siwe.labels(exc.reason).inc()
        self._reject(exc.reason)
        return error(SIWE_STATUS.get(exc.reason, 401), exc.reason, exc.message)

    async def health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "connector": "web"})

    async def preflight(self, request: web.Request) -> web.Response:
        """``OPTIONS``: the CORS middleware adds the headers for an allowed origin."""
        return web.Response(status=204)

    # --- middlewares ----------------------------------------------------------
    @web.middleware
    async def observe(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Count and time every request by route and status."""
        route = route_label(request)
        start = time.perf_counter()
        status = 500
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            self.metrics.requests.labels(route, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - start)

    @web.middleware
    async def json_errors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """HTTP errors (404, 405, 413) as JSON bodies."""
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            self._reject("too_large")
            return error(
                413,
                "too_large",
                f"the request is larger than {self.config.max_request_bytes} bytes",
            )
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            return error(exc.status, exc.reason.lower().replace(" ", "_"), exc.reason)

    @web.middleware
    async def cors(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """CORS for the configured origins; a request from another origin gets 403."""
        origin = request.headers.get("Origin")
        if origin is None or not request.path.startswith("/v1/"):
            return await handler(request)
        if not self.origin_allowed(origin):
            self._reject("origin_not_allowed")
            return error(403, "origin_not_allowed", f"origin {origin[:100]!r} is not allowed")
        response = await handler(request)
        if request.method == "OPTIONS":
            response.headers.update(
                {
                    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
                    "Access-Control-Allow-Headers": "Authorization, Content-Type",
                    "Access-Control-Max-Age": "600",
                }
            )
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        return response


def create_app(
    config: CollectorConfig,
    settings: Settings,
    *,
    rules: Rules | None = None,
    producer: BatchProducer | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The collector's aiohttp application (its producer starts and stops with the app)."""
    collector = Collector(config, settings, rules=rules, producer=producer, clock=clock)
    app = web.Application(
        # cors outside json_errors: the JSON of a 404, 405 or 413 a handler raises carries
        # the CORS headers too, or a browser could not read why (and would retry)
        middlewares=[collector.observe, collector.cors, collector.json_errors],
        client_max_size=config.max_request_bytes,
    )
    app[COLLECTOR] = collector
    for path in SEGMENT_ROUTES:
        app.router.add_post(path, collector.segment)
    app.router.add_get("/v1/siwe/nonce", collector.siwe_nonce)
    app.router.add_post("/v1/siwe/verify", collector.siwe_verify)
    for path in [*SEGMENT_ROUTES, "/v1/siwe/nonce", "/v1/siwe/verify"]:
        app.router.add_route("OPTIONS", path, collector.preflight)
    app.router.add_get("/health", collector.health)
    app.router.add_get("/metrics", metrics_handler(collector.metrics.registry))
    app.on_startup.append(collector.start)
    app.on_cleanup.append(collector.stop)
    return app
