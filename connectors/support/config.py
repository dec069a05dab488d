"""The support receiver's configuration: environment ``C360_SUPPORT_*``, overridden by flags."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from connectors import envconfig
from connectors.envconfig import setting


@dataclass(frozen=True, slots=True)
class SupportConfig:
    """Every knob of ``c360 connect support``. Build with :meth:`from_env`."""

    host: str = setting(
        "C360_SUPPORT_HOST",
        "127.0.0.1",
        "Interface to bind (loopback by default; put a TLS proxy in front to expose it).",
    )
    port: int = setting(
        "C360_SUPPORT_PORT",
        8089,
        "Port to listen on (0: any free one, printed at start).",
        minimum=0,
        maximum=65535,
    )
    zendesk_secret: str = setting(
        "C360_SUPPORT_ZENDESK_SECRET",
        "",
        "Signing secret of the Zendesk webhook. Empty: /v1/webhooks/zendesk answers 404.",
        secret=True,
    )
    intercom_secret: str = setting(
        "C360_SUPPORT_INTERCOM_SECRET",
        "",
        "Client secret of the Intercom app (signs X-Hub-Signature). "
        "Empty: /v1/webhooks/intercom answers 404.",
        secret=True,
    )
    zendesk_max_age: float = setting(
        "C360_SUPPORT_ZENDESK_MAX_AGE",
        3600.0,
        "Largest age, in seconds, of a Zendesk signature timestamp (replay window); 0: no check.",
        minimum=0,
    )
    max_body_bytes: int = setting(
        "C360_SUPPORT_MAX_BODY_BYTES",
        1024 * 1024,
        "Largest webhook body, in bytes; larger gets 413.",
        minimum=1024,
    )
    shutdown_timeout: float = setting(
        "C360_SUPPORT_SHUTDOWN_TIMEOUT",
        10.0,
        "Seconds to let in-flight requests finish on shutdown.",
        minimum=0,
    )

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, flags: Mapping[str, Any] | None = None
    ) -> SupportConfig:
        """Read the environment (default ``os.environ``); flags win."""
        return envconfig.from_env(cls, environ, flags)
