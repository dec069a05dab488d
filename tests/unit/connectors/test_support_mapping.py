"""Zendesk and Intercom payloads → SupportTicketEvent; webhook signatures; configuration."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import json
from datetime import UTC, datetime

import msgspec
import pytest

from connectors.envconfig import ConfigError
from connectors.support import mapping
from connectors.support.app import Receiver, create_app
from connectors.support.config import SupportConfig
from connectors.support.signatures import (
    intercom_signature,
    intercom_valid,
    zendesk_signature,
    zendesk_valid,
)
from stream.core.ingest import Ingest
from stream.core.rules import DEFAULT, Compiled
from stream.settings import Settings
from tests.support.webhooks import (
    INTERCOM_USER_CREATED,
    ZENDESK_TICKET_CREATED,
    intercom_closed_with_rating,
    zendesk_status_changed,
)
from tests.unit.connectors.standin import raw_post, serving


def as_dict(ticket) -> dict:
    return msgspec.to_builtins(ticket)


def ingested(ticket):
    return Ingest(Compiled(DEFAULT)).record("support", msgspec.json.encode(ticket))


# --- Zendesk -----------------------------------------------------------------------------
def test_a_zendesk_ticket_created_maps_to_a_created_event():
    ticket = mapping.zendesk(ZENDESK_TICKET_CREATED)
    assert as_dict(ticket) == {
        "event_id": "zendesk:48213:created",
        "system": "zendesk",
        "external_id": "48213",
        "event": "created",
        "occurred_at": "2026-11-04T08:30:00Z",
        "status": "new",
        "requester": {
            "email": "Ada.Lovelace@lovelace.dev",
            "user_id": "user_4815162342",
            "name": "Ada",
        },
        "subject": "Bridge transfer stuck",
        "priority": "high",
        "channel": "email",
        "tags": ["bridge", "base"],
        "by_requester": True,  # detail.actor_id is the requester_id
    }
    [fact] = ingested(ticket).facts
    assert fact.ident == "user:user_4815162342"
    assert "email:ada.lovelace@lovelace.dev" in fact.assoc  # asserted: never merges


def test_long_names_subjects_and_tags_are_cut_not_refused():
    # c360 only shows them, and a refused webhook (422) is not retried: the ticket
    # would be lost for a long display name
    zendesk = copy.deepcopy(ZENDESK_TICKET_CREATED)
    detail = zendesk["detail"]
    detail["requester"]["name"] = "N" * 300
    detail["subject"] = "S" * 2000
    detail["tags"] = ["t" * 300]
    ticket = mapping.zendesk(zendesk)
    assert (len(ticket.requester.name), len(ticket.subject)) == (256, 1024)
    assert [len(t) for t in ticket.tags] == [256]
    intercom = copy.deepcopy(INTERCOM_USER_CREATED)
    item = intercom["data"]["item"]
    item["title"] = "T" * 2000
    item["source"]["author"]["name"] = "A" * 300
    ticket = mapping.intercom(intercom)
    assert len(ticket.subject) == 1024
    assert ticket.requester.name is None or len(ticket.requester.name) <= 256
    assert ingested(ticket).facts
    item["source"]["author"]["name"] = "-"  # no name there: API 1.x's user's
    item["user"] = {"type": "user", "name": "Ada L."}
    assert mapping.intercom(intercom).requester.name == "Ada L."


def test_a_zendesk_status_change_to_solved_is_a_solved_event_with_its_csat():
    ticket = mapping.zendesk(
        zendesk_status_changed("SOLVED", satisfaction_rating={"score": "good", "comment": "Thx"})
    )
    assert (ticket.event, ticket.status) == ("solved", "solved")
    assert ticket.event_id == "zendesk:48213:solved:b7d2e1f0-0000-4000-8000-00000000beef"
    assert ticket.occurred_at == datetime(2026, 11, 4, 10, tzinfo=UTC)
    assert (ticket.csat.score, ticket.csat.comment) == (5, "Thx")
    assert mapping.zendesk(zendesk_status_changed("PENDING")).event == "updated"
    offered = zendesk_status_changed("SOLVED", satisfaction_rating={"score": "offered"})
    assert mapping.zendesk(offered).csat is None


def test_zendesk_priority_changes_use_the_new_value_and_trigger_bodies_are_accepted():
    payload = copy.deepcopy(ZENDESK_TICKET_CREATED)
    payload.update(
        type="zen:event-type:ticket.priority_changed",
        event={"current": "URGENT", "previous": "HIGH"},
    )
    assert mapping.zendesk(payload).priority == "urgent"
    # A trigger's custom body: placeholders render tags as one string, status localized.
    payload = copy.deepcopy(ZENDESK_TICKET_CREATED)
    payload["detail"].update(tags="vip bridge", status="On-hold", priority="-", id=48213)
    ticket = mapping.zendesk(payload)
    assert ticket.tags == ["vip", "bridge"] and ticket.status == "hold"
    assert ticket.priority is None and ticket.external_id == "48213"


def test_a_zendesk_event_says_whether_the_requester_made_it_when_it_names_the_actor():
    # ids are strings or numbers; an agent (or a trigger, actor -1) is not the requester
    by = {}
    for name, ids in {
        "requester": {"actor_id": 8447388090494, "requester_id": "8447388090494"},
        "agent": {"actor_id": "9001", "requester_id": "8447388090494"},
        "system": {"actor_id": -1, "requester_id": 8447388090494},
        "no actor": {"actor_id": None},
        "no requester": {"requester_id": ""},
    }.items():
        payload = zendesk_status_changed("SOLVED", **ids)
        by[name] = mapping.zendesk(payload).by_requester
    assert by == {
        "requester": True,
        "agent": False,
        "system": False,
        "no actor": None,
        "no requester": None,
    }
    payload = copy.deepcopy(ZENDESK_TICKET_CREATED)
    del payload["detail"]["actor_id"], payload["detail"]["requester_id"]
    ticket = mapping.zendesk(payload)
    assert ticket.by_requester is None and "by_requester" not in as_dict(ticket)
    [fact] = ingested(mapping.zendesk(zendesk_status_changed("SOLVED", actor_id="9001"))).facts
    assert fact.data["by_requester"] is False


def test_non_ticket_zendesk_events_are_ignored():
    payload = {"type": "zen:event-type:user.active_changed", "id": "x", "detail": {}}
    assert isinstance(mapping.zendesk(payload), mapping.Ignored)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"type": "ticket.created"}, "unsupported_payload"),
        ({"detail": None}, "missing_field"),
        ({"detail": "48213"}, "invalid_field"),
        ({"time": "yesterday"}, "invalid_field"),
        ({"subject": None, "detail": {"status": "NEW"}}, "missing_field"),
        ({"detail": {**ZENDESK_TICKET_CREATED["detail"], "status": "DELETED"}}, "unknown_status"),
        # an identifier is not cut (text c360 only shows is: see below)
        (
            {"detail": {**ZENDESK_TICKET_CREATED["detail"], "requester": {"email": "x" * 300}}},
            "invalid_field",
        ),
    ],
)
def test_unmappable_zendesk_payloads_have_a_reason(change, reason):
    payload = {**copy.deepcopy(ZENDESK_TICKET_CREATED), **change}
    with pytest.raises(mapping.Unmappable) as err:
        mapping.zendesk(payload)
    assert err.value.reason == reason


def test_a_zendesk_ticket_without_requester_identity_is_refused_by_ingest():
    payload = copy.deepcopy(ZENDESK_TICKET_CREATED)
    del payload["detail"]["requester"]
    rejections = ingested(mapping.zendesk(payload)).rejections
    assert [r.reason for r in rejections] == ["missing_field"]


# --- Intercom ----------------------------------------------------------------------------
def test_an_intercom_conversation_created_maps_to_a_created_event():
    ticket = mapping.intercom(INTERCOM_USER_CREATED)
    assert as_dict(ticket) == {
        "event_id": "intercom:215469:created",
        "system": "intercom",
        "external_id": "215469",
        "event": "created",
        "occurred_at": "2026-11-04T09:00:00Z",
        "status": "open",
        "requester": {"email": "ada@lovelace.dev", "user_id": "user_4815162342", "name": "Ada"},
        "priority": "normal",
        "channel": "chat",
        "tags": ["swap"],
        "by_requester": True,  # conversation.user.*: the contact did it
    }
    assert ingested(ticket).facts[0].ident == "user:user_4815162342"


def test_an_intercom_close_is_solved_with_its_rating():
    ticket = mapping.intercom(intercom_closed_with_rating(4))
    assert (ticket.event, ticket.status) == ("solved", "solved")
    assert ticket.event_id == "intercom:215469:solved:notif_0f1e2d3c-0000-4000-8000-00000000cafe"
    assert (ticket.csat.score, ticket.csat.comment) == (4, "Fast and clear")


def test_an_intercom_topic_says_whether_the_contact_or_a_teammate_acted():
    by = {}
    for topic in (
        "conversation.user.created",
        "conversation.user.replied",
        "conversation.rating.added",
        "conversation.admin.replied",
        "conversation.admin.closed",
        "conversation.admin.single.created",
        "conversation.admin.assigned",
        "conversation.admin.noted",
        "conversation.admin.snoozed",
        "conversation.operator.replied",
        "conversation.priority.updated",
        "conversation.read",
    ):
        by[topic] = mapping.intercom({**INTERCOM_USER_CREATED, "topic": topic}).by_requester
    assert by == {
        "conversation.user.created": True,
        "conversation.user.replied": True,
        "conversation.rating.added": True,  # the contact rated it
        "conversation.admin.replied": False,
        "conversation.admin.closed": False,
        "conversation.admin.single.created": False,
        "conversation.admin.assigned": False,
        "conversation.admin.noted": False,
        "conversation.admin.snoozed": False,
        "conversation.operator.replied": False,  # Intercom's bot (Operator, Fin)
        "conversation.priority.updated": None,  # the topic does not say who
        "conversation.read": None,
    }
    assert mapping.intercom(intercom_closed_with_rating(4)).by_requester is False


def test_intercom_api_1_conversations_and_snoozes_map_too():
    payload = copy.deepcopy(INTERCOM_USER_CREATED)
    payload["topic"] = "conversation.admin.snoozed"
    item = payload["data"]["item"]
    for key in ("state", "contacts", "source", "tags"):
        del item[key]
    item.update(open=True, user={"type": "user", "user_id": "u-7", "email": "u7@ex.dev"})
    ticket = mapping.intercom(payload)
    assert (ticket.event, ticket.status) == ("updated", "open")
    assert (ticket.requester.user_id, ticket.requester.email) == ("u-7", "u7@ex.dev")
    item["state"] = "snoozed"
    assert mapping.intercom(payload).status == "pending"


def test_intercom_pings_and_other_topics_are_ignored_and_bad_payloads_have_a_reason():
    ping = {"type": "notification_event", "topic": "ping", "data": {"item": {"type": "ping"}}}
    assert mapping.intercom(ping) == mapping.Ignored("ping is not a conversation topic")
    assert isinstance(
        mapping.intercom({**INTERCOM_USER_CREATED, "topic": "contact.user.created"}),
        mapping.Ignored,
    )
    for payload, reason in [
        ([], "invalid_field"),
        ({"type": "event"}, "unsupported_payload"),
        ({"type": "notification_event"}, "missing_field"),
        ({**INTERCOM_USER_CREATED, "data": {"item": {"id": None}}}, "missing_field"),
        ({**INTERCOM_USER_CREATED, "created_at": "soon"}, "invalid_field"),
    ]:
        with pytest.raises(mapping.Unmappable) as err:
            mapping.intercom(payload)
        assert err.value.reason == reason, payload


# --- signatures and configuration ---------------------------------------------------------
def test_signatures_match_the_documented_constructions():
    body, ts = b'{"a":1}', "2026-11-04T08:30:00Z"
    expected = base64.b64encode(
        hmac.new(b"zsecret", ts.encode() + body, hashlib.sha256).digest()
    ).decode()
    assert zendesk_signature("zsecret", ts, body) == expected
    assert zendesk_valid("zsecret", ts, body, expected)
    assert not zendesk_valid("zsecret", "2026-11-04T08:30:01Z", body, expected)
    assert not zendesk_valid("zsecret", ts, body + b" ", expected)
    assert not zendesk_valid("zsecret", None, body, expected)
    sig = "sha1=" + hmac.new(b"isecret", body, hashlib.sha1).hexdigest()
    assert intercom_signature("isecret", body) == sig
    assert intercom_valid("isecret", body, sig) and intercom_valid("isecret", body, sig.upper())
    assert not intercom_valid("isecret", body, sig[:-1] + "0" if sig[-1] != "0" else sig[:-1] + "1")
    assert not intercom_valid("other", body, sig) and not intercom_valid("isecret", body, None)


def test_support_config_reads_secrets_from_the_environment_only():
    config = SupportConfig.from_env(
        {"C360_SUPPORT_ZENDESK_SECRET": "z", "C360_SUPPORT_PORT": "9001"}
    )
    assert (config.zendesk_secret, config.intercom_secret, config.port) == ("z", "", 9001)
    assert config.host == "127.0.0.1"
    with pytest.raises(ConfigError):
        SupportConfig.from_env({"C360_SUPPORT_ZENDESK_MAX_AGE": "-1"})


# --- robustness --------------------------------------------------------------------------
ODD_VALUES = [None, True, 0, -1, 1.5, 10**30, "", "x", "solved", [], ["x"], {}, {"a": 1}, [{}]]


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, child in value.items():
            yield (*prefix, key)
            yield from _paths(child, (*prefix, key))


SAMPLES = [
    (mapping.zendesk, zendesk_status_changed("SOLVED", satisfaction_rating={"score": 4})),
    (mapping.intercom, intercom_closed_with_rating(3)),
]


@pytest.mark.parametrize(("mapper", "sample"), SAMPLES)
def test_any_field_of_any_type_maps_or_is_unmappable_never_crashes(mapper, sample):
    for path in _paths(sample):
        for value in ODD_VALUES:
            payload = copy.deepcopy(sample)
            target = payload
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = value
            try:
                result = mapper(payload)
            except mapping.Unmappable as exc:
                assert exc.reason and exc.message
                continue
            if not isinstance(result, mapping.Ignored):
                msgspec.json.encode(result)  # a valid contract struct


def test_a_signature_header_that_is_not_ascii_is_invalid_never_an_exception():
    # aiohttp decodes header bytes as UTF-8 with surrogate escapes: b"\xff" is "\udcff"
    body, ts = b'{"a":1}', "2026-11-04T08:30:00Z"
    for odd in ("\udcff", "é", "sha1=\udcff"):
        assert not zendesk_valid("zsecret", ts, body, odd)
        assert not zendesk_valid("zsecret", odd, body, zendesk_signature("zsecret", ts, body))
        assert not intercom_valid("isecret", body, odd)


async def test_odd_signature_bytes_get_a_json_401_over_http():
    settings = Settings.from_env({})
    config = SupportConfig(zendesk_secret="zsecret", intercom_secret="isecret")
    async with serving(lambda p: create_app(config, settings, producer=p), settings) as (c, _):
        body = b'{"type":"notification_event","topic":"ping"}'
        for header in (b"X-Hub-Signature: sha1=\xff", b"X-Hub-Signature: sha1=\xc3\xa9"):
            status, answer = await raw_post(c, "/v1/webhooks/intercom", header, body)
            assert status == 401 and json.loads(answer)["reason"] == "bad_signature"
        zendesk = b"X-Zendesk-Webhook-Signature: \xff\r\nX-Zendesk-Webhook-Signature-Timestamp: 1"
        status, answer = await raw_post(c, "/v1/webhooks/zendesk", zendesk, body)
        assert status == 401 and json.loads(answer)["reason"] == "bad_signature"


def test_the_receivers_deliveries_keep_its_up_gauge_current():
    receiver = Receiver(SupportConfig(), Settings.from_env({}))
    assert receiver.producer.up is receiver.metrics.up.labels("support")
