"""The web collector over HTTP, producing to the real broker."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestClient, TestServer
from eth_account import Account
from eth_account.messages import encode_defunct

from connectors.serving import serve_until_stopped
from connectors.web.app import COLLECTOR, create_app
from connectors.web.config import CollectorConfig
from connectors.web.events import iso
from stream import topics
from stream.core.ingest import Ingest
from stream.core.rules import DEFAULT, Compiled
from tests.support.kafka import read_until
from tests.support.worker import free_port

pytestmark = pytest.mark.integration

BROWSER, SERVER = "wk_browser_1", "sk_server_1"
DOMAIN = "app.example.xyz"
ORIGIN = "https://app.example.xyz"


def auth(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def config(**kw) -> CollectorConfig:
    base = dict(
        browser_keys=(BROWSER,),
        server_keys=(SERVER,),
        allowed_origins=(ORIGIN,),
        siwe_domain=DOMAIN,
        siwe_chain_ids=(1, 8453),
        max_event_bytes=4096,
        max_request_bytes=16384,
    )
    base.update(kw)
    return CollectorConfig(**base)


@pytest.fixture
async def client(settings):
    app = create_app(config(), settings)
    async with TestClient(TestServer(app)) as c:
        yield c


async def landed(settings, done, timeout: float = 20.0) -> list[dict]:
    """Every event on the web events topic once ``done(events)`` holds."""
    events: list[dict] = []

    def check(records) -> bool:
        events[:] = [e for r in records for e in orjson.loads(r.value)]
        return done(events)

    await read_until(settings.kafka_bootstrap, topics.WEB_EVENTS.name(settings), check, timeout)
    return events


def with_id(message_id: str):
    return lambda events: any(e["messageId"] == message_id for e in events)


async def sentinel(client: TestClient, message_id: str = "sentinel") -> None:
    """A valid event: once it is on the topic, whatever was produced before it is too."""
    r = await client.post(
        "/v1/track",
        json={"event": "Sentinel", "anonymousId": "s-1", "messageId": message_id},
        headers=auth(BROWSER),
    )
    assert r.status == 200, await r.text()


# --- Segment API ---------------------------------------------------------------------------
async def test_posted_events_arrive_on_the_topic_with_the_collectors_context(client, settings):
    r = await client.post(
        "/v1/track",
        json={"event": "Clicked", "anonymousId": "d-1", "properties": {"k": 1}},
        headers=auth(BROWSER),
    )
    assert r.status == 200 and (await r.json()) == {"success": True, "accepted": 1}
    r = await client.post(
        "/v1/identify",
        json={
            "userId": "user-1",
            "anonymousId": "d-1",
            "messageId": "srv-identify-1",
            "traits": {"email": "ada@lovelace.dev"},
        },
        headers=auth(SERVER),
    )
    assert r.status == 200
    r = await client.post(
        "/v1/batch",
        json={
            "batch": [
                {"type": "page", "anonymousId": "d-2", "messageId": "b-1", "name": "Home"},
                {"type": "identify", "anonymousId": "d-2", "userId": "u-2", "messageId": "b-2"},
            ],
            "context": {"locale": "en"},
        },
        headers=auth(BROWSER),
    )
    assert r.status == 200 and (await r.json())["accepted"] == 2
    events = await landed(settings, lambda es: len(es) >= 4)
    by_id = {e["messageId"]: e for e in events}
    assert set(by_id) >= {"srv-identify-1", "b-1", "b-2"} and len(events) == 4
    track = next(e for e in events if e.get("event") == "Clicked")
    assert track["type"] == "track" and track["receivedAt"] == track["timestamp"]
    assert track["context"]["c360"]["auth"] == "browser"
    assert by_id["srv-identify-1"]["context"]["c360"]["auth"] == "server"
    assert by_id["b-1"]["context"]["locale"] == "en"

    # Evidence strength is what the key says: server identify verified, browser observed.
    ingest = Ingest(Compiled(DEFAULT))
    links = {
        mid: ingest.record("web.events", orjson.dumps(by_id[mid])).facts[0].links
        for mid in ("srv-identify-1", "b-2")
    }
    assert ("anon:d-1", "identify_server") in links["srv-identify-1"]
    assert ("anon:d-2", "identify_browser") in links["b-2"]


async def test_a_bad_or_missing_write_key_gets_401_and_nothing_lands(client, settings):
    event = {"event": "Sneaky", "anonymousId": "d-9", "messageId": "sneaky"}
    for headers in ({}, auth("wk_unknown"), {"Authorization": "Bearer " + BROWSER}):
        r = await client.post("/v1/track", json=event, headers=headers)
        assert r.status == 401
        body = await r.json()
        assert body["reason"] == "unauthorized" and r.headers["WWW-Authenticate"]
    r = await client.post("/v1/batch", json={"batch": [event], "writeKey": "nope"})
    assert r.status == 401
    await sentinel(client)
    events = await landed(settings, with_id("sentinel"))
    assert [e["messageId"] for e in events] == ["sentinel"]


async def test_a_write_key_in_the_body_is_accepted_as_segment_does(client, settings):
    r = await client.post(
        "/v1/t",
        data=json.dumps({"event": "Beacon", "anonymousId": "d-3", "writeKey": BROWSER}),
        headers={"Content-Type": "text/plain"},
    )
    assert r.status == 200, await r.text()
    [event] = await landed(settings, lambda es: len(es) >= 1)
    assert event["event"] == "Beacon" and "writeKey" not in event


async def test_a_malformed_event_in_a_batch_gets_a_precise_400_while_the_others_land(
    client, settings
):
    batch = [
        {"type": "track", "event": "A", "anonymousId": "d-1", "messageId": "ok-1"},
        {"type": "track", "event": "B", "anonymousId": "d-1", "userId": 42, "messageId": "bad"},
        {"type": "page", "anonymousId": "d-1", "messageId": "ok-2"},
        {"type": "track", "event": "C", "messageId": "no-id"},
    ]
    r = await client.post("/v1/batch", json={"batch": batch}, headers=auth(BROWSER))
    assert r.status == 400
    body = await r.json()
    assert body["accepted"] == 2 and body["rejected"] == 2
    assert body["errors"] == [
        {
            "index": 1,
            "reason": "invalid_field",
            "message": "Expected `str | null`, got `int` - at `$.userId`",
        },
        {"index": 3, "reason": "missing_field", "message": "an event needs anonymousId or userId"},
    ]
    await sentinel(client)
    events = await landed(settings, with_id("sentinel"))
    assert sorted(e["messageId"] for e in events) == ["ok-1", "ok-2", "sentinel"]


async def test_bytes_that_are_not_utf8_or_nest_too_deep_get_a_400_never_a_500(client, settings):
    good = b'{"type": "page", "anonymousId": "d-2", "messageId": "ok-3"}'
    latin1 = b'{"type": "page", "anonymousId": "d-\xe9", "messageId": "latin1"}'
    deep = b'{"type": "page", "anonymousId": "d-2", "x": ' + b"[" * 300 + b"]" * 300 + b"}"
    body = b'{"batch": [' + b",".join([latin1, good, deep]) + b"]}"
    r = await client.post("/v1/batch", data=body, headers=auth(BROWSER))
    assert r.status == 400
    reply = await r.json()
    assert reply["accepted"] == 1
    assert [(e["index"], e["reason"]) for e in reply["errors"]] == [
        (0, "not_utf8"),
        (2, "too_deep"),
    ]
    # a body deeper than 512 levels is refused whole before anything decodes it: this
    # process's recursion limit is raised (py_ecc), and a decoder would overflow the stack
    for path in ("/v1/batch", "/v1/siwe/verify"):
        for depth in (600, 3_000):  # a request holds at most 16 KiB here
            nested = b"[" * depth + b"]" * depth
            body = b'{"batch": [' + nested + b'], "context": ' + nested + b"}"
            r = await client.post(path, data=body, headers=auth(BROWSER))
            assert r.status == 400 and "deeper than 512" in (await r.json())["message"]
    r = await client.post(
        "/v1/track", data=b'{"writeKey": "\xff", "event": "E"}', headers=auth(BROWSER)
    )
    assert r.status == 400 and (await r.json())["reason"] == "bad_request"
    events = await landed(settings, with_id("ok-3"))
    assert "latin1" not in {e["messageId"] for e in events}


async def test_size_limits_answer_413_and_produce_nothing(client, settings):
    big = {"event": "Big", "anonymousId": "d-1", "properties": {"x": "y" * 5000}}
    r = await client.post("/v1/track", json=big, headers=auth(BROWSER))
    assert r.status == 413 and (await r.json())["reason"] == "too_large"
    batch = {
        "batch": [{"type": "page", "anonymousId": f"d-{i}", "name": "x" * 200} for i in range(80)]
    }
    r = await client.post("/v1/batch", json=batch, headers=auth(BROWSER))
    assert r.status == 413 and (await r.json())["reason"] == "too_large"
    r = await client.post(
        "/v1/batch",
        json={"batch": [big, {"type": "page", "anonymousId": "d-1"}]},
        headers=auth(BROWSER),
    )
    assert r.status == 400 and (await r.json())["errors"][0]["reason"] == "too_large"
    await sentinel(client)
    events = await landed(settings, with_id("sentinel"))
    assert sorted(e["type"] for e in events) == ["page", "track"]


async def test_cors_preflight_and_origins(client, settings):
    r = await client.options(
        "/v1/batch",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in r.headers["Access-Control-Allow-Headers"]
    r = await client.post(
        "/v1/page", json={"anonymousId": "d-1"}, headers={**auth(BROWSER), "Origin": ORIGIN}
    )
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
    r = await client.options("/v1/batch", headers={"Origin": "https://evil.example"})
    assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    r = await client.post(
        "/v1/page",
        json={"anonymousId": "d-2", "messageId": "evil"},
        headers={**auth(BROWSER), "Origin": "https://evil.example"},
    )
    assert r.status == 403
    await sentinel(client)
    events = await landed(settings, with_id("sentinel"))
    assert "evil" not in {e["messageId"] for e in events} and len(events) == 2
    metrics = await (await client.get("/metrics")).text()
    assert 'c360_collector_requests_total{route="batch",status="204"} 1.0' in metrics
    assert 'c360_collector_rejections_total{reason="origin_not_allowed"} 2.0' in metrics


async def test_concurrent_requests_each_get_their_own_events_delivered(client, settings):
    producer = client.app[COLLECTOR].producer
    producer.add(topics.WEB_EVENTS, "someone-else", {"half": "built"})  # another user's buffer

    async def post(i: int):
        batch = [
            {"type": "track", "event": "E", "anonymousId": f"d-{i}-{j}", "messageId": f"m-{i}-{j}"}
            for j in range(5)
        ]
        r = await client.post("/v1/batch", json={"batch": batch}, headers=auth(BROWSER))
        return r.status, await r.json()

    answers = await asyncio.gather(*(post(i) for i in range(20)))
    assert all(status == 200 and body["accepted"] == 5 for status, body in answers)
    assert producer.buffered == 1  # a request never sends someone else's buffer
    events = await landed(settings, lambda es: len(es) >= 100)
    assert sorted(e["messageId"] for e in events) == sorted(
        f"m-{i}-{j}" for i in range(20) for j in range(5)
    )
    producer._pending.clear()


async def test_health_and_metrics(client, settings):
    assert (await (await client.get("/health")).json())["status"] == "ok"
    await client.post("/v1/track", json={"event": "E", "anonymousId": "d"}, headers=auth(BROWSER))
    await client.post("/v1/track", json={"event": "E", "anonymousId": 1}, headers=auth(BROWSER))
    await client.post("/v1/track", json={}, headers=auth("bad"))
    await client.get("/nowhere")
    text = await (await client.get("/metrics")).text()
    for line in (
        'c360_collector_requests_total{route="track",status="200"} 1.0',
        'c360_collector_requests_total{route="track",status="400"} 1.0',
        'c360_collector_requests_total{route="track",status="401"} 1.0',
        'c360_collector_requests_total{route="unmatched",status="404"} 1.0',
        'c360_collector_events_total{outcome="accepted",type="track"} 1.0',
        'c360_collector_events_total{outcome="rejected",type="track"} 1.0',
        'c360_collector_rejections_total{reason="invalid_field"} 1.0',
        'c360_collector_rejections_total{reason="unauthorized"} 1.0',
        'c360_connector_up{connector="web"} 1.0',
        'c360_collector_request_seconds_count{route="track"} 3.0',
    ):
        assert line in text, line


async def test_a_served_collector_shuts_down_gracefully(settings):
    port = free_port()
    app = create_app(config(port=port), settings)
    stop = asyncio.Event()
    task = asyncio.create_task(
        serve_until_stopped(app, "127.0.0.1", port, shutdown_timeout=5, name="web", stop=stop)
    )
    try:
        async with ClientSession() as http:
            for _ in range(200):  # wait for the server to listen (startup creates the topic)
                with contextlib.suppress(OSError):
                    async with http.get(f"http://127.0.0.1:{port}/health") as r:
                        if r.status == 200:
                            break
                await asyncio.sleep(0.05)
            async with http.post(
                f"http://127.0.0.1:{port}/v1/page",
                json={"anonymousId": "d-1", "messageId": "before-stop"},
                headers=auth(BROWSER),
            ) as r:
                assert r.status == 200
    finally:
        stop.set()
        await asyncio.wait_for(task, 15)
    collector = app[COLLECTOR]
    assert collector.producer._producer is None  # flushed and closed
    assert collector.metrics.up.labels("web")._value.get() == 0
    await landed(settings, with_id("before-stop"))


# --- Sign-In With Ethereum -----------------------------------------------------------------
def rfc3339(offset: float = 0.0) -> str:
    return iso(datetime.now(UTC) + timedelta(seconds=offset))


def siwe_message(address: str, nonce: str, *, domain: str = DOMAIN, chain_id: int = 1, extra=""):
    return (
        f"{domain} wants you to sign in with your Ethereum account:\n{address}\n\n"
        f"Sign in to Example.\n\nURI: https://{DOMAIN}\nVersion: 1\nChain ID: {chain_id}\n"
        f"Nonce: {nonce}\nIssued At: {rfc3339(-10)}{extra}"
    )


def sign(account, text: str) -> str:
    return "0x" + account.sign_message(encode_defunct(text=text)).signature.hex().removeprefix("0x")


async def nonce(client: TestClient) -> str:
    r = await client.get("/v1/siwe/nonce", headers=auth(BROWSER))
    assert r.status == 200 and r.headers["Cache-Control"] == "no-store"
    body = await r.json()
    assert body["domain"] == DOMAIN and body["chainIds"] == [1, 8453]
    return body["nonce"]


async def test_a_valid_sign_in_is_verified_and_its_event_carries_the_verdict(client, settings):
    account = Account.create()
    text = siwe_message(account.address, await nonce(client), chain_id=8453)
    r = await client.post(
        "/v1/siwe/verify",
        json={"message": text, "signature": sign(account, text), "anonymousId": "d-1"},
        headers=auth(BROWSER),
    )
    assert r.status == 200, await r.text()
    body = await r.json()
    assert body["address"] == account.address and body["chainId"] == 8453
    [event] = await landed(settings, lambda es: len(es) >= 1)
    assert event["event"] == "SIWE Sign In" and event["anonymousId"] == "d-1"
    assert event["properties"]["address"] == account.address
    assert event["properties"]["message"] == text
    assert event["context"]["c360"]["siwe"] == {
        "verified": True,
        "address": account.address,
        "chain_id": 8453,
    }
    [fact] = Ingest(Compiled(DEFAULT)).record("web.events", orjson.dumps(event)).facts
    assert ("wallet:" + account.address.lower(), "siwe") in fact.links


async def test_each_refused_sign_in_has_its_reason_and_produces_nothing(client, settings):
    account, other = Account.create(), Account.create()

    async def verify(text: str, signature: str) -> tuple[int, str]:
        r = await client.post(
            "/v1/siwe/verify",
            json={"message": text, "signature": signature, "anonymousId": "d-1"},
            headers=auth(BROWSER),
        )
        return r.status, (await r.json()).get("reason", "")

    text = siwe_message(account.address, await nonce(client), domain="evil.example")
    assert await verify(text, sign(account, text)) == (401, "wrong_domain")
    text = siwe_message(account.address, await nonce(client), chain_id=137)
    assert await verify(text, sign(account, text)) == (401, "chain_not_allowed")
    text = siwe_message(
        account.address, await nonce(client), extra=f"\nExpiration Time: {rfc3339(-1)}"
    )
    assert await verify(text, sign(account, text)) == (401, "expired")
    text = siwe_message(account.address, await nonce(client))
    assert await verify(text, sign(other, text)) == (401, "wrong_signer")
    assert await verify(text, sign(account, text)) == (401, "replayed_nonce")
    text = siwe_message(account.address, "neverIssued42")
    assert await verify(text, sign(account, text)) == (401, "unknown_nonce")
    assert await verify("hello", "0x00") == (400, "bad_message")

    # A replay of a successful sign-in is refused too, and only the success lands.
    text = siwe_message(account.address, await nonce(client))
    assert await verify(text, sign(account, text)) == (200, "")
    assert await verify(text, sign(account, text)) == (401, "replayed_nonce")
    await sentinel(client)
    events = await landed(settings, with_id("sentinel"))
    assert [e["event"] for e in events] == ["SIWE Sign In", "Sentinel"]
    text = (await (await client.get("/metrics")).text()).splitlines()
    for result in ("wrong_domain", "chain_not_allowed", "expired", "wrong_signer", "verified"):
        assert f'c360_siwe_verifications_total{{result="{result}"}} 1.0' in text
    assert 'c360_siwe_verifications_total{result="replayed_nonce"} 2.0' in text


async def test_siwe_needs_a_write_key(client):
    r = await client.get("/v1/siwe/nonce")
    assert r.status == 401
    r = await client.post("/v1/siwe/verify", json={"message": "m", "signature": "0x"})
    assert r.status == 401


async def test_a_tracked_sign_in_claiming_verified_arrives_unverified(client, settings):
    address = Account.create().address
    claim = {"auth": "server", "siwe": {"verified": True, "address": address, "chain_id": 1}}
    r = await client.post(
        "/v1/track",
        json={
            "event": "SIWE Sign In",
            "anonymousId": "d-1",
            "messageId": "claimed",
            "properties": {"address": address, "message": "m", "signature": "0x" + "11" * 65},
            "context": {"c360": claim},
        },
        headers=auth(BROWSER),
    )
    assert r.status == 200
    [event] = await landed(settings, with_id("claimed"))
    assert event["context"]["c360"]["auth"] == "browser"
    assert event["context"]["c360"]["siwe"]["verified"] is False
    [fact] = Ingest(Compiled(DEFAULT)).record("web.events", orjson.dumps(event)).facts
    assert fact.kind == "siwe" and fact.data["verified"] is False
    assert not [evidence for _, evidence in fact.links if evidence == "siwe"]
    assert "wallet:" + address.lower() in fact.assoc  # recorded, asserted: never merges
