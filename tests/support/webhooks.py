"""Sample Zendesk and Intercom webhook payloads, shaped as their public docs describe them."""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.support.signatures import zendesk_signature

ZENDESK_TICKET_CREATED: dict[str, Any] = {
    "type": "zen:event-type:ticket.created",
    "account_id": 12514403,
    "id": "a3f1c0de-1b2c-4d5e-8f90-123456789abc",
    "time": "2026-11-04T08:30:00Z",
    "zendesk_event_version": "2022-11-06",
    "subject": "zen:ticket:48213",
    "detail": {
        "actor_id": "8447388090494",
        "assignee_id": None,
        "brand_id": "8447346621310",
        "created_at": "2026-11-04T08:30:00Z",
        "description": "My bridge transfer to Base has been pending for an hour.",
        "external_id": None,
        "form_id": "8447325018174",
        "group_id": "8447320466430",
        "id": "48213",
        "is_public": True,
        "organization_id": None,
        "priority": "HIGH",
        "requester_id": "8447388090494",
        "status": "NEW",
        "subject": "Bridge transfer stuck",
        "submitter_id": "8447388090494",
        "tags": ["bridge", "base"],
        "type": "INCIDENT",
        "updated_at": "2026-11-04T08:30:00Z",
        "via": {"channel": "email"},
        "requester": {
            "email": "Ada.Lovelace@lovelace.dev",
            "external_id": "user_4815162342",
            "name": "Ada",
        },
    },
    "event": {"meta": {"sequence": {"id": "seq-1", "position": 1}}},
}


def zendesk_status_changed(current: str, previous: str = "OPEN", **detail: Any) -> dict[str, Any]:
    payload = copy.deepcopy(ZENDESK_TICKET_CREATED)
    payload.update(
        type="zen:event-type:ticket.status_changed",
        id="b7d2e1f0-0000-4000-8000-00000000beef",
        time="2026-11-04T10:00:00Z",
        event={"current": current, "previous": previous},
    )
    payload["detail"].update(status=current, updated_at="2026-11-04T10:00:00Z", **detail)
    return payload


INTERCOM_USER_CREATED: dict[str, Any] = {
    "type": "notification_event",
    "app_id": "ecahpwf5",
    "id": "notif_6b0a7f2e-54c3-4f7e-9d0a-2c1b3a4d5e6f",
    "topic": "conversation.user.created",
    "created_at": 1793782800,
    "delivery_attempts": 1,
    "first_sent_at": 1793782800,
    "data": {
        "type": "notification_event_data",
        "item": {
            "type": "conversation",
            "id": "215469",
            "created_at": 1793782800,
            "updated_at": 1793782800,
            "title": None,
            "state": "open",
            "open": True,
            "read": False,
            "priority": "not_priority",
            "source": {
                "type": "conversation",
                "id": "403918316",
                "delivered_as": "customer_initiated",
                "subject": "",
                "body": "<p>My swap failed but the gas was spent</p>",
                "author": {
                    "type": "user",
                    "id": "5310d8e7598c9a0b24000002",
                    "name": "Ada",
                    "email": "ada@lovelace.dev",
                },
            },
            "contacts": {
                "type": "contact.list",
                "contacts": [
                    {
                        "type": "contact",
                        "id": "5310d8e7598c9a0b24000002",
                        "external_id": "user_4815162342",
                    }
                ],
            },
            "tags": {"type": "tag.list", "tags": [{"type": "tag", "id": "17", "name": "swap"}]},
            "conversation_rating": None,
        },
    },
}


def intercom_closed_with_rating(score: int = 5) -> dict[str, Any]:
    payload = copy.deepcopy(INTERCOM_USER_CREATED)
    payload.update(
        topic="conversation.admin.closed",
        id="notif_0f1e2d3c-0000-4000-8000-00000000cafe",
        created_at=1793783000,
    )
    item = payload["data"]["item"]
    item.update(state="closed", open=False, updated_at=1793783000)
    item["conversation_rating"] = {"rating": score, "remark": "Fast and clear"}
    return payload


def now_rfc3339(offset: float = 0) -> str:
    return (datetime.now(UTC) + timedelta(seconds=offset)).strftime("%Y-%m-%dT%H:%M:%SZ")


async def post_zendesk(client, payload, *, secret: str, timestamp: str | None = None):
    """POST a Zendesk webhook signed with ``secret`` to an aiohttp test client."""
    body = json.dumps(payload).encode()
    timestamp = timestamp or now_rfc3339()
    return await client.post(
        "/v1/webhooks/zendesk",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Zendesk-Webhook-Signature": zendesk_signature(secret, timestamp, body),
            "X-Zendesk-Webhook-Signature-Timestamp": timestamp,
        },
    )
