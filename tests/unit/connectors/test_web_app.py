"""The collector over HTTP with a stand-in Kafka client (no broker): limits, SIWE, errors."""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from eth_account import Account

from connectors.envconfig import ConfigError
from connectors.web.app import COLLECTOR, Collector, create_app
from connectors.web.config import CollectorConfig
from stream.core.ingest import Ingest
from stream.core.rules import DEFAULT, Compiled
from stream.settings import Settings
from tests.unit.connectors.standin import FakeKafka, StandInProducer, raw_post, serving, until
from tests.unit.connectors.test_siwe import message, sign
from tests.unit.connectors.test_web_events import NOW, basic

BROWSER, SERVER = "wk_browser_1", "sk_server_1"
DOMAIN = "app.example.xyz"
ORIGIN = "https://app.example.xyz"
WALLET = Account.from_key("0x" + "11" * 32)


def web_config(**kw: Any) -> CollectorConfig:
    base: dict[str, Any] = dict(
        browser_keys=(BROWSER,),
        server_keys=(SERVER,),
        allowed_origins=(ORIGIN,),
        siwe_domain=DOMAIN,
        siwe_chain_ids=(1, 8453),
    )
    base.update(kw)
    return CollectorConfig(**base)


def auth(key: str) -> dict[str, str]:
    return {"Authorization": basic(key)}


@contextlib.asynccontextmanager
async def collector(
    settings: Settings | None = None, clock: Callable[[], float] = time.time, **kw: Any
) -> AsyncIterator[tuple[TestClient, FakeKafka]]:
    """A served collector whose records land in a :class:`FakeKafka`."""
    settings = settings or Settings.from_env({})
    config = web_config(**kw)

    def make(producer):
        return create_app(config, settings, producer=producer, clock=clock)

    async with serving(make, settings) as served:
        yield served


# --- record limit ----------------------------------------------------------------------
def test_an_enriched_event_must_fit_a_record_with_its_brackets():
    # the producer sends "[event]": an event of record_max - 1 bytes makes a record the
    # worker dead-letters as too_large, so the collector refuses it at once
    settings = Settings.from_env({}, record_max_bytes=4096)
    c = Collector(web_config(max_event_bytes=1024), settings, producer=StandInProducer(settings))
    raw = json.dumps({"type": "page", "anonymousId": "d1", "messageId": "m1"}).encode()
    sizes, refused = [], []
    for pad in range(3800, 3950):
        out = c.preparer.prepare(
            [raw], auth="browser", received_at=NOW, batch_context={"pad": "x" * pad}
        )
        sizes += [len(d) for _, d, _ in out.accepted]
        refused += [e.reason for e in out.errors]
    assert max(sizes) == 4096 - 2
    assert refused and set(refused) == {"too_large"}


def test_a_config_whose_largest_event_cannot_fit_a_record_is_refused():
    config = web_config(max_event_bytes=4096)
    with pytest.raises(ConfigError, match="C360_RECORD_MAX_BYTES=4096"):
        config.check_record_limit(4096)
    with pytest.raises(ConfigError):
        Collector(config, Settings.from_env({}, record_max_bytes=4096))
    config.check_record_limit(4096 + 512 + 2)  # just fits


# --- Sign-In With Ethereum -------------------------------------------------------------
async def nonce(client: TestClient, key: str = BROWSER, device: str | None = None) -> str:
    query = {"anonymousId": device} if device else {}
    r = await client.get("/v1/siwe/nonce", headers=auth(key), params=query)
    assert r.status == 200, await r.text()
    return (await r.json())["nonce"]


async def sign_in(client: TestClient, key: str = BROWSER, **body: Any) -> tuple[int, dict]:
    """Sign in with :data:`WALLET` on a fresh nonce; ``body`` adds to the verify request."""
    text = message(WALLET.address, await nonce(client, key))
    body = {"message": text, "signature": sign(WALLET, text), **body}
    r = await client.post("/v1/siwe/verify", json=body, headers=auth(key))
    return r.status, await r.json()


async def test_a_flood_of_nonce_requests_does_not_void_a_pending_sign_in():
    async with collector(siwe_max_nonces=10) as (client, kafka):
        text = message(WALLET.address, await nonce(client))
        for _ in range(50):  # the browser key is public: anyone may do this
            await nonce(client)
        body = {"message": text, "signature": sign(WALLET, text), "anonymousId": "d1"}
        r = await client.post("/v1/siwe/verify", json=body, headers=auth(BROWSER))
        assert r.status == 200, await r.text()
        assert [e["event"] for e in kafka.events()] == ["SIWE Sign In"]


async def test_a_nonce_bound_to_a_device_signs_in_that_device_only():
    # a signed message that leaks before it is used cannot sign in another device
    async with collector() as (client, kafka):
        text = message(WALLET.address, await nonce(client, device="d1"))
        body = {"message": text, "signature": sign(WALLET, text)}
        for other in ("d2", None):
            attempt = {**body, "anonymousId": other} if other else {**body, "userId": "u"}
            r = await client.post("/v1/siwe/verify", json=attempt, headers=auth(SERVER))
            assert r.status == 401 and (await r.json())["reason"] == "unknown_nonce"
        r = await client.post(
            "/v1/siwe/verify", json={**body, "anonymousId": "d1"}, headers=auth(BROWSER)
        )
        assert r.status == 200, await r.text()
        assert [e["anonymousId"] for e in kafka.events()] == ["d1"]
        # an unbound nonce still signs in whoever sends it (the opt-in is the client's)
        status, _ = await sign_in(client, anonymousId="d9")
        assert status == 200


def ingested(event: dict[str, Any]):
    """The fact the worker's ingest makes of a produced event."""
    [fact] = Ingest(Compiled(DEFAULT)).record("web.events", json.dumps(event).encode()).facts
    return fact


async def test_a_browser_sign_in_binds_the_wallet_to_the_device_not_to_the_claimed_user():
    wallet = "wallet:" + WALLET.address.lower()
    async with collector() as (client, kafka):
        status, _ = await sign_in(client, anonymousId="d1", userId="victim-42")
        assert status == 200
        fact = ingested(kafka.events()[-1])
        assert fact.ident == "anon:d1"
        assert fact.links == (("user:victim-42", "ids_browser"), (wallet, "siwe"))
        # without the device, a browser's sign-in would only vouch for a claimed user id
        status, body = await sign_in(client, userId="victim-42")
        assert (status, body["reason"]) == (400, "missing_field")
        assert len(kafka.events()) == 1
        # the product's backend (server key) vouches for its user ids
        status, _ = await sign_in(client, SERVER, userId="u-7")
        assert status == 200
        assert ingested(kafka.events()[-1]).links == ((wallet, "siwe"),)


# --- batch limits ----------------------------------------------------------------------
async def test_a_batch_over_the_event_cap_gets_413_and_produces_nothing():
    async with collector(max_batch_events=50) as (client, kafka):
        page = {"type": "page", "anonymousId": "d1"}
        r = await client.post("/v1/batch", json={"batch": [page] * 51}, headers=auth(BROWSER))
        assert r.status == 413
        body = await r.json()
        assert body["reason"] == "too_many_events" and "limit is 50" in body["message"]
        assert kafka.records == []
        r = await client.post("/v1/batch", json={"batch": [page] * 50}, headers=auth(BROWSER))
        assert r.status == 200 and (await r.json())["accepted"] == 50


async def test_a_batch_of_bad_events_lists_the_first_errors_and_counts_the_others():
    async with collector() as (client, kafka):
        batch = [{"type": "page", "anonymousId": "d1"}] + [{}] * 1500
        r = await client.post("/v1/batch", json={"batch": batch}, headers=auth(BROWSER))
        assert r.status == 400
        body = await r.json()
        assert (body["accepted"], body["rejected"]) == (1, 1500)
        assert [e["index"] for e in body["errors"]] == list(range(1, 101))
        assert body["unlisted"] == 1400
        assert len(kafka.events()) == 1


# --- odd requests ----------------------------------------------------------------------
async def test_an_authorization_header_that_is_not_ascii_gets_a_json_401():
    async with collector() as (client, kafka):
        body = b'{"event": "x", "anonymousId": "a1"}'
        for value in (b"Basic \xc3\xa9", b"Basic \xff"):
            status, answer = await raw_post(client, "/v1/track", b"Authorization: " + value, body)
            assert status == 401 and json.loads(answer)["reason"] == "unauthorized"
        r = await client.post(
            "/v1/track", data=b'{"event": "x", "anonymousId": "a1", "writeKey": "\\ud800"}'
        )
        assert r.status == 401 and (await r.json())["reason"] == "unauthorized"
        assert kafka.records == []


async def test_errors_raised_in_a_handler_carry_the_cors_headers():
    # without them a browser cannot read the 413 and analytics.js retries the batch
    async with collector(max_request_bytes=1024) as (client, kafka):
        origin = {"Origin": ORIGIN}
        big = {"batch": [{"type": "page", "anonymousId": "d1"}] * 100}
        r = await client.post("/v1/batch", json=big, headers={**auth(BROWSER), **origin})
        assert r.status == 413 and (await r.json())["reason"] == "too_large"
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        r = await client.get("/v1/track", headers=origin)
        assert r.status == 405 and (await r.json())["success"] is False
        assert r.headers["Access-Control-Allow-Origin"] == ORIGIN
        r = await client.post("/v1/nowhere", headers=origin)
        assert r.status == 404 and r.headers["Access-Control-Allow-Origin"] == ORIGIN
        r = await client.post("/v1/batch", json=big, headers={"Origin": "https://evil.example"})
        assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
        assert kafka.records == []


async def test_a_sign_in_whose_event_is_invalid_keeps_its_nonce_for_the_corrected_retry():
    async with collector() as (client, kafka):
        text = message(WALLET.address, await nonce(client))
        good = sign(WALLET, text)

        async def verify(**body: Any) -> tuple[int, str]:
            body = {"message": text, "signature": good, "anonymousId": "d1", **body}
            r = await client.post("/v1/siwe/verify", json=body, headers=auth(BROWSER))
            return r.status, (await r.json()).get("reason", "")

        assert await verify(context={"page": 5}) == (400, "invalid_field")
        assert await verify(signature=good[:10] + " " + good[10:]) == (400, "invalid_field")
        assert await verify(anonymousId="x" * 300) == (400, "bad_request")
        assert kafka.records == []
        assert await verify() == (200, "")
        assert await verify() == (401, "replayed_nonce")
        assert [e["messageId"] for e in kafka.events()] == [f"siwe-{text.split('Nonce: ')[1][:64]}"]


# --- metrics ---------------------------------------------------------------------------
async def test_connector_up_is_0_while_kafka_refuses_deliveries():
    up = 'c360_connector_up{connector="web"}'

    async def gauge(client: TestClient) -> str:
        text = await (await client.get("/metrics")).text()
        return next(line for line in text.splitlines() if line.startswith(up))

    async with collector() as (client, kafka):
        event = {"event": "Clicked", "anonymousId": "d1"}
        assert await gauge(client) == f"{up} 1.0"
        kafka.fail = RuntimeError("KafkaTimeoutError")
        r = await client.post("/v1/track", json=event, headers=auth(BROWSER))
        assert r.status == 503
        assert await gauge(client) == f"{up} 0.0"
        kafka.fail = None
        r = await client.post("/v1/track", json=event, headers=auth(BROWSER))
        assert r.status == 200
        assert await gauge(client) == f"{up} 1.0"


async def test_a_delivery_kafka_does_not_acknowledge_in_time_gets_503():
    async with collector(delivery_timeout=0.1) as (client, kafka):
        kafka.hang = True  # the idempotent producer would retry for as long as it takes
        event = {"event": "Clicked", "anonymousId": "d1", "messageId": "m-1"}
        r = await client.post("/v1/track", json=event, headers=auth(BROWSER))
        assert r.status == 503 and (await r.json())["reason"] == "kafka_unavailable"
        status, body = await sign_in(client, anonymousId="d1")
        assert (status, body["reason"]) == (503, "kafka_unavailable")
        text = await (await client.get("/metrics")).text()
        assert 'c360_connector_up{connector="web"} 0.0' in text
        assert 'c360_collector_events_total{outcome="failed",type="track"} 2.0' in text
        kafka.hang = False
        kafka.acknowledge()  # the late deliveries land: the retries count once downstream
        assert [e["messageId"] for e in kafka.events()][:1] == ["m-1"]
        await until(lambda: up_gauge(client) == 1.0)  # the producer learnt it delivers again


def up_gauge(client: TestClient) -> float:
    """The collector's ``c360_connector_up``, read from its registry."""
    return client.app[COLLECTOR].metrics.up.labels("web")._value.get()


async def test_health_answers_what_the_docs_show():
    docs = (Path(__file__).parents[3] / "docs" / "connectors" / "web.md").read_text()
    shown = re.search(r"\| `GET /health` \| `(\{.*?\})`", docs)
    async with collector() as (client, _):
        resp = await client.get("/health")
        assert resp.status == 200 and await resp.json() == json.loads(shown[1])
