"""Ingest: every input record becomes facts or dead letters with reasons; nothing raises."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stream.core.ingest import Ingest
from stream.core.rules import DEFAULT, Compiled, Rules

EXAMPLES = Path(__file__).parents[2] / "schemas" / "examples"
TOPICS = {
    "web-event": "web.events",
    "form-response": "forms",
    "social-verification": "socials",
    "chain-event": "chain.events",
    "holding-snapshot": "chain.holdings",
    "support-ticket": "support",
}
VALID = [
    (topic, json.loads(path.read_text()))
    for name, topic in TOPICS.items()
    for path in sorted((EXAMPLES / name).glob("*.json"))
]


def ingest(rules: Rules = DEFAULT, **kw) -> Ingest:
    return Ingest(Compiled(rules), **kw)


def web(**fields):
    event = {
        "type": "page",
        "messageId": "m-1",
        "anonymousId": "dev-1",
        "timestamp": "2026-11-02T09:00:00Z",
    }
    event.update(fields)
    return event


def one(topic: str, event) -> tuple:
    out = ingest().record(topic, json.dumps(event).encode())
    return out.facts, out.rejections


def test_every_example_becomes_facts():
    for topic, event in VALID:
        facts, rejections = one(topic, event)
        assert facts and not rejections, (topic, rejections)


def test_a_batch_is_a_json_array_and_bad_events_are_rejected_alone_with_their_index():
    batch = [web(messageId="a"), web(messageId="b", userId=42), web(messageId="c")]
    out = ingest().record("web.events", json.dumps(batch).encode())
    assert [f.id for f in out.facts] == ["a", "c"]
    [rejected] = out.rejections
    assert rejected.index == 1 and rejected.reason == "invalid_field"
    assert "$.userId" in rejected.message
    assert json.loads(rejected.original)["messageId"] == "b"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{type: page}", "not_json"),
        (b"\xff\xfe{}", "not_utf8"),
        (b'"just a string"', "not_an_object"),
        (json.dumps(web(type="teleport")).encode(), "unknown_type"),
        (json.dumps({"type": "page", "anonymousId": "d"}).encode(), "missing_field"),
        (json.dumps(web(anonymousId="null")).encode(), "bad_identifier"),
        (json.dumps(web(anonymousId=None)).encode(), "missing_field"),
        (json.dumps(web(timestamp="1999-12-31T23:00:00Z")).encode(), "out_of_range"),
    ],
)
def test_bad_records_get_a_machine_readable_reason(value, reason):
    out = ingest().record("web.events", value)
    assert not out.facts
    assert [r.reason for r in out.rejections] == [reason]


def test_a_string_that_is_not_utf8_is_refused_alone_with_its_byte():
    good = json.dumps(web(messageId="ok")).encode()
    bad = json.dumps(web(messageId="m-X")).encode().replace(b"m-X", b"m-\xe9")  # Latin-1
    [single] = ingest().record("web.events", bad).rejections
    assert single.reason == "not_utf8" and "0xe9" in single.message
    out = ingest().record("web.events", b"[" + good + b"," + bad + b"]")
    assert [f.id for f in out.facts] == ["ok"]
    assert [(r.reason, r.index) for r in out.rejections] == [("not_utf8", 1)]


def nested(depth: int, **fields) -> bytes:
    """A page event whose properties hold ``depth - 2`` nested arrays (``depth`` in all)."""
    inner = b"[" * (depth - 2) + b"]" * (depth - 2)
    return json.dumps(web(**fields)).encode()[:-1] + b', "properties": {"x": ' + inner + b"}}"


def test_an_event_nesting_deeper_than_the_limit_is_refused_the_same_everywhere():
    from stream.core.ingest import MAX_DEPTH

    assert ingest().record("web.events", nested(MAX_DEPTH)).facts
    for depth in (MAX_DEPTH + 1, 1_000, 100_000):  # 100,000: past any recursion limit
        out = ingest().record("web.events", nested(depth))
        assert [r.reason for r in out.rejections] == ["too_deep"] and not out.facts
    batch = b"[" + nested(3, messageId="ok") + b"," + nested(5_000) + b"]"
    out = ingest().record("web.events", batch)
    assert [f.id for f in out.facts] == ["ok"]
    assert [(r.reason, r.index) for r in out.rejections] == [("too_deep", 1)]


def test_an_unterminated_string_ends_the_depth_check_where_the_record_ends():
    from stream.core.ingest import MAX_DEPTH, too_deep

    # escaped quotes in a string never closed: the brackets after one are inside it
    assert not too_deep(b'{"a": "' + b'\\"[' * 40_000)
    assert too_deep(b"{" * (MAX_DEPTH + 1) + b'"' + b'\\"' * 40_000)
    assert not too_deep(b"{" * MAX_DEPTH + b'"' + b'\\"' * 40_000)


def test_brackets_inside_strings_are_not_nesting():
    brackets = '[{\\"' * 200  # also escaped quotes and backslashes
    out = ingest().record("web.events", json.dumps(web(properties={"s": brackets})).encode())
    assert out.facts and not out.rejections


def example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


@pytest.mark.parametrize(
    ("topic", "event"),
    [
        # a block time in milliseconds (year ~57,000), or none at all
        (
            "chain.events",
            {**example("chain-event/erc20-transfer.json"), "block_timestamp": 1_762_000_000_000},
        ),
        ("chain.events", {**example("chain-event/erc20-transfer.json"), "block_timestamp": 0}),
        (
            "chain.holdings",
            {**example("holding-snapshot/usdc.json"), "observed_at": "1970-01-01T00:00:00Z"},
        ),
        (
            "socials",
            {
                **example("social-verification/discord-oauth.json"),
                "occurred_at": "0001-01-01T00:00:00Z",
            },
        ),
        ("web.events", web(timestamp="9999-12-31T23:59:59Z")),
        (
            "support",
            {
                **example("support-ticket/zendesk-created.json"),
                "occurred_at": "2100-01-01T00:00:00Z",
            },
        ),
    ],
)
def test_an_event_time_outside_2000_to_2100_is_out_of_range_for_every_source(topic, event):
    # one chain event in the far future moved its partition's chain clock for good
    out = ingest().record(topic, json.dumps(event).encode())
    assert [r.reason for r in out.rejections] == ["out_of_range"] and not out.facts
    assert "not between 2000 and 2100" in out.rejections[0].message


def test_an_erc20_transfer_without_its_value_is_refused_not_taken_for_zero():
    event = example("chain-event/erc20-transfer.json")
    del event["decoded"]["value"]
    out = ingest().record("chain.events", json.dumps(event).encode())
    assert [(r.reason, r.message) for r in out.rejections] == [
        ("missing_field", "an erc20 transfer needs value")
    ]


def test_an_alias_links_its_previous_id_and_the_device_it_was_sent_from():
    event = web(type="alias", userId="u-9", previousId="dev-old", anonymousId="dev-now")
    [fact] = ingest().record("web.events", json.dumps(event).encode()).facts
    assert fact.ident == "user:u-9"
    assert dict(fact.links) == {"anon:dev-old": "alias_browser", "anon:dev-now": "ids_browser"}


def test_a_contract_at_a_burn_address_is_a_bad_identifier_with_why():
    event = example("chain-event/erc20-transfer.json")
    event["address"] = "0x000000000000000000000000000000000000dead"
    [r] = ingest().record("chain.events", json.dumps(event).encode()).rejections
    assert r.reason == "bad_identifier" and "burn address" in r.message


def test_oversize_records_keep_a_prefix_and_their_size():
    big = json.dumps(
        [web(messageId=str(i), properties={"pad": "x" * 1000}) for i in range(50)]
    ).encode()
    out = ingest(record_max=10_000).record("web.events", big)
    [r] = out.rejections
    assert r.reason == "too_large" and r.truncated and r.size == len(big)
    assert len(r.original) == 4096 and big.startswith(r.original)


def test_batches_over_the_limit_are_refused_whole():
    out = ingest(batch_max=2).record("web.events", json.dumps([web()] * 3).encode())
    assert [r.reason for r in out.rejections] == ["batch_too_large"]


def test_a_transfer_between_wallets_is_two_facts_never_a_link():
    event = json.loads((EXAMPLES / "chain-event" / "erc20-transfer.json").read_text())
    facts, _ = one("chain.events", event)
    assert [f.data["side"] for f in facts] == ["out", "in"]
    assert all(not f.links for f in facts)
    assert facts[0].data["value"] == 1_000_000_000


def test_mints_from_the_zero_address_concern_only_the_recipient():
    event = json.loads((EXAMPLES / "chain-event" / "erc721-transfer.json").read_text())
    facts, _ = one("chain.events", event)
    assert [(f.ident[:9], f.data["side"]) for f in facts] == [("wallet:0x", "in")]


def test_a_retract_is_the_same_fact_with_op_minus_one():
    upsert = json.loads((EXAMPLES / "chain-event" / "erc20-transfer.json").read_text())
    retract = {**upsert, "op": "retract"}
    [a, _], [b, _] = one("chain.events", upsert)[0], one("chain.events", retract)[0]
    assert (a.id, a.op, b.id, b.op) == (b.id, 1, a.id, -1)


def test_a_client_can_never_claim_a_verified_sign_in():
    siwe = json.loads((EXAMPLES / "web-event" / "siwe-sign-in.json").read_text())
    facts, _ = one("web.events", siwe)
    assert facts[0].links[0][1] == "siwe"
    # the verdict must be the collector's, about the same address
    forged = {**siwe, "context": {"c360": {"siwe": {"verified": True}}}}
    facts, _ = one("web.events", forged)
    assert facts[0].data["verified"] is False and not facts[0].links
    assert facts[0].assoc == ("wallet:0xd8da6bf26964af9d7eed9e03e53415d37aa96045",)


def test_browser_identify_links_the_device_and_records_the_email_as_association():
    facts, _ = one(
        "web.events",
        web(type="identify", userId="u-1", traits={"email": "Ada@Lovelace.dev"}),
    )
    [f] = facts
    assert f.ident == "user:u-1"
    assert f.links == (("anon:dev-1", "identify_browser"),)
    assert f.assoc == ("email:ada@lovelace.dev",)


def test_server_identify_links_device_and_email_as_verified():
    facts, _ = one(
        "web.events",
        web(
            type="identify",
            userId="u-1",
            traits={"email": "ada@lovelace.dev"},
            context={"c360": {"auth": "server"}},
        ),
    )
    assert facts[0].links == (
        ("anon:dev-1", "identify_server"),
        ("email:ada@lovelace.dev", "identify_server"),
    )


def test_rules_decide_whether_evidence_merges():
    rules = Rules(evidence={"wallet_connect": "asserted"})
    event = json.loads((EXAMPLES / "web-event" / "wallet-connected.json").read_text())
    out = ingest(rules).record("web.events", json.dumps(event).encode())
    assert not out.facts[0].links and out.facts[0].assoc


def test_campaign_touch_from_context_and_from_the_landing_url():
    facts, _ = one(
        "web.events",
        web(
            context={
                "page": {
                    "url": "https://a.xyz/?utm_source=x&utm_medium=cpc&gclid=G1",
                    "referrer": "https://x.com",
                }
            }
        ),
    )
    touch = facts[0].data["touch"]
    assert touch["source"] == "x" and touch["medium"] == "cpc" and touch["click"] == "gclid:G1"
    assert touch["referrer"] == "https://x.com"


# --- fuzz: nothing escapes, everything is accounted for ---------------------------------------
def mutate(draw, value):
    """A structural mutation of a JSON value."""
    if isinstance(value, dict) and value:
        key = draw(st.sampled_from(sorted(value)))
        choice = draw(st.integers(0, 3))
        out = dict(value)
        if choice == 0:
            del out[key]
        elif choice == 1:
            out[key] = draw(JSONISH)
        else:
            out[key] = mutate(draw, value[key])
        return out
    if isinstance(value, list) and value:
        i = draw(st.integers(0, len(value) - 1))
        return [*value[:i], mutate(draw, value[i]), *value[i + 1 :]]
    return draw(JSONISH)


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**300) | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def records(draw):
    topic = draw(st.sampled_from(sorted(TOPICS.values())))
    kind = draw(st.integers(0, 3))
    valid = [e for t, e in VALID if t == topic]
    if kind == 0:
        return topic, draw(st.binary(max_size=300))
    if kind == 3 and draw(st.booleans()):  # a poisoned event: bad UTF-8 in a string, or deep
        event = json.dumps(draw(st.sampled_from(valid))).encode()
        if draw(st.booleans()):
            return topic, event.replace(b'":"', b'":"\xff', 1)
        depth = draw(st.integers(50, 5_000))
        return topic, b"[" + event[:-1] + b',"zz":' + b"[" * depth + b"]" * depth + b"}]"
    if kind == 1:
        return topic, json.dumps(
            mutate(draw, draw(st.sampled_from(valid))), allow_nan=True
        ).encode()
    events = [
        mutate(draw, e) if draw(st.booleans()) else e
        for e in draw(st.lists(st.sampled_from(valid), min_size=1, max_size=6))
    ]
    return topic, json.dumps(events, allow_nan=True).encode()


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(records())
def test_fuzz_nothing_escapes_and_every_input_is_accounted_for(record):
    topic, value = record
    out = ingest().record(topic, value)
    accepted = sum(out.accepted_by_type.values())
    record_level = [r for r in out.rejections if r.index is None]
    if record_level and out.events != 1:
        assert accepted == 0 and len(out.rejections) == 1
    else:
        indexed = {r.index for r in out.rejections}
        assert len(indexed) == len(out.rejections)  # at most one rejection per event
        assert accepted + len(out.rejections) == out.events
    for r in out.rejections:
        assert r.reason and r.message
    for f in out.facts:
        msgspec.json.encode(f)  # every fact is serializable


def _signed_in(auth: str, **ids) -> dict:
    """The example's verified sign-in, sent with a key of kind ``auth`` and ``ids``."""
    siwe = json.loads((EXAMPLES / "web-event" / "siwe-sign-in.json").read_text())
    siwe.pop("anonymousId")
    siwe["context"]["c360"]["auth"] = auth
    return {**siwe, **ids}


WALLET = "wallet:0xd8da6bf26964af9d7eed9e03e53415d37aa96045"


def test_a_browser_sign_in_verifies_the_wallet_for_the_device_not_the_user_id_it_names():
    # the signature proves the wallet; the userId is the page's claim, as in an identify
    [f], _ = one("web.events", _signed_in("browser", anonymousId="dev-1", userId="u-1"))
    assert f.kind == "siwe" and f.data["verified"] is True
    assert f.ident == "anon:dev-1"
    assert f.links == (("user:u-1", "ids_browser"), (WALLET, "siwe"))
    # a userId alone from a browser: the wallet is observed for it, never verified
    [f], _ = one("web.events", _signed_in("browser", userId="u-1"))
    assert f.ident == "user:u-1" and f.links == ((WALLET, "wallet_connect"),)
    assert f.data["verified"] is True


def test_a_server_sign_in_vouches_for_its_user_id():
    [f], _ = one("web.events", _signed_in("server", anonymousId="dev-1", userId="u-1"))
    assert f.ident == "user:u-1"
    assert f.links == (("anon:dev-1", "ids_server"), (WALLET, "siwe"))
    [f], _ = one("web.events", _signed_in("server", userId="u-1"))
    assert f.links == ((WALLET, "siwe"),)


def test_a_ticket_event_carries_who_made_it_only_when_the_help_desk_says():
    # an agent's update is no activity of the requester (docs/profiles.md): the fact says
    # so; unknown (an older producer, a help desk that does not tell) stays out of it
    ticket = example("support-ticket/zendesk-created.json")
    del ticket["by_requester"]
    for by_requester in (True, False):
        [f], _ = one("support", {**ticket, "by_requester": by_requester})
        assert f.data["by_requester"] is by_requester
    [f], _ = one("support", ticket)
    assert "by_requester" not in f.data
