"""The collector's configuration: environment ``C360_COLLECTOR_*``, overridden by flags."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors import envconfig
from connectors.envconfig import setting

# what C360_COLLECTOR_SIWE_DOMAIN and an allowed origin may be (a browser's Origin is
# scheme://host[:port], lowercase, no path; a SIWE domain is host[:port])
_HOST = r"(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::[0-9]+)?"
DOMAIN = re.compile(_HOST)
ORIGIN = re.compile(rf"[a-z][a-z0-9+.\-]*://{_HOST}")

ENRICHMENT_MARGIN = 512
"""Bytes the collector may add to an event (``messageId``, ``timestamp``, ``receivedAt``,
``context.c360``) before it must still fit one Kafka record."""


@dataclass(frozen=True, slots=True)
class CollectorConfig:
    """Every knob of ``c360 connect web``. Build with :meth:`from_env`."""

    host: str = setting(
        "C360_COLLECTOR_HOST",
        "127.0.0.1",
        "Interface to bind (loopback by default; put a TLS proxy in front to expose it).",
    )
    port: int = setting(
        "C360_COLLECTOR_PORT",
        8088,
        "Port to listen on (0: any free one, printed at start).",
        minimum=0,
        maximum=65535,
    )
    browser_keys: tuple[str, ...] = setting(
        "C360_COLLECTOR_BROWSER_KEYS",
        (),
        "Browser write keys, comma-separated: public, can only send events "
        "(their identify calls are observed evidence).",
    )
    server_keys: tuple[str, ...] = setting(
        "C360_COLLECTOR_SERVER_KEYS",
        (),
        "Server write keys, comma-separated: secret, their identify calls are verified evidence.",
        secret=True,
    )
    allowed_origins: tuple[str, ...] = setting(
        "C360_COLLECTOR_ALLOWED_ORIGINS",
        (),
        "Browser origins allowed by CORS, comma-separated, as browsers send them: "
        "scheme://host[:port], lowercase, no path or final / (e.g. https://app.example.xyz); "
        "'*' allows any. A request with another Origin gets 403.",
    )
    max_event_bytes: int = setting(
        "C360_COLLECTOR_MAX_EVENT_BYTES", 32 * 1024, "Largest event, in bytes.", minimum=1024
    )
    max_request_bytes: int = setting(
        "C360_COLLECTOR_MAX_REQUEST_BYTES",
        500 * 1024,
        "Largest request body, in bytes (after decompression); larger gets 413.",
        minimum=1024,
    )
    max_batch_events: int = setting(
        "C360_COLLECTOR_MAX_BATCH_EVENTS",
        2000,
        "Most events in one batch request; more gets 413 too_many_events.",
        minimum=1,
    )
    delivery_timeout: float = setting(
        "C360_COLLECTOR_DELIVERY_TIMEOUT",
        10.0,
        "Seconds a request waits for Kafka's acknowledgement before it gets 503 "
        "kafka_unavailable (the idempotent producer may keep retrying for much longer).",
        minimum=0.1,
    )
    siwe_domain: str = setting(
        "C360_COLLECTOR_SIWE_DOMAIN",
        "",
        "Domain SIWE messages must name: host[:port] without scheme or path, e.g. "
        "app.example.xyz. Empty: the /v1/siwe endpoints answer 404.",
    )
    siwe_chain_ids: tuple[int, ...] = setting(
        "C360_COLLECTOR_SIWE_CHAIN_IDS",
        (1,),
        "Chain ids a SIWE message may name, comma-separated (at least one).",
    )
    siwe_nonce_ttl: float = setting(
        "C360_COLLECTOR_SIWE_NONCE_TTL",
        300.0,
        "Seconds a SIWE nonce stays valid after it is issued.",
        minimum=1,
    )
    siwe_max_nonces: int = setting(
        "C360_COLLECTOR_SIWE_MAX_NONCES",
        100_000,
        "Most used SIWE nonces remembered until their expiry (replay protection); "
        "while that many are, a sign-in gets 503 siwe_busy.",
        minimum=1,
    )
    siwe_clock_skew: float = setting(
        "C360_COLLECTOR_SIWE_CLOCK_SKEW",
        60.0,
        "Seconds of clock skew tolerated on a message's Issued At and Not Before.",
        minimum=0,
    )
    shutdown_timeout: float = setting(
        "C360_COLLECTOR_SHUTDOWN_TIMEOUT",
        10.0,
        "Seconds to let in-flight requests finish on shutdown.",
        minimum=0,
    )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
    ) -> CollectorConfig:
        """Read the environment (default ``os.environ``); flags win."""
        return envconfig.from_env(cls, environ, flags)

    def __post_init__(self) -> None:
        if set(self.browser_keys) & set(self.server_keys):
            raise envconfig.ConfigError("a write key cannot be both a browser and a server key")
        if any(c <= 0 for c in self.siwe_chain_ids):
            raise envconfig.ConfigError("C360_COLLECTOR_SIWE_CHAIN_IDS must be positive")
        if not self.siwe_chain_ids:
            raise envconfig.ConfigError(
                "C360_COLLECTOR_SIWE_CHAIN_IDS names no chain: every sign-in would be refused"
            )
        if self.siwe_domain and not DOMAIN.fullmatch(self.siwe_domain):
            raise envconfig.ConfigError(
                f"C360_COLLECTOR_SIWE_DOMAIN={self.siwe_domain!r} must be a host[:port] as "
                "SIWE messages name it (e.g. app.example.xyz), without scheme or path"
            )
        for origin in self.allowed_origins:
            if origin != "*" and (not ORIGIN.fullmatch(origin) or origin != origin.lower()):
                raise envconfig.ConfigError(
                    f"C360_COLLECTOR_ALLOWED_ORIGINS: {origin!r} is not an origin as browsers "
                    "send it: scheme://host[:port], lowercase, without a path or a final '/' "
                    "(e.g. https://app.example.xyz)"
                )

    def check_record_limit(self, record_max_bytes: int) -> None:
        """Raise :class:`ConfigError` when an event of ``max_event_bytes``, once enriched,
        could not fit one Kafka record of ``record_max_bytes`` (its ``[`` ``]`` included):
        the collector would answer 200 and the worker dead-letter it as ``too_large``."""
        needed = self.max_event_bytes + ENRICHMENT_MARGIN + 2
        if needed > record_max_bytes:
            raise envconfig.ConfigError(
                f"C360_COLLECTOR_MAX_EVENT_BYTES={self.max_event_bytes} plus the collector's "
                f"{ENRICHMENT_MARGIN} bytes of enrichment and 2 of the record does not fit "
                f"C360_RECORD_MAX_BYTES={record_max_bytes}: lower the first or raise the second"
            )
