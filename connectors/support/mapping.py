"""Zendesk and Intercom webhook payloads → :class:`SupportTicketEvent` (docs/connectors/support.md).

A mapper returns the ticket event, or :class:`Ignored` for a well-formed
notification that is not about a ticket (an Intercom ``ping``, a Zendesk user
event), or raises :class:`Unmappable` with a machine-readable reason.

``event_id`` is stable, so a webhook delivered twice produces the same id and
counts once downstream: ``<system>:<ticket>:created`` for a creation (a ticket
is created once) and ``<system>:<ticket>:<event>:<notification id>`` otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec

from stream.contract.inputs import SHORT_TEXT_MAX as SHORT
from stream.contract.inputs import TEXT_MAX as LONG
from stream.contract.inputs import SupportTicketEvent

STATUSES = {
    "new": "new",
    "open": "open",
    "pending": "pending",
    "hold": "hold",
    "on-hold": "hold",
    "on_hold": "hold",
    "on hold": "hold",
    "solved": "solved",
    "closed": "closed",
}
PRIORITIES = {"low": "low", "normal": "normal", "high": "high", "urgent": "urgent"}
ZENDESK_CSAT = {"good": 5, "bad": 1}  # Zendesk's binary rating on the 1-5 scale
INTERCOM_STATES = {"open": "open", "closed": "solved", "snoozed": "pending"}
INTERCOM_CREATED = {"conversation.user.created", "conversation.admin.single.created"}
INTERCOM_CHANNELS = {"conversation": "chat", "chat": "chat", "email": "email", "phone": "phone"}
INTERCOM_PEOPLE = {"user", "lead", "contact"}
INTERCOM_BY_CONTACT = {"conversation.rating.added"}  # besides conversation.user.*


class Unmappable(Exception):
    """A payload that cannot become a ticket event; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Ignored:
    """A valid notification that carries no ticket event (acknowledged, nothing produced)."""

    reason: str


# --- helpers ------------------------------------------------------------------------
def _obj(value: Any, where: str, *, required: bool = True) -> dict[str, Any]:
    if isinstance(value, dict):
        return value
    if value is None and not required:
        return {}
    raise Unmappable(
        "missing_field" if value is None else "invalid_field", f"{where} must be an object"
    )


def _text(value: Any) -> str | None:
    """A non-empty string (numbers become strings), else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float):
        return str(value)
    if isinstance(value, str) and value.strip() and value.strip() != "-":
        return value.strip()
    return None


def _id(value: Any, where: str) -> str:
    text = _text(value)
    if text is None:
        raise Unmappable("missing_field", f"{where} (the ticket id) is missing")
    return text


def _rfc3339(value: Any, where: str) -> datetime:
    if isinstance(value, str):
        try:
            dt = datetime.fromisoformat(value.strip().replace("z", "Z"))
        except ValueError:
            dt = None
        if dt is not None and dt.tzinfo is not None:
            return dt
    raise Unmappable("invalid_field", f"{where} must be an RFC 3339 date-time with a time zone")


def _unix(value: Any, where: str) -> datetime:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, OSError, ValueError):
            pass
    raise Unmappable("invalid_field", f"{where} must be a Unix time in seconds")


def _status(value: Any, where: str) -> str:
    text = _text(value)
    status = STATUSES.get(text.lower()) if text else None
    if status is None:
        raise Unmappable("unknown_status", f"{where} {value!r} is not a ticket status")
    return status


def _priority(value: Any) -> str | None:
    text = _text(value)
    return PRIORITIES.get(text.lower()) if text else None


def _shown(value: Any, limit: int) -> str | None:
    """A help desk's free text that c360 only shows (a name, a subject, a tag): cut to
    the contract's ``limit``. Refusing it would lose the ticket (a 422 is not retried)."""
    text = _text(value)
    return text[:limit] if text is not None else None


def _tags(value: Any) -> list[str]:
    """A list of tags, or a space-separated string (Zendesk's ``{{ticket.tags}}``)."""
    if isinstance(value, str):
        return [tag[:SHORT] for tag in value.split()]
    if isinstance(value, list):
        out = []
        for tag in value:
            name = tag.get("name") if isinstance(tag, dict) else tag
            if isinstance(name, str) and name.strip():
                out.append(name.strip()[:SHORT])
        return out
    return []


def _build(fields: dict[str, Any]) -> SupportTicketEvent:
    """Validate against the contract."""
    clean = {k: v for k, v in fields.items() if v is not None and v != [] and v != {}}
    try:
        return msgspec.convert(clean, SupportTicketEvent)
    except msgspec.ValidationError as exc:
        raise Unmappable("invalid_field", str(exc)) from None


def _event_id(system: str, ticket: str, event: str, notification: str) -> str:
    if event == "created":
        return f"{system}:{ticket}:created"
    return f"{system}:{ticket}:{event}:{notification}"


# --- Zendesk ------------------------------------------------------------------------
def zendesk(payload: Any) -> SupportTicketEvent | Ignored:
    """A Zendesk ticket event webhook (``zen:event-type:ticket.*``) as a ticket event.

    The requester's identity comes from ``detail.requester`` (``email``,
    ``external_id`` = the product's user id, ``name``): Zendesk's own
    ``requester_id`` is an id in Zendesk, not an identifier c360 knows: it is only
    compared with ``actor_id`` (``by_requester``).
    """
    body = _obj(payload, "the payload")
    kind = body.get("type")
    if not isinstance(kind, str) or not kind.startswith("zen:event-type:"):
        raise Unmappable("unsupported_payload", "type must be a 'zen:event-type:…' event type")
    kind = kind.removeprefix("zen:event-type:")
    if not kind.startswith("ticket."):
        return Ignored(f"{kind} is not a ticket event")
    detail = _obj(body.get("detail"), "detail")
    change = _obj(body.get("event"), "event", required=False)
    subject = body.get("subject")
    ticket = _text(detail.get("id"))
    if ticket is None and isinstance(subject, str) and subject.startswith("zen:ticket:"):
        ticket = subject.removeprefix("zen:ticket:")
    ticket = _id(ticket, "detail.id")
    occurred = _rfc3339(body.get("time") or detail.get("updated_at"), "time")

    def current(name: str) -> Any:
        """The new value of a ``ticket.<name>_changed`` event, else the ticket's."""
        value = change.get("current")
        if kind == f"ticket.{name}_changed" and value is not None:
            return value
        return detail.get(name)

    raw_status = current("status")
    status = (
        "new" if raw_status is None and kind == "ticket.created" else _status(raw_status, "status")
    )
    if kind == "ticket.created":
        event = "created"
    elif kind == "ticket.status_changed" and status in ("solved", "closed"):
        event = "solved"
    else:
        event = "updated"
    requester = _obj(detail.get("requester"), "detail.requester", required=False)
    via = _obj(detail.get("via"), "detail.via", required=False)
    rating = detail.get("satisfaction_rating") or detail.get("satisfaction")
    notification = _text(body.get("id")) or str(int(occurred.timestamp()))
    return _build(
        {
            "event_id": _event_id("zendesk", ticket, event, notification),
            "system": "zendesk",
            "external_id": ticket,
            "event": event,
            "occurred_at": occurred,
            "status": status,
            "requester": {
                "email": _text(requester.get("email")),
                "user_id": _text(requester.get("external_id")),
                "name": _shown(requester.get("name"), SHORT),
            },
            "subject": _shown(detail.get("subject"), LONG),
            "priority": _priority(current("priority")),
            "channel": (_text(via.get("channel")) or "").lower() or None,
            "tags": _tags(detail.get("tags")),
            "csat": _zendesk_csat(rating),
            "by_requester": _zendesk_by_requester(detail),
        }
    )


def _zendesk_by_requester(detail: dict[str, Any]) -> bool | None:
    """Whether the requester made the change: ``detail.actor_id`` (who did it; ``-1``
    for Zendesk itself) against ``detail.requester_id``, strings or numbers; either
    missing: unknown."""
    actor, requester = _text(detail.get("actor_id")), _text(detail.get("requester_id"))
    if actor is None or requester is None:
        return None
    return actor == requester


def _zendesk_csat(rating: Any) -> dict[str, Any] | None:
    """``{score, comment}``: a 1-5 score as is; Zendesk's good/bad as 5/1; offered: none."""
    if not isinstance(rating, dict):
        return None
    score = rating.get("score")
    if isinstance(score, str):
        score = int(score) if score.strip().isdigit() else ZENDESK_CSAT.get(score.strip().lower())
    if not isinstance(score, int) or isinstance(score, bool) or not 1 <= score <= 5:
        return None
    return {"score": score, "comment": _text(rating.get("comment"))}


# --- Intercom -------------------------------------------------------------------------
def intercom(payload: Any) -> SupportTicketEvent | Ignored:
    """An Intercom ``notification_event`` about a conversation as a ticket event.

    Works with the conversation model of API 2.x (``contacts``, ``source.author``,
    ``state``) and the older 1.x one (``user``, ``open``).
    """
    body = _obj(payload, "the payload")
    if body.get("type") != "notification_event":
        raise Unmappable("unsupported_payload", "type must be 'notification_event'")
    topic = body.get("topic")
    if not isinstance(topic, str) or not topic:
        raise Unmappable("missing_field", "topic is missing")
    if not topic.startswith("conversation."):
        return Ignored(f"{topic} is not a conversation topic")
    data = _obj(body.get("data"), "data")
    item = _obj(data.get("item"), "data.item")
    conversation = _id(item.get("id"), "data.item.id")
    created_at = body.get("created_at")
    occurred = _unix(created_at if created_at is not None else item.get("updated_at"), "created_at")
    state = item.get("state")
    if isinstance(state, str) and state in INTERCOM_STATES:
        status = INTERCOM_STATES[state]
    elif isinstance(item.get("open"), bool):
        status = "open" if item["open"] else "solved"
    else:
        status = {
            "conversation.admin.closed": "solved",
            "conversation.admin.snoozed": "pending",
        }.get(topic, "open")
    if topic in INTERCOM_CREATED:
        event = "created"
    elif topic == "conversation.admin.closed":
        event, status = "solved", "solved"
    else:
        event = "updated"
    source = _obj(item.get("source"), "data.item.source", required=False)
    author = _obj(source.get("author"), "data.item.source.author", required=False)
    user = _obj(item.get("user"), "data.item.user", required=False)  # API 1.x
    contacts = _obj(item.get("contacts"), "data.item.contacts", required=False).get("contacts")
    contact = contacts[0] if isinstance(contacts, list) and contacts else {}
    contact = contact if isinstance(contact, dict) else {}
    person = author if _text(author.get("type")) in INTERCOM_PEOPLE else {}
    tags = item.get("tags")
    rating = _obj(item.get("conversation_rating"), "conversation_rating", required=False)
    score = rating.get("rating")
    csat = (
        {"score": score, "comment": _text(rating.get("remark"))}
        if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5
        else None
    )
    channel = _text(source.get("type"))
    priority = {"priority": "high", "not_priority": "normal"}.get(_text(item.get("priority")) or "")
    notification = _text(body.get("id")) or str(int(occurred.timestamp()))
    return _build(
        {
            "event_id": _event_id("intercom", conversation, event, notification),
            "system": "intercom",
            "external_id": conversation,
            "event": event,
            "occurred_at": occurred,
            "status": status,
            "requester": {
                "email": _text(person.get("email"))
                or _text(contact.get("email"))
                or _text(user.get("email")),
                "user_id": _text(contact.get("external_id")) or _text(user.get("user_id")),
                "name": _shown(_text(person.get("name")) or user.get("name"), SHORT),
            },
            "subject": _shown(_text(item.get("title")) or source.get("subject"), LONG),
            "priority": priority,
            "channel": INTERCOM_CHANNELS.get(channel.lower(), channel.lower()) if channel else None,
            "tags": _tags(tags.get("tags") if isinstance(tags, dict) else tags),
            "csat": csat,
            "by_requester": _intercom_by_requester(topic),
        }
    )


def _intercom_by_requester(topic: str) -> bool | None:
    """Whether the contact made the change, as the topic says: ``conversation.user.*``
    (created, replied) and a rating are the contact's, ``conversation.admin.*`` a
    teammate's (replied, closed, assigned, noted, snoozed, …) and
    ``conversation.operator.*`` Intercom's bot's (Operator, Fin); any other: unknown."""
    if topic.startswith("conversation.user.") or topic in INTERCOM_BY_CONTACT:
        return True
    if topic.startswith(("conversation.admin.", "conversation.operator.")):
        return False
    return None


MAPPERS = {"zendesk": zendesk, "intercom": intercom}
