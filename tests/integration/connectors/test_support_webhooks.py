"""The support webhook receiver over HTTP, producing to the real broker."""

from __future__ import annotations

import copy
import json

import orjson
import pytest
from aiohttp.test_utils import TestClient, TestServer

from connectors.support.app import create_app
from connectors.support.config import SupportConfig
from connectors.support.signatures import intercom_signature
from stream import topics
from stream.core.partitioner import partition_for
from tests.support.kafka import read_until
from tests.support.webhooks import (
    INTERCOM_USER_CREATED,
    ZENDESK_TICKET_CREATED,
    intercom_closed_with_rating,
    now_rfc3339,
    post_zendesk,
    zendesk_status_changed,
)

pytestmark = pytest.mark.integration

ZENDESK_SECRET, INTERCOM_SECRET = "dGhpc19zaWduaW5nX3NlY3JldA==", "intercom-client-secret"


@pytest.fixture
async def client(settings):
    config = SupportConfig(zendesk_secret=ZENDESK_SECRET, intercom_secret=INTERCOM_SECRET)
    async with TestClient(TestServer(create_app(config, settings))) as c:
        yield c


async def zendesk(client, payload, *, secret=ZENDESK_SECRET, timestamp=None):
    return await post_zendesk(client, payload, secret=secret, timestamp=timestamp)


async def intercom(client, payload, *, secret=INTERCOM_SECRET, signature=None):
    body = json.dumps(payload).encode()
    return await client.post(
        "/v1/webhooks/intercom",
        data=body,
        headers={
            "Content-Type": "application/json",
            "X-Hub-Signature": signature or intercom_signature(secret, body),
        },
    )


async def landed(settings, n: int) -> list:
    """The records of the support topic once they hold ``n`` events."""
    records = await read_until(
        settings.kafka_bootstrap,
        topics.SUPPORT.name(settings),
        lambda rs: sum(len(orjson.loads(r.value)) for r in rs) >= n,
    )
    return records


async def test_signed_zendesk_and_intercom_webhooks_are_mapped_and_produced(client, settings):
    r = await zendesk(client, ZENDESK_TICKET_CREATED)
    assert r.status == 200, await r.text()
    assert (await r.json()) == {"success": True, "event_id": "zendesk:48213:created"}
    r = await zendesk(client, zendesk_status_changed("SOLVED"))
    assert r.status == 200
    r = await intercom(client, INTERCOM_USER_CREATED)
    assert r.status == 200
    r = await intercom(client, intercom_closed_with_rating(5))
    assert r.status == 200 and (await r.json())["event_id"].startswith("intercom:215469:solved:")
    records = await landed(settings, 4)
    events = {e["event_id"]: (r.partition, e) for r in records for e in orjson.loads(r.value)}
    assert len(events) == 4
    partition, created = events["zendesk:48213:created"]
    assert created["requester"]["email"] == "Ada.Lovelace@lovelace.dev"
    assert (created["status"], created["priority"], created["channel"]) == ("new", "high", "email")
    assert partition == partition_for("zendesk:48213", settings.partitions)
    partition, solved = events[next(k for k in events if k.startswith("intercom:215469:solved"))]
    assert solved["csat"] == {"score": 5, "comment": "Fast and clear"}
    assert solved["requester"]["user_id"] == "user_4815162342"
    assert partition == partition_for("intercom:215469", settings.partitions)


async def test_a_bad_signature_gets_401_and_nothing_is_produced(client, settings):
    assert (await zendesk(client, ZENDESK_TICKET_CREATED, secret="wrong")).status == 401
    stale = now_rfc3339(-7200)
    assert (await zendesk(client, ZENDESK_TICKET_CREATED, timestamp=stale)).status == 401
    r = await client.post("/v1/webhooks/zendesk", json=ZENDESK_TICKET_CREATED)
    assert r.status == 401 and (await r.json())["reason"] == "bad_signature"
    assert (await intercom(client, INTERCOM_USER_CREATED, secret="wrong")).status == 401
    assert (await intercom(client, INTERCOM_USER_CREATED, signature="sha1=00")).status == 401
    # A signed webhook after them: once it is on the topic, anything before it would be too.
    sentinel = copy.deepcopy(INTERCOM_USER_CREATED)
    sentinel["data"]["item"]["id"] = "sentinel"
    assert (await intercom(client, sentinel)).status == 200
    records = await landed(settings, 1)
    assert [e["event_id"] for r in records for e in orjson.loads(r.value)] == [
        "intercom:sentinel:created"
    ]
    metrics = await (await client.get("/metrics")).text()
    assert 'c360_webhook_requests_total{result="bad_signature",system="zendesk"} 3.0' in metrics
    assert 'c360_webhook_requests_total{result="bad_signature",system="intercom"} 2.0' in metrics
    assert 'c360_webhook_requests_total{result="accepted",system="intercom"} 1.0' in metrics
    assert 'c360_connector_up{connector="support"} 1.0' in metrics


async def test_unmappable_payloads_get_422_with_the_reason_and_pings_are_ignored(client):
    r = await zendesk(client, {"type": "zen:event-type:ticket.created", "detail": {}})
    assert r.status == 422 and (await r.json())["reason"] == "missing_field"
    no_requester = copy.deepcopy(ZENDESK_TICKET_CREATED)
    del no_requester["detail"]["requester"]
    r = await zendesk(client, no_requester)
    body = await r.json()
    assert r.status == 422 and body["reason"] == "missing_field"
    assert "requester" in body["message"]
    r = await intercom(client, ["not", "an", "object"])
    assert r.status == 422 and (await r.json())["reason"] == "invalid_field"
    ping = {"type": "notification_event", "topic": "ping", "data": {"item": {"type": "ping"}}}
    r = await intercom(client, ping)
    assert r.status == 200 and (await r.json())["ignored"]


async def test_a_body_not_utf8_or_nesting_too_deep_gets_422_never_a_500(client):
    for body, reason in (
        (b'{"type": "notification_event", "topic": "\xe9"}', "not_utf8"),
        (b'{"data": ' + b"[" * 200_000 + b"]" * 200_000 + b"}", "too_deep"),
    ):
        signature = intercom_signature(INTERCOM_SECRET, body)
        r = await client.post(
            "/v1/webhooks/intercom", data=body, headers={"X-Hub-Signature": signature}
        )
        assert r.status == 422 and (await r.json())["reason"] == reason


async def test_an_unconfigured_help_desk_answers_404(settings):
    config = SupportConfig(intercom_secret=INTERCOM_SECRET)
    async with TestClient(TestServer(create_app(config, settings))) as client:
        r = await zendesk(client, ZENDESK_TICKET_CREATED)
        assert r.status == 404 and (await r.json())["reason"] == "not_configured"
        assert (await client.get("/health")).status == 200
