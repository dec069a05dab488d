"""The collector's pure parts: configuration, write keys, enrichment and validation of events."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest

from connectors.envconfig import ConfigError
from connectors.web.auth import WriteKeys, basic_username
from connectors.web.config import CollectorConfig
from connectors.web.events import EventPreparer
from stream.core.ingest import Ingest
from stream.core.rules import DEFAULT, Compiled

NOW = datetime(2026, 11, 2, 9, 0, 0, 123000, tzinfo=UTC)


def basic(key: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{key}:{password}".encode()).decode()


def preparer(max_event_bytes: int = 32 * 1024) -> EventPreparer:
    return EventPreparer(Ingest(Compiled(DEFAULT)), max_event_bytes)


def prepare(events, **kw):
    kw.setdefault("auth", "browser")
    kw.setdefault("received_at", NOW)
    raws = [e if isinstance(e, bytes) else json.dumps(e).encode() for e in events]
    out = preparer().prepare(raws, **kw)
    return [json.loads(d) for _, d, _ in out.accepted], out.errors, out


# --- configuration ---------------------------------------------------------------------
def test_config_defaults_bind_loopback_and_read_lists_from_the_environment():
    assert CollectorConfig().host == "127.0.0.1"
    config = CollectorConfig.from_env(
        {
            "C360_COLLECTOR_BROWSER_KEYS": "wk_a, wk_b",
            "C360_COLLECTOR_SERVER_KEYS": "sk_a",
            "C360_COLLECTOR_SIWE_CHAIN_IDS": "1,8453",
            "C360_COLLECTOR_PORT": "9000",
        },
        flags={"port": "9100"},
    )
    assert config.browser_keys == ("wk_a", "wk_b") and config.server_keys == ("sk_a",)
    assert config.siwe_chain_ids == (1, 8453) and config.port == 9100


@pytest.mark.parametrize(
    "env",
    [
        {"C360_COLLECTOR_PORT": "eighty"},
        {"C360_COLLECTOR_MAX_EVENT_BYTES": "10"},
        {"C360_COLLECTOR_BROWSER_KEYS": "k", "C360_COLLECTOR_SERVER_KEYS": "k"},
        {"C360_COLLECTOR_SIWE_CHAIN_IDS": "1,x"},
        {"C360_COLLECTOR_PORT": "70000"},
        {"C360_COLLECTOR_SIWE_CLOCK_SKEW": "nan"},
        # accepted before, each silently broke a feature
        {"C360_COLLECTOR_SIWE_CHAIN_IDS": ","},
        {"C360_COLLECTOR_SIWE_DOMAIN": "https://app.example.xyz"},
        {"C360_COLLECTOR_SIWE_DOMAIN": "app.example.xyz/login"},
        {"C360_COLLECTOR_ALLOWED_ORIGINS": "https://app.example.xyz/"},
        {"C360_COLLECTOR_ALLOWED_ORIGINS": "https://app.example.xyz/app"},
        {"C360_COLLECTOR_ALLOWED_ORIGINS": "app.example.xyz"},
        {"C360_COLLECTOR_ALLOWED_ORIGINS": "https://App.example.xyz"},
    ],
)
def test_bad_config_values_are_refused(env):
    with pytest.raises(ConfigError):
        CollectorConfig.from_env(env)


def test_domains_and_origins_as_browsers_and_wallets_write_them_are_accepted():
    for domain in ("app.example.xyz", "localhost:3000", "[::1]:8443"):
        assert CollectorConfig.from_env({"C360_COLLECTOR_SIWE_DOMAIN": domain}).siwe_domain
    origins = "https://app.example.xyz,http://localhost:3000,chrome-extension://abcdef,*"
    config = CollectorConfig.from_env({"C360_COLLECTOR_ALLOWED_ORIGINS": origins})
    assert len(config.allowed_origins) == 4


def test_a_bad_flag_is_named_as_the_flag():
    with pytest.raises(ConfigError, match="--port='abc'"):
        CollectorConfig.from_env({}, flags={"port": "abc"})


# --- write keys ----------------------------------------------------------------------------
def test_basic_auth_carries_the_key_as_username():
    assert basic_username(basic("wk_1")) == "wk_1"
    assert basic_username(basic("wk_1", "ignored")) == "wk_1"
    assert basic_username("Bearer wk_1") is None
    assert basic_username("Basic !!!") is None
    assert basic_username(basic("")) is None
    assert basic_username(None) is None


def test_key_kinds():
    keys = WriteKeys(browser=("wk_1",), server=("sk_1",))
    assert keys.kind("wk_1") == "browser"
    assert keys.kind("sk_1") == "server"
    assert keys.kind("sk_2") is None and keys.kind("") is None and keys.kind(None) is None


# --- enrichment ----------------------------------------------------------------------------
def test_missing_message_id_and_timestamp_are_filled_and_received_at_is_set():
    [event], errors, _ = prepare([{"type": "track", "event": "Clicked", "anonymousId": "d1"}])
    assert not errors
    assert len(event["messageId"]) == 36
    assert event["timestamp"] == event["receivedAt"] == "2026-11-02T09:00:00.123Z"
    assert event["context"]["c360"] == {"auth": "browser", "received_at": event["receivedAt"]}


def test_the_route_decides_the_type_and_a_write_key_in_the_body_is_dropped():
    [event], _, _ = prepare(
        [{"type": "identify", "anonymousId": "d1", "writeKey": "wk_1"}], route_type="page"
    )
    assert event["type"] == "page" and "writeKey" not in event


def test_a_client_claim_in_context_c360_is_replaced_by_the_collectors_own():
    claim = {
        "auth": "server",
        "siwe": {"verified": True, "address": "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045"},
    }
    [identify, siwe], errors, _ = prepare(
        [
            {"type": "identify", "userId": "u1", "anonymousId": "d1", "context": {"c360": claim}},
            {
                "type": "track",
                "event": "SIWE Sign In",
                "anonymousId": "d1",
                "properties": {
                    "address": "0xd8dA6BF26964aF9D7eEd9e03E53415D37aA96045",
                    "message": "m",
                    "signature": "0x00",
                },
                "context": {"c360": claim, "locale": "en"},
            },
        ]
    )
    assert not errors
    assert identify["context"]["c360"]["auth"] == "browser"
    assert "siwe" not in identify["context"]["c360"]
    assert siwe["context"]["c360"]["siwe"] == {
        "verified": False,
        "reason": "not_verified_by_collector",
    }
    assert siwe["context"]["locale"] == "en"


def test_a_batch_context_and_sent_at_are_merged_into_each_event():
    [a, b], _, _ = prepare(
        [
            {"type": "page", "anonymousId": "d1"},
            {"type": "page", "anonymousId": "d2", "context": {"locale": "fr"}},
        ],
        batch_context={"locale": "en", "userAgent": "UA"},
        sent_at="2026-11-02T08:59:59Z",
    )
    assert a["context"]["locale"] == "en" and b["context"]["locale"] == "fr"
    assert b["context"]["userAgent"] == "UA" and a["sentAt"] == "2026-11-02T08:59:59Z"


def test_each_bad_event_is_reported_with_its_index_reason_and_message():
    events = [
        {"type": "page", "anonymousId": "d1"},
        {"type": "page", "anonymousId": "d1", "userId": 42},
        [1, 2],
        b"{not json",
        {"type": "page"},
        {"type": "unknown-type", "anonymousId": "d1"},
        {"type": "track", "anonymousId": "d1", "event": "Wallet Connected", "properties": {}},
        {"type": "page", "anonymousId": "d1", "timestamp": "yesterday"},
    ]
    accepted, errors, _ = prepare(events)
    assert len(accepted) == 1
    got = {e.index: (e.reason, e.message) for e in errors}
    assert got[1] == ("invalid_field", "Expected `str | null`, got `int` - at `$.userId`")
    assert got[2] == ("not_an_object", "Expected `object`, got `array`")
    assert got[3][0] == "not_json"
    assert got[4] == ("missing_field", "an event needs anonymousId or userId")
    assert got[5][0] == "unknown_type"
    assert got[6][0] == "invalid_field" and "address" in got[6][1]
    assert got[7][0] == "invalid_field" and "$.timestamp" in got[7][1]
    types = ["page", "unknown", "unknown", "page", "unknown", "track", "page"]
    assert [e.type for e in errors] == types


def test_an_event_not_utf8_or_nesting_too_deep_is_rejected_alone():
    # the worker's ingest refuses both: the collector says so at once instead of a 500
    good = json.dumps({"type": "page", "anonymousId": "d1"}).encode()
    latin1 = good.replace(b'"d1"', b'"d\xe9"')
    deep = good[:-1] + b', "properties": {"x": ' + b"[" * 3000 + b"]" * 3000 + b"}}"
    accepted, errors, _ = prepare([latin1, good, deep])
    assert len(accepted) == 1
    assert [(e.index, e.reason) for e in errors] == [(0, "not_utf8"), (2, "too_deep")]


def test_an_event_over_the_size_limit_is_rejected_alone():
    big = {"type": "track", "event": "Big", "anonymousId": "d1", "properties": {"x": "y" * 2000}}
    raws = [json.dumps(big).encode(), json.dumps({"type": "page", "anonymousId": "d1"}).encode()]
    out = preparer(max_event_bytes=1024).prepare(raws, auth="browser", received_at=NOW)
    assert [e.reason for e in out.errors] == ["too_large"] and len(out.accepted) == 1


def test_the_partition_key_is_the_anonymous_id_else_the_user_id():
    _, _, out = prepare(
        [{"type": "page", "anonymousId": "d1", "userId": "u1"}, {"type": "page", "userId": "u2"}]
    )
    assert [k for k, _, _ in out.accepted] == ["d1", "u2"]


def test_odd_keys_are_unknown_keys_never_an_exception():
    # a header aiohttp decoded from non-ASCII bytes, and a body's "\ud800" escape
    assert basic_username("Basic \xe9") is None
    assert basic_username("Basic \udcff") is None
    assert basic_username("Basic " + base64.b64encode(b"\xff\xfe:").decode()) is None
    assert WriteKeys(browser=("wk_1",), server=()).kind("\ud800") is None
