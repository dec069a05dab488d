"""From a client's Segment call to the event c360 produces, validated as the pipeline will.

For each event the collector: checks its size; fills ``messageId`` (a UUID) and
``timestamp`` (= ``receivedAt``) when absent and always sets ``receivedAt``;
merges a batch's top-level ``context`` and ``sentAt`` into it; **replaces**
``context.c360`` with its own (``auth`` from the write key's kind, ``siwe`` only
from its own verification), so a client's claim never survives; then runs
``Ingest.record`` on it, exactly as the worker will. An event ingest rejects is
reported with its index, reason and message, and is not produced.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import msgspec

from connectors.web.auth import KeyKind
from stream.core.ingest import MAX_DEPTH, Ingest, too_deep

WEB_TYPES = frozenset({"page", "screen", "track", "identify", "alias", "group"})
SIWE_EVENT = "SIWE Sign In"
UNVERIFIED_SIWE = {"verified": False, "reason": "not_verified_by_collector"}

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


def iso(dt: datetime) -> str:
    """RFC 3339 in UTC with milliseconds and a ``Z``."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class EventError:
    """Why one event of a request was not produced."""

    index: int
    reason: str
    message: str
    type: str = "unknown"

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "reason": self.reason, "message": self.message}


@dataclass(slots=True)
class Prepared:
    """The events of one request: those to produce (key, JSON bytes, type) and the errors."""

    accepted: list[tuple[str, bytes, str]] = field(default_factory=list)
    errors: list[EventError] = field(default_factory=list)


def _json_type(value: Any) -> str:
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "str"
    if value is None:
        return "null"
    return type(value).__name__


class EventPreparer:
    """Enriches client events and validates them with the pipeline's ingest."""

    def __init__(self, ingest: Ingest, max_event_bytes: int) -> None:
        self.ingest = ingest
        self.max_event_bytes = max_event_bytes

    def prepare(
        self,
        raws: Sequence[bytes],
        *,
        auth: KeyKind,
        received_at: datetime,
        route_type: str | None = None,
        batch_context: Any = None,
        sent_at: Any = None,
        siwe: dict[str, Any] | None = None,
    ) -> Prepared:
        """Enrich and validate each raw event (JSON bytes); see the module doc."""
        out = Prepared()
        received = iso(received_at)
        for index, raw in enumerate(raws):
            kind = route_type or "unknown"
            if len(raw) > self.max_event_bytes:
                out.errors.append(
                    EventError(
                        index,
                        "too_large",
                        f"the event is {len(raw)} bytes; the limit is {self.max_event_bytes}",
                        kind,
                    )
                )
                continue
            if too_deep(raw):  # the worker's ingest refuses it: so does the collector, first
                out.errors.append(
                    EventError(index, "too_deep", f"nests deeper than {MAX_DEPTH} levels", kind)
                )
                continue
            try:
                event = _decode(raw)
            except msgspec.DecodeError as exc:
                out.errors.append(EventError(index, "not_json", f"not JSON: {exc}", kind))
                continue
            except UnicodeDecodeError as exc:  # in a string: msgspec checks its bytes there
                out.errors.append(EventError(index, "not_utf8", f"not UTF-8: {exc.reason}", kind))
                continue
            if not isinstance(event, dict):
                out.errors.append(
                    EventError(
                        index,
                        "not_an_object",
                        f"Expected `object`, got `{_json_type(event)}`",
                        kind,
                    )
                )
                continue
            kind = self._enrich(event, auth, received, route_type, batch_context, sent_at, siwe)
            data = _encode(event)
            result = self.ingest.record("web.events", data)
            if result.rejections:
                r = result.rejections[0]
                out.errors.append(EventError(index, r.reason, r.message, kind))
                continue
            key = event.get("anonymousId") or event.get("userId")
            out.accepted.append((str(key), data, kind))
        return out

    @staticmethod
    def _enrich(
        event: dict[str, Any],
        auth: KeyKind,
        received: str,
        route_type: str | None,
        batch_context: Any,
        sent_at: Any,
        siwe: dict[str, Any] | None,
    ) -> str:
        """Fill and overwrite the collector's fields in place; returns the event type."""
        event.pop("writeKey", None)
        if route_type is not None:
            event["type"] = route_type  # the endpoint decides, as in Segment
        if event.get("messageId") is None:
            event["messageId"] = str(uuid.uuid4())
        if event.get("timestamp") is None:
            event["timestamp"] = received
        if event.get("sentAt") is None and sent_at is not None:
            event["sentAt"] = sent_at
        event["receivedAt"] = received
        context = event.get("context")
        if context is None:
            context = {}
        if isinstance(batch_context, dict) and isinstance(context, dict):
            context = {**batch_context, **context}
        if isinstance(context, dict):
            c360: dict[str, Any] = {"auth": auth, "received_at": received}
            if siwe is not None:
                c360["siwe"] = siwe
            elif event.get("type") == "track" and event.get("event") == SIWE_EVENT:
                c360["siwe"] = UNVERIFIED_SIWE
            context["c360"] = c360  # replaces whatever the client sent
            event["context"] = context
        kind = event.get("type")
        return kind if isinstance(kind, str) and kind in WEB_TYPES else "unknown"
